"""The text block of each tool result: what a model or a person reads beside the structured content."""

from __future__ import annotations

import json
from typing import Any

MAX_TEXT = 20000


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(amount) < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _flag(value: Any, yes: str, no: str = "") -> str:
    return yes if value else no


def unreachable_lines(r: dict[str, Any]) -> list[str]:
    """What a multi-node answer lacks: each node that did not answer and why (empty when complete)."""
    return [f"node {u['node']} not included ({u['code']}): {u['reason']}" for u in r.get("unreachable") or ()]


def render_exec(r: dict[str, Any]) -> str:
    parts = [f"$ {r['command']}  (node {r['node']}, exit {r['exit_code']}, {r['duration_ms']:.0f} ms)"]
    if r["stdout"]:
        parts.append(r["stdout"].rstrip("\n"))
    if r["stderr"]:
        parts.append("[stderr]\n" + r["stderr"].rstrip("\n"))
    if r["truncated"]:
        parts.append("[output truncated at the size cap]")
    return "\n".join(parts)


def render_guest_exec(r: dict[str, Any]) -> str:
    where = f"{'CT' if r['type'] == 'lxc' else 'VM'} {r['vmid']} on {r['node']}"
    ended = f"signal {r['signal']}" if r.get("signal") is not None else f"exit {r['exit_code']}"
    return render_exec({**r, "node": where, "exit_code": ended})


def render_list(r: dict[str, Any]) -> str:
    lines = [f"{r['count']} guest(s)"]
    lines.extend(
        f"{vm['vmid']:>6} {vm['type']:<4} {vm['status']:<8} {vm['node']:<10} {vm.get('name') or '-'}"
        f" mem {fmt_bytes(vm.get('mem'))}/{fmt_bytes(vm.get('maxmem'))}" + _flag(vm.get("template"), " (template)")
        for vm in r["vms"]
    )
    return "\n".join([*lines, *unreachable_lines(r)])


def render_vm_status(r: dict[str, Any]) -> str:
    return (
        f"{r['type']} {r['vmid']} ({r.get('name') or '-'}) on {r['node']}: {r['status']}"
        f"; cpu {r.get('cpu') or 0:.1%} of {r.get('cpus') or '?'}; mem {fmt_bytes(r.get('mem'))}"
        f"/{fmt_bytes(r.get('maxmem'))}; uptime {r.get('uptime') or 0} s"
    )


def render_task(task: dict[str, Any]) -> str:
    if task["status"] == "running":
        head = f"task {task['upid']} on {task['node']}: running"
    else:
        verdict = "OK" if task.get("ok") else "FAILED"
        head = f"task {task['upid']} on {task['node']}: finished {verdict} ({task.get('exitstatus')})"
    tail = "\n".join(task.get("log_tail") or [])
    return head + (f"\n{tail}" if tail else "")


def _render_started(head: str, r: dict[str, Any]) -> str:
    task = r.get("task")
    if not task:
        return f"{head}: task {r['upid']} (started; not waited for: follow it with wait_task)"
    return f"{head}\n{render_task(task)}"


def render_action(r: dict[str, Any]) -> str:
    return _render_started(f"{r['action']} {r['type']} {r['vmid']} on {r['node']}", r)


def render_task_start(r: dict[str, Any]) -> str:
    what = r["action"].replace("_", " ")
    target = f" {r.get('snapshot')!r} of {r.get('type')} {r.get('vmid')}" if r.get("snapshot") else ""
    return _render_started(f"{what}{target} on {r['node']}", r)


def render_nodes(r: dict[str, Any]) -> str:
    lines = [
        f"{n['node']}: {n['status']}; cpu {(n.get('cpu') or 0):.1%} of {n.get('maxcpu') or '?'}; mem "
        f"{fmt_bytes(n.get('mem'))}/{fmt_bytes(n.get('maxmem'))}; uptime {n.get('uptime') or 0} s"
        for n in r["nodes"]
    ]
    return "\n".join([*lines, *unreachable_lines(r)])


def render_api(r: dict[str, Any]) -> str:
    return f"{r['method']} {r['path']}\n" + json.dumps(r.get("data"), indent=1, sort_keys=True, default=str)[:MAX_TEXT]


def render_snapshots(r: dict[str, Any]) -> str:
    lines = [f"{len(r['snapshots'])} snapshot(s) of {r['type']} {r['vmid']} on {r['node']}"
             + (f"; current state based on {r['current_parent']}" if r.get("current_parent") else "")]
    lines.extend(
        f"  {s['name']}" + (f" (parent {s['parent']})" if s.get("parent") else "")
        + _flag(s.get("vmstate"), " [with RAM]") + (f": {s['description']}" if s.get("description") else "")
        for s in r["snapshots"]
    )
    return "\n".join(lines)


def render_storage(r: dict[str, Any]) -> str:
    lines = [f"{len(r['storages'])} storage entr(y/ies)"]
    lines.extend(
        f"  {s.get('node') or '-':<10} {s['storage']:<16} {s.get('type') or '-':<8} "
        f"{fmt_bytes(s.get('used'))}/{fmt_bytes(s.get('total'))} content {s.get('content') or '-'}"
        + _flag(s.get("shared"), " shared") + _flag(s.get("active") is False, " INACTIVE")
        for s in r["storages"]
    )
    return "\n".join([*lines, *unreachable_lines(r)])


def render_storage_content(r: dict[str, Any]) -> str:
    lines = [f"{len(r['items'])} volume(s) on {r['storage']} (node {r['node']})"]
    lines.extend(
        f"  {i['volid']} {i.get('content') or '-'} {i.get('format') or '-'} {fmt_bytes(i.get('size'))}"
        + (f" vmid {i['vmid']}" if i.get("vmid") else "")
        for i in r["items"]
    )
    return "\n".join(lines)


def render_tasks(r: dict[str, Any]) -> str:
    lines = [f"{r['count']} task(s), newest first"]
    lines.extend(
        f"  {t.get('starttime') or '-'} {t['node']:<10} {t.get('type') or '-':<12} {t.get('id') or '-':<8} "
        f"{t['status']}" + (f" {t.get('exitstatus')}" if t["status"] == "stopped" else "") + f"  {t['upid']}"
        for t in r["tasks"]
    )
    return "\n".join([*lines, *unreachable_lines(r)])


def render_task_log(r: dict[str, Any]) -> str:
    head = f"log of {r['upid']} ({len(r['lines'])} line(s))"
    return "\n".join([head, *(f"{line['n']:>5} {line['t']}" for line in r["lines"])])[:MAX_TEXT]


def render_cluster_status(r: dict[str, Any]) -> str:
    name = r.get("name") or "(standalone node)"
    quorum = {True: "quorate", False: "NOT quorate", None: "quorum unknown"}[r.get("quorate")]
    lines = [f"cluster {name}: {quorum}, {r['node_count']} node(s)"]
    lines.extend(
        f"  {n['name']}: {'online' if n.get('online') else 'OFFLINE'}" + (f" {n['ip']}" if n.get("ip") else "")
        + _flag(n.get("local"), " (local)")
        for n in r["nodes"]
    )
    return "\n".join(lines)


def render_cluster_resources(r: dict[str, Any]) -> str:
    lines = [f"{r['count']} resource(s)"]
    lines.extend(
        f"  {e.get('id')}: {e.get('type')} {e.get('status') or ''}".rstrip()
        + (f" on {e['node']}" if e.get("node") and e.get("type") != "node" else "")
        for e in r["resources"]
    )
    return "\n".join([*unreachable_lines(r), *lines])[:MAX_TEXT]


def render_network(r: dict[str, Any]) -> str:
    lines = [f"{len(r['interfaces'])} interface(s) on {r['node']}"]
    lines.extend(
        f"  {i['iface']:<12} {i.get('type') or '-':<8} {'active' if i.get('active') else 'inactive'}"
        + (f" {i['cidr']}" if i.get("cidr") else "") + (f" gw {i['gateway']}" if i.get("gateway") else "")
        + (f" ports {i['bridge_ports']}" if i.get("bridge_ports") else "")
        for i in r["interfaces"]
    )
    return "\n".join(lines)
