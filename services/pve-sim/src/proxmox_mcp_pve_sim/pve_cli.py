"""pvesh, qm and pct on the emulated host: the same API the HTTPS face serves, run as root@pam.

Like the real tools (CLI RPC environment), they wait for the worker tasks they start. Errors go to
stderr as `PVE::Exception` prints them (`400 Parameter verification failed.` + one line per
parameter, or the bare message for plain failures) with exit status 255.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.pve_schema import match_path, method_schema

from proxmox_mcp_pve_sim.access import ROOT
from proxmox_mcp_pve_sim.agent import assert_agent_available, process_status, start_process
from proxmox_mcp_pve_sim.api import Result
from proxmox_mcp_pve_sim.dispatch import dispatch
from proxmox_mcp_pve_sim.errors import ApiError
from proxmox_mcp_pve_sim.guest_shell import guest_shell
from proxmox_mcp_pve_sim.pve_output import render
from proxmox_mcp_pve_sim.shell import ShellEnv, Streams, run_argv
from proxmox_mcp_pve_sim.tasks import UPID_RE

FAIL = 255
PVESH_VERBS = {"get": "GET", "create": "POST", "set": "PUT", "delete": "DELETE"}
FORMAT_OPTIONS = {"output-format", "noborder", "noheader", "quiet", "human-readable"}


class CliError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def error_text(result: Result | ApiError, usage: str = "") -> str:
    status = result.status
    message = (result.message or "").rstrip("\n")
    text = message + "\n" if status == 500 else f"{status} {message}\n"
    for key, reason in sorted((result.errors or {}).items()):
        text += f"{key}: {reason.rstrip()}\n"
    if status == 400 and result.errors and usage:
        text += usage + "\n"
    return text


def parse_options(
    args: list[str], method: str | None = None, path: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """`-k v`, `--k v`, `--k=v`, repeated keys become lists; boolean flags may omit their value."""
    booleans: set[str] = set()
    if method and path:
        matched = match_path(path)
        schema = method_schema(method, matched[0]) if matched else None
        parameters: dict[str, Any] = (schema or {}).get("parameters") or {}
        properties: dict[str, Any] = parameters.get("properties") or {}
        booleans = {k for k, v in properties.items() if is_object(v) and v.get("type") == "boolean"}
    booleans |= {"noborder", "noheader", "quiet", "human-readable"}
    options: dict[str, Any] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positional.extend(args[index:])
            break
        if not arg.startswith("-") or arg == "-" or _is_number(arg):
            positional.append(arg)
            continue
        key = arg.lstrip("-")
        value: str | None = None
        if "=" in key:
            key, value = key.split("=", 1)
        elif (
            index < len(args)
            and not (args[index].startswith("-") and not _is_number(args[index]))
            and (key not in booleans or args[index] in ("0", "1", "true", "false", "yes", "no", "on", "off"))
        ):
            value = args[index]
            index += 1
        if value is None:
            if key not in booleans and method is not None:
                raise CliError(f"400 unable to parse option\nmissing value for option '{key}'\n")
            value = "1"
        if key in booleans and value.lower() in ("true", "yes", "on", "false", "no", "off"):
            value = "1" if value.lower() in ("true", "yes", "on") else "0"
        if key in options:
            existing = options[key]
            options[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            options[key] = value
    return options, positional


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


async def wait_for_task(env: ShellEnv, upid: str, io: Streams, *, echo_log: bool) -> bool:
    task = env.sim.tasks.get(upid)
    if task is None:
        return True
    await task.done.wait()
    if echo_log:
        for line in task.log[:-1]:
            io.out(line + "\n")
    if task.exitstatus != "OK":
        io.err(f"{task.exitstatus}\n")
        return False
    return True


async def api(env: ShellEnv, method: str, path: str, params: dict[str, Any], usage: str = "") -> Any:
    result = await dispatch(env.sim, ROOT, method, path, params)
    if result.status != 200:
        raise CliError(error_text(result, usage))
    return result.data


async def pvesh(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if len(argv) < 2 or argv[1] in ("help", "--help", "-h"):
        io.out(
            "USAGE: pvesh <COMMAND> [ARGS] [OPTIONS]\n  pvesh create <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
            "  pvesh delete <api_path> [OPTIONS] [FORMAT_OPTIONS]\n  pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
            "  pvesh ls <api_path> [OPTIONS] [FORMAT_OPTIONS]\n  pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
        )
        return 0 if len(argv) >= 2 else FAIL
    verb = argv[1]
    if verb not in (*PVESH_VERBS, "ls"):
        io.err(f"ERROR: unknown command 'pvesh {verb}'\nUSAGE: pvesh <COMMAND> [ARGS] [OPTIONS]\n")
        return FAIL
    usage = f"pvesh {verb} <api_path> [OPTIONS] [FORMAT_OPTIONS]"
    method = PVESH_VERBS.get(verb, "GET")
    if len(argv) < 3 or argv[2].startswith("-"):
        io.err(f"400 not enough arguments\n{usage}\n")
        return FAIL
    path = "/" + argv[2].strip("/")
    try:
        options, positional = parse_options(argv[3:], method, path)
    except CliError as exc:
        io.err(exc.text + usage + "\n")
        return FAIL
    if positional:
        io.err(f"400 too many arguments\n{usage}\n")
        return FAIL
    fmt = str(options.pop("output-format", "text"))
    noborder = options.pop("noborder", "0") == "1"
    noheader = options.pop("noheader", "0") == "1"
    quiet = options.pop("quiet", "0") == "1"
    options.pop("human-readable", None)
    if fmt not in ("text", "json", "json-pretty", "yaml"):
        io.err(
            f"400 Parameter verification failed.\noutput-format: value '{fmt}' does not have a value in the "
            f"enumeration 'text, json, json-pretty, yaml'\n{usage}\n"
        )
        return FAIL
    result = await dispatch(env.sim, ROOT, method, path, options)
    if result.status == 501:
        io.err(f"No '{verb if verb != 'ls' else 'get'}' handler defined for '{path}'\n")
        return FAIL
    if result.status != 200:
        io.err(error_text(result, usage))
        return FAIL
    data = result.data
    if verb == "ls":
        for item in data if is_array(data) else []:
            if is_object(item):
                name = next(
                    (str(item[k]) for k in ("subdir", "name", "node", "vmid", "storage", "volid", "upid") if k in item),
                    "",
                )
                io.out(f"Dr--- {name}\n")
        return 0
    is_task = method != "GET" and isinstance(data, str) and UPID_RE.match(data) is not None
    if is_task and not await wait_for_task(env, str(data), io, echo_log=True):
        return FAIL
    if not quiet:
        io.out(render(data, fmt, noborder=noborder, noheader=noheader))
    return 0


def _vmid(positional: list[str], usage: str) -> str:
    if not positional:
        raise CliError(f"400 not enough arguments\n{usage}\n")
    return positional[0]


async def _power(
    env: ShellEnv, kind: str, action: str, positional: list[str], options: dict[str, Any], io: Streams, tool: str
) -> int:
    usage = f"{tool} {action} <vmid> [OPTIONS]"
    vmid = _vmid(positional, usage)
    upid = await api(env, "POST", f"/nodes/{env.node}/{kind}/{vmid}/status/{action}", options, usage)
    return 0 if await wait_for_task(env, upid, io, echo_log=False) else FAIL


async def _status(
    env: ShellEnv, kind: str, positional: list[str], options: dict[str, Any], io: Streams, tool: str
) -> int:
    vmid = _vmid(positional, f"{tool} status <vmid> [OPTIONS]")
    data = await api(env, "GET", f"/nodes/{env.node}/{kind}/{vmid}/status/current", {})
    if options.get("verbose") in ("1", 1):
        for key in sorted(data):
            value = data[key]
            io.out(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}\n")
    else:
        io.out(f"status: {data['status']}\n")
    return 0


async def _config(
    env: ShellEnv, kind: str, positional: list[str], options: dict[str, Any], io: Streams, tool: str
) -> int:
    vmid = _vmid(positional, f"{tool} config <vmid> [OPTIONS]")
    data = await api(env, "GET", f"/nodes/{env.node}/{kind}/{vmid}/config", options)
    for key in sorted(data):
        if key != "digest":
            io.out(f"{key}: {data[key]}\n")
    return 0


async def _snapshot_ops(
    env: ShellEnv, kind: str, sub: str, positional: list[str], options: dict[str, Any], io: Streams, tool: str
) -> int:
    base = f"/nodes/{env.node}/{kind}"
    if sub == "listsnapshot":
        vmid = _vmid(positional, f"{tool} listsnapshot <vmid>")
        snaps = await api(env, "GET", f"{base}/{vmid}/snapshot", {})
        for depth, snap in enumerate(snaps):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(snap["snaptime"])) if "snaptime" in snap else ""
            name = f"{' ' * depth}`-> {snap['name']}"
            io.out(f"{name:<30} {when:<19}     {snap.get('description', '')}".rstrip() + "\n")
        return 0
    usage = f"{tool} {sub} <vmid> <snapname> [OPTIONS]"
    if len(positional) < 2:
        raise CliError(f"400 not enough arguments\n{usage}\n")
    vmid, name = positional[0], positional[1]
    if sub == "snapshot":
        upid = await api(env, "POST", f"{base}/{vmid}/snapshot", {"snapname": name, **options}, usage)
    elif sub == "delsnapshot":
        upid = await api(env, "DELETE", f"{base}/{vmid}/snapshot/{name}", options, usage)
    else:
        upid = await api(env, "POST", f"{base}/{vmid}/snapshot/{name}/rollback", options, usage)
    return 0 if await wait_for_task(env, upid, io, echo_log=False) else FAIL


async def _guest_cli(argv: list[str], env: ShellEnv, io: Streams, kind: str) -> int:
    tool = argv[0]
    if len(argv) < 2:
        io.err(f"ERROR: no command specified\nUSAGE: {tool} <COMMAND> [ARGS] [OPTIONS]\n")
        return FAIL
    sub = argv[1]
    actions = ("start", "stop", "shutdown", "reboot", "suspend", "resume") + (("reset",) if kind == "qemu" else ())
    try:
        if sub == "exec" and kind == "lxc":
            return await _pct_exec(argv, env, io)
        if sub == "guest" and kind == "qemu":
            return await _qm_guest(argv, env, io)
        options, positional = parse_options(argv[2:])
        if sub == "list":
            return await _list(env, kind, io)
        if sub in actions:
            return await _power(env, kind, sub, positional, options, io, tool)
        if sub == "status":
            return await _status(env, kind, positional, options, io, tool)
        if sub == "config":
            return await _config(env, kind, positional, options, io, tool)
        if sub in ("snapshot", "listsnapshot", "delsnapshot", "rollback"):
            return await _snapshot_ops(env, kind, sub, positional, options, io, tool)
        if sub == "set":
            vmid = _vmid(positional, f"{tool} set <vmid> [OPTIONS]")
            await api(env, "PUT", f"/nodes/{env.node}/{kind}/{vmid}/config", options, f"{tool} set <vmid> [OPTIONS]")
            return 0
        if sub == "destroy":
            vmid = _vmid(positional, f"{tool} destroy <vmid> [OPTIONS]")
            upid = await api(env, "DELETE", f"/nodes/{env.node}/{kind}/{vmid}", options)
            return 0 if await wait_for_task(env, upid, io, echo_log=False) else FAIL
    except CliError as exc:
        io.err(exc.text)
        return FAIL
    io.err(f"ERROR: unknown command '{tool} {sub}'\nUSAGE: {tool} <COMMAND> [ARGS] [OPTIONS]\n")
    return FAIL


async def _list(env: ShellEnv, kind: str, io: Streams) -> int:
    guests = await api(env, "GET", f"/nodes/{env.node}/{kind}", {})
    if kind == "qemu":
        io.out(f"{'VMID':>10} {'NAME':<20} {'STATUS':<10} {'MEM(MB)':<10} {'BOOTDISK(GB)':>12} {'PID':<10}\n")
        for g in sorted(guests, key=lambda g: g["vmid"]):
            io.out(
                f"{g['vmid']:>10} {g.get('name', ''):<20} {g['status']:<10} {g.get('maxmem', 0) // 1048576:<10} "
                f"{g.get('maxdisk', 0) / 1024**3:>12.2f} {g.get('pid', 0):<10}\n"
            )
    else:
        io.out(f"{'VMID':<10} {'Status':<10} {'Lock':<12} {'Name':<20}\n")
        for g in sorted(guests, key=lambda g: g["vmid"]):
            io.out(f"{g['vmid']:<10} {g['status']:<10} {g.get('lock', ''):<12} {g.get('name', ''):<20}\n")
    return 0


async def _pct_exec(argv: list[str], env: ShellEnv, io: Streams) -> int:
    args = argv[2:]
    if not args:
        raise CliError("400 not enough arguments\npct exec <vmid> [<extra-args>] [OPTIONS]\n")
    vmid = args[0]
    command_args = args[2:] if len(args) > 1 and args[1] == "--" else args[1:]
    await api(env, "GET", f"/nodes/{env.node}/lxc/{vmid}/status/current", {})
    guest = env.sim.cluster.guest(env.node, int(vmid), "lxc")
    if guest is None or not guest.running:
        raise CliError(f"CT {vmid} not running\n")
    if not command_args:
        raise CliError("missing command\n")
    return await run_argv(command_args, guest_shell(env.sim, guest), io)


async def _qm_guest(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if len(argv) < 4 or argv[2] not in ("exec", "cmd"):
        raise CliError("400 not enough arguments\nqm guest exec <vmid> [<extra-args>] [OPTIONS]\n")
    vmid = argv[3]
    await api(env, "GET", f"/nodes/{env.node}/qemu/{vmid}/status/current", {})
    guest = env.sim.cluster.guest(env.node, int(vmid), "qemu")
    if guest is None:
        raise CliError(f"Configuration file 'nodes/{env.node}/qemu-server/{vmid}.conf' does not exist\n")
    try:
        assert_agent_available(guest)
    except ApiError as exc:
        raise CliError(exc.message + "\n") from None
    if argv[2] == "cmd":
        io.out("{}\n")
        return 0
    rest = argv[4:]
    command_args = rest[1:] if rest[:1] == ["--"] else rest
    process = start_process(env.sim, guest, command_args)
    while not process.exited:
        await asyncio.sleep(0.01)
    io.out(json.dumps(process_status(process), indent=3, separators=(",", " : ")) + "\n")
    return 0


async def qm(argv: list[str], env: ShellEnv, io: Streams) -> int:
    return await _guest_cli(argv, env, io, "qemu")


async def pct(argv: list[str], env: ShellEnv, io: Streams) -> int:
    return await _guest_cli(argv, env, io, "lxc")


async def pveversion(argv: list[str], env: ShellEnv, io: Streams) -> int:
    from proxmox_mcp_pve_sim.pve_output import pveversion_text

    io.out(pveversion_text(verbose=any(a in ("-v", "--verbose") for a in argv[1:])))
    return 0
