"""The api-worker's operations for one cluster, written against PveBackend only (same results in every mode)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_runtime.futures import retrieve_outcome

from proxmox_mcp_api_worker import partial
from proxmox_mcp_api_worker.backend import Method, Params, PveBackend, encode_params, normalize_api_path
from proxmox_mcp_api_worker.upid import parse_upid
from proxmox_mcp_api_worker.values import as_float as _float
from proxmox_mcp_api_worker.values import as_int as _int
from proxmox_mcp_api_worker.values import as_str as _str
from proxmox_mcp_api_worker.values import flag as _flag
from proxmox_mcp_api_worker.values import seg

log = logging.getLogger(__name__)

PVE_ACTION = {"restart": "reboot"}
"""Tool action → Proxmox status endpoint; the rest have the same name."""
LXC_ACTIONS = frozenset({"start", "stop", "shutdown", "reboot", "suspend", "resume"})
GUEST_NOUN = {"qemu": "a QEMU VM", "lxc": "an LXC container"}
GUEST_LABEL = {"qemu": "VM", "lxc": "CT"}
"""How Proxmox's own messages name a guest ("VM 100 ...", "CT 200 ...")."""
PROXY_FAILURES = frozenset({595, 596, 599})
"""pveproxy's answers when it cannot forward a request to the node the path names."""
_NODE_PATH = re.compile(r"^/nodes/([^/]+)/")
SLOW_NODE_GRACE = 0.5
"""node_status of one node: how long its own status may take before /nodes is asked whether it is offline."""
T = TypeVar("T")


def naming_the_node(path: str, exc: ServiceFailure) -> ServiceFailure:
    """A request Proxmox could not forward to the node in its path fails naming that node."""
    match = _NODE_PATH.match(path)
    if match is None or exc.info.details.get("status") not in PROXY_FAILURES:
        return exc
    node = unquote(match[1])
    return ServiceFailure(exc.code, f"node {node} is unreachable: {exc.info.message}", retryable=exc.info.retryable,
                          details={**exc.info.details, "node": node})


@dataclass(frozen=True)
class Budget:
    """How long each Proxmox request of one call may take: the time left (minus a margin), at most the ceiling."""

    deadline: float
    """Absolute, seconds since the epoch (the request envelope's deadline)."""
    ceiling: float
    margin: float = 0.2

    def timeout(self, *, whole: bool = False) -> float:
        """Seconds for the next Proxmox request; whole=True: all the time left (a request that waits for a task)."""
        left = self.left()
        if left <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "the call's deadline passed before Proxmox answered")
        return left if whole else min(left, self.ceiling)

    def left(self) -> float:
        return self.deadline - time.time() - self.margin


@dataclass(frozen=True)
class Guest:
    vmid: int
    node: str
    type: t.GuestType
    entry: Mapping[str, Any]


def vm_summary(entry: Mapping[str, Any], *, current: bool = True) -> t.VmSummary:
    """A /cluster/resources guest entry; current=False (its node is offline): status unknown, no usage figures."""
    if not current:
        return t.VmSummary(vmid=int(entry["vmid"]), name=_str(entry.get("name")), node=str(entry["node"]),
                           type=entry["type"], status="unknown", template=_flag(entry.get("template")),
                           maxcpu=_float(entry.get("maxcpu")), maxmem=_int(entry.get("maxmem")),
                           maxdisk=_int(entry.get("maxdisk")), tags=_str(entry.get("tags")))
    return t.VmSummary(
        vmid=int(entry["vmid"]), name=_str(entry.get("name")), node=str(entry["node"]), type=entry["type"],
        status=str(entry.get("status") or "unknown"), template=_flag(entry.get("template")),
        cpu=_float(entry.get("cpu")), maxcpu=_float(entry.get("maxcpu")), mem=_int(entry.get("mem")),
        maxmem=_int(entry.get("maxmem")), disk=_int(entry.get("disk")), maxdisk=_int(entry.get("maxdisk")),
        uptime=_int(entry.get("uptime")), tags=_str(entry.get("tags")),
    )


def node_info(listed: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> t.NodeInfo:
    """A /nodes entry, refined by /nodes/{node}/status when there is one."""
    detail: Mapping[str, Any] = status or {}

    def section(name: str) -> Mapping[str, Any]:
        value = detail.get(name)
        return value if is_object(value) else {}

    memory, rootfs, cpuinfo = section("memory"), section("rootfs"), section("cpuinfo")
    loadavg = detail.get("loadavg")

    def first(*values: Any) -> Any:
        return next((v for v in values if v is not None), None)

    return t.NodeInfo(
        node=str(listed["node"]), status=str(listed.get("status") or "unknown"),
        cpu=_float(first(detail.get("cpu"), listed.get("cpu"))),
        maxcpu=_int(first(cpuinfo.get("cpus"), listed.get("maxcpu"))),
        mem=_int(first(memory.get("used"), listed.get("mem"))),
        maxmem=_int(first(memory.get("total"), listed.get("maxmem"))),
        disk=_int(first(rootfs.get("used"), listed.get("disk"))),
        maxdisk=_int(first(rootfs.get("total"), listed.get("maxdisk"))),
        uptime=_int(first(detail.get("uptime"), listed.get("uptime"))),
        loadavg=[str(v) for v in loadavg] if is_array(loadavg) else None,
        pveversion=_str(detail.get("pveversion")), kversion=_str(detail.get("kversion")),
    )


class ClusterOperations:
    def __init__(self, cluster: str, backend: PveBackend, *, ceiling: float, margin: float = 0.2,
                 node_concurrency: int = 4, task_log_page: int = 500, task_log_max_pages: int = 40) -> None:
        self.cluster = cluster
        self.backend = backend
        self.ceiling = ceiling
        self.margin = margin
        self.node_concurrency = node_concurrency
        self.task_log_page = task_log_page
        self.task_log_max_pages = task_log_max_pages

    def budget(self, deadline: float) -> Budget:
        return Budget(deadline=deadline, ceiling=self.ceiling, margin=self.margin)

    async def call(self, budget: Budget, method: Method, path: str, params: Params | None = None) -> Any:
        """One Proxmox request within the call's budget (a pvesh request that waits for its task gets all of it)."""
        whole = method != "GET" and self.backend.waits_for_tasks
        timeout = budget.timeout(whole=whole)
        try:
            return await self.backend.request(method, path, params, timeout=timeout)
        except ServiceFailure as exc:
            raise naming_the_node(path, exc) from None

    async def nodes(self, budget: Budget) -> list[Mapping[str, Any]]:
        """/nodes, sorted by name: each entry's `status` is online, offline or unknown."""
        listed = await self.call(budget, "GET", "/nodes")
        if not is_array(listed):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's node list is not a list")
        return sorted((e for e in listed if is_object(e) and e.get("node")), key=lambda e: str(e["node"]))

    async def per_node(self, nodes: Iterable[str], ask: Callable[[str], Awaitable[T]],
                       ) -> tuple[dict[str, T], list[t.UnreachableNode]]:
        """ask(node) for each node, a few at a time; failures come back as unreachable nodes (partial.per_node)."""
        return await partial.per_node(nodes, ask, concurrency=self.node_concurrency, cluster=self.cluster)

    # --- guests -----------------------------------------------------------------------------

    async def guest_entries(self, budget: Budget) -> list[Mapping[str, Any]]:
        """The qemu and lxc entries of /cluster/resources (type=vm)."""
        data = await self.call(budget, "GET", "/cluster/resources", {"type": "vm"})
        if not is_array(data):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's cluster resources are not a list")
        return [e for e in data if is_object(e) and e.get("type") in ("qemu", "lxc") and "vmid" in e]

    async def locate(self, vmid: int, node: str | None, budget: Budget, kind: t.GuestType | None = None) -> Guest:
        """Where a VM or container lives and what it is, from the cluster's resource list; `kind` refuses a guest
        of the other type (container tools must not act on a VM and the other way round)."""
        entry = next((e for e in await self.guest_entries(budget) if _int(e.get("vmid")) == vmid), None)
        if entry is None:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"VM {vmid} not found in cluster {self.cluster} "
                                 "(no VM or container has this id)", details={"vmid": vmid})
        actual = str(entry.get("node"))
        if node is not None and node != actual:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"VM {vmid} is not on node {node}; it is on node {actual}",
                                 details={"vmid": vmid, "node": actual})
        if kind is not None and entry["type"] != kind:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{vmid} is {GUEST_NOUN[entry['type']]}, not "
                                 f"{GUEST_NOUN[kind]}", details={"vmid": vmid, "type": entry["type"]})
        return Guest(vmid=vmid, node=actual, type=entry["type"], entry=entry)

    async def list_vms(self, args: t.ListVmsArgs, budget: Budget) -> t.ListVmsResult:
        """One /cluster/resources read: guests and nodes. Proxmox keeps listing the guests of an offline node
        with status 'unknown'; they stay in the list as such (never with old figures) and the node is named."""
        data = await self.call(budget, "GET", "/cluster/resources")
        if not is_array(data):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's cluster resources are not a list")
        entries = [e for e in data if is_object(e)]
        down = partial.down_nodes_in(entries)
        nodes = {str(e["node"]) for e in entries if e.get("type") == "node" and e.get("node")}
        partial.require_some(len(nodes) - len(down), down, self.cluster)
        lost = {u.node for u in down}
        vms = [vm_summary(e, current=str(e.get("node")) not in lost)
               for e in entries if e.get("type") in ("qemu", "lxc") and "vmid" in e]
        vms = [vm for vm in vms
               if (args.node is None or vm.node == args.node)
               and (args.type is None or vm.type == args.type)
               and (args.status is None or vm.status == args.status)]
        vms.sort(key=lambda vm: vm.vmid)
        if args.node is not None:
            down = [u for u in down if u.node == args.node]
        return t.ListVmsResult(vms=vms, count=len(vms), **partial.partial_fields(down))

    async def vm_status(self, args: t.VmStatusArgs, budget: Budget) -> t.VmStatusResult:
        guest = await self.locate(args.vmid, args.node, budget, args.type)
        data = await self.call(budget, "GET", f"/nodes/{seg(guest.node)}/{guest.type}/{guest.vmid}/status/current")
        if not is_object(data):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox's status of VM {guest.vmid} is not an object")
        return t.VmStatusResult(
            vmid=guest.vmid, node=guest.node, type=guest.type, status=str(data.get("status") or "unknown"),
            name=_str(data.get("name", guest.entry.get("name"))), qmpstatus=_str(data.get("qmpstatus")),
            lock=_str(data.get("lock")), cpu=_float(data.get("cpu")), cpus=_float(data.get("cpus")),
            mem=_int(data.get("mem")), maxmem=_int(data.get("maxmem")), disk=_int(data.get("disk")),
            maxdisk=_int(data.get("maxdisk")), uptime=_int(data.get("uptime")), netin=_int(data.get("netin")),
            netout=_int(data.get("netout")), diskread=_int(data.get("diskread")),
            diskwrite=_int(data.get("diskwrite")), pid=_int(data.get("pid")),
            tags=_str(data.get("tags", guest.entry.get("tags"))),
        )

    async def vm_action(self, args: t.VmActionArgs, budget: Budget) -> t.VmActionResult:
        """Starts the Proxmox task and returns its UPID at once; the gateway follows it (task_status) when
        the caller wants to wait, so progress can be streamed. Never retried: it is not idempotent."""
        guest = await self.locate(args.vmid, args.node, budget, args.type)
        action = PVE_ACTION.get(args.action, args.action)
        if guest.type == "lxc" and action not in LXC_ACTIONS:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{args.vmid} is a container: containers have no "
                                 f"{args.action}; use one of {', '.join(sorted(LXC_ACTIONS | {'restart'}))}")
        path = f"/nodes/{seg(guest.node)}/{guest.type}/{guest.vmid}/status/{action}"
        upid = await self.call(budget, "POST", path)
        if not isinstance(upid, str) or not upid.startswith("UPID:"):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox started {action} of VM {guest.vmid} but "
                                 "returned no task id")
        return t.VmActionResult(vmid=guest.vmid, node=guest.node, type=guest.type, action=args.action, upid=upid,
                                waited=False)

    # --- tasks ------------------------------------------------------------------------------

    async def task_status(self, args: t.TaskStatusArgs, budget: Budget) -> t.TaskResult:
        upid = parse_upid(args.upid)
        if args.node is not None and args.node != upid.node:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"task {args.upid} runs on node {upid.node}, "
                                 f"not {args.node}")
        base = f"/nodes/{seg(upid.node)}/tasks/{seg(args.upid)}"
        data = await self.call(budget, "GET", f"{base}/status")
        if not is_object(data) or data.get("status") not in ("running", "stopped"):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox's status of task {args.upid} is not understood")
        tail = await self._log_tail(base, args.log_lines, budget) if args.log_lines else []
        stopped = data["status"] == "stopped"
        exitstatus = _str(data.get("exitstatus")) if stopped else None
        return t.TaskResult(
            upid=args.upid, node=upid.node, status=data["status"], exitstatus=exitstatus,
            ok=(exitstatus == "OK") if stopped else None, type=_str(data.get("type")) or upid.type,
            id=_str(data.get("id")) or upid.id or None, user=_str(data.get("user")) or upid.user,
            starttime=_int(data.get("starttime")) or upid.starttime, log_tail=tail,
        )

    async def _log_tail(self, base: str, lines: int, budget: Budget) -> list[str]:
        """The last `lines` lines. The log API pages from the start (and older Proxmox ignores limit=0), so read
        page by page: one request for the usual short task log."""
        page = max(self.task_log_page, lines)
        tail: deque[str] = deque(maxlen=lines)
        start = 0
        for _ in range(self.task_log_max_pages):
            chunk = await self.call(budget, "GET", f"{base}/log", {"start": start, "limit": page})
            if not is_array(chunk):
                raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's task log is not a list")
            for entry in chunk:
                tail.append(str(entry.get("t", "")) if is_object(entry) else str(entry))
            if len(chunk) < page:
                break
            last = chunk[-1]
            line_number = _int(last.get("n")) if is_object(last) else None
            start = line_number if line_number else start + len(chunk)
        return list(tail)

    # --- nodes ------------------------------------------------------------------------------

    async def node_status(self, args: t.NodeStatusArgs, budget: Budget) -> t.NodeStatusResult:
        """Every node (or one) as /nodes lists it, refined by each online node's own status. A node that is
        offline or does not answer keeps only what the list says about it and is named in `unreachable`."""
        if args.node is not None:
            return await self._one_node_status(args.node, budget)
        entries = await self.nodes(budget)
        online, down = partial.split_online(entries)
        details, failed = await self.per_node(online, lambda node: self._node_detail(node, budget))
        partial.require_some(len(details), down + failed, self.cluster)
        nodes = [node_info(e, details.get(str(e["node"]))) for e in entries]
        return t.NodeStatusResult(nodes=nodes, **partial.partial_fields(down + failed))

    async def _one_node_status(self, node: str, budget: Budget) -> t.NodeStatusResult:
        """One request when the node answers: its own status says all /nodes would (an answer means online).
        When it fails (unknown node, offline, unreachable) or is slow, /nodes says which it is: an unknown node is
        not found, naming the known ones; an offline node keeps what the list says and is named in `unreachable`
        (without waiting for its own request to run out of time); an online one gets its own answer or failure."""
        detail = asyncio.ensure_future(self._node_detail(node, budget))
        detail.add_done_callback(retrieve_outcome)
        try:
            done, _ = await asyncio.wait({detail}, timeout=SLOW_NODE_GRACE)
            if done and detail.exception() is None and detail.result() is not None:
                return t.NodeStatusResult(nodes=[node_info({"node": node, "status": "online"}, detail.result())])
            listed = await self.nodes(budget)
            entries = [e for e in listed if e["node"] == node]
            if not entries:
                known = ", ".join(str(e["node"]) for e in listed)
                raise ServiceFailure(ErrorCode.NOT_FOUND, f"node {node} is not in cluster {self.cluster} "
                                     f"(nodes: {known})")
            online, down = partial.split_online(entries)
            if not online:
                return t.NodeStatusResult(nodes=[node_info(entries[0])], **partial.partial_fields(down))
            return t.NodeStatusResult(nodes=[node_info(entries[0], await detail)])
        finally:
            detail.cancel()  # an offline node's request still under way is not waited for

    async def _node_detail(self, node: str, budget: Budget) -> Mapping[str, Any] | None:
        data = await self.call(budget, "GET", f"/nodes/{seg(node)}/status")
        return data if is_object(data) else None

    # --- generic ----------------------------------------------------------------------------

    async def proxmox_api(self, args: t.ProxmoxApiArgs, budget: Budget) -> t.ProxmoxApiResult:
        path = normalize_api_path(args.path)
        data = await self.call(budget, args.method, path, encode_params(args.data))
        return t.ProxmoxApiResult(method=args.method, path=path or "/", data=data)

    async def probe(self, budget: Budget) -> t.ProbeResult:
        """GET /version: reachability, TLS trust and credentials in one request (for health checks)."""
        started = time.perf_counter()
        try:
            data = await self.call(budget, "GET", "/version")
        except ServiceFailure as exc:
            return t.ProbeResult(ok=False, latency_ms=_ms(started), detail=exc.info.as_text(),
                                 insecure_tls=self.backend.insecure_tls)
        version = data.get("version") if is_object(data) else None
        detail = f"Proxmox VE {version}" if version else "Proxmox API answered"
        if self.backend.insecure_tls:
            detail += "; TLS NOT VERIFIED (PROXMOX_VERIFY_SSL=false)"
        return t.ProbeResult(ok=True, latency_ms=_ms(started), detail=detail, insecure_tls=self.backend.insecure_tls)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
