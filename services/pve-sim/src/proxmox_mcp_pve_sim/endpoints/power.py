"""Power actions, with the state checks exactly where qemu-server and pve-container make them.

qemu: the API forks the worker and the *task* fails (`VM 100 already running`); reset, reboot,
suspend and resume check `VM 100 not running` before forking; stop/shutdown of a stopped VM
succeed quietly. lxc: every action checks before forking (500 `CT 100 already running`).
The guest's state changes only when the task finishes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import find_guest
from proxmox_mcp_pve_sim.errors import TaskFailed, failed
from proxmox_mcp_pve_sim.model import Guest, GuestKind
from proxmox_mcp_pve_sim.tasks import Task

ACTIONS: tuple[tuple[GuestKind, str], ...] = (
    *(("qemu", a) for a in ("start", "stop", "shutdown", "reboot", "reset", "suspend", "resume")),
    *(("lxc", a) for a in ("start", "stop", "shutdown", "reboot", "suspend", "resume")),
)
TASK_TYPES = {
    "qemu": {
        "start": "qmstart",
        "stop": "qmstop",
        "shutdown": "qmshutdown",
        "reboot": "qmreboot",
        "reset": "qmreset",
        "suspend": "qmsuspend",
        "resume": "qmresume",
    },
    "lxc": {
        "start": "vzstart",
        "stop": "vzstop",
        "shutdown": "vzshutdown",
        "reboot": "vzreboot",
        "suspend": "vzsuspend",
        "resume": "vzresume",
    },
}
_pids = random.Random(4242)


def _boot(guest: Guest) -> None:
    guest.status = "running"
    guest.paused = False
    guest.started_at = time.time()
    guest.pid = _pids.randint(1500, 4_000_000)


def _halt(guest: Guest) -> None:
    guest.status = "stopped"
    guest.paused = False
    guest.started_at = None
    guest.pid = None


def _api_check(call: Call, guest: Guest, action: str) -> None:
    vmid = guest.vmid
    if guest.kind == "lxc":
        if action == "start":
            if guest.running:
                raise failed(f"CT {vmid} already running")
            if guest.template:
                raise failed("you can't start a CT if it's a template")
        elif not guest.running:
            raise failed(f"CT {vmid} not running")
        return
    if action in ("reset", "reboot", "suspend") and not guest.running:
        raise failed(f"VM {vmid} not running")
    if action == "resume" and not guest.running and not call.get("nocheck"):
        raise failed(f"VM {vmid} not running")
    if action in ("shutdown", "reboot") and guest.paused and not call.get("forceStop"):
        raise failed("VM is paused - cannot shutdown")


def _task_step(guest_kind: GuestKind, vmid: int, action: str) -> Callable[[Guest, Task], bool]:
    """Check + effect run inside the task, under the guest lock; returns False to skip the work."""

    def step(guest: Guest, task: Task) -> bool:
        label = "VM" if guest_kind == "qemu" else "CT"
        if action == "start":
            if guest.running:
                raise TaskFailed(f"{label} {vmid} already running")
            if guest.template:
                raise TaskFailed(f"you can't start a {'vm' if guest_kind == 'qemu' else 'CT'} if it's a template")
            return True
        if action in ("stop", "shutdown"):
            if not guest.running:
                if guest_kind == "lxc":
                    raise TaskFailed(f"CT {vmid} not running")
                return False
            return True
        if not guest.running:
            raise TaskFailed(f"{label} {vmid} not running")
        return True

    return step


def _apply(guest: Guest, action: str) -> None:
    if action == "start":
        _boot(guest)
    elif action in ("stop", "shutdown"):
        _halt(guest)
    elif action == "reboot":
        _boot(guest)
    elif action == "suspend":
        guest.paused = True
    elif action == "resume":
        guest.paused = False


START_LINES = {
    "start": "starting {label} {vmid} on node '{node}'",
    "stop": "stopping {label} {vmid} (hard stop)",
    "shutdown": "requesting clean shutdown of {label} {vmid}",
    "reboot": "rebooting {label} {vmid}",
    "reset": "resetting {label} {vmid}",
    "suspend": "suspending {label} {vmid}",
    "resume": "resuming {label} {vmid}",
}


def run_action(call: Call, kind: GuestKind, action: str) -> str:
    """Check, fork the worker task, return its UPID."""
    sim = call.sim
    guest = find_guest(call, kind)
    _api_check(call, guest, action)
    vmid, node = guest.vmid, guest.node
    step = _task_step(kind, vmid, action)
    label = "VM" if kind == "qemu" else "CT"

    async def body(task: Task) -> None:
        current = sim.cluster.guest(node, vmid, kind)
        if current is None:
            raise TaskFailed(f"Configuration file '{guest.config_path()}' does not exist")
        if not step(current, task):
            return
        task.write(START_LINES[action].format(label=label, vmid=vmid, node=node))
        await task.work()
        if sim.cluster.guest(node, vmid, kind) is current:
            _apply(current, action)

    folder = "qemu-server" if kind == "qemu" else "lxc"
    return sim.tasks.start(
        node,
        TASK_TYPES[kind][action],
        str(vmid),
        call.caller,
        body,
        lock=f"{kind}-{vmid}",
        lock_file=f"/var/lock/{folder}/lock-{vmid}.conf",
    ).upid
