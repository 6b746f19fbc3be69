"""The QEMU guest agent: commands run by `agent/exec` in the emulated shell inside the guest."""

from __future__ import annotations

import asyncio

from proxmox_mcp_pve_sim.errors import failed
from proxmox_mcp_pve_sim.guest_shell import guest_shell
from proxmox_mcp_pve_sim.model import Guest
from proxmox_mcp_pve_sim.shell import Streams, run_argv
from proxmox_mcp_pve_sim.sim import AgentProcess, Sim

_background: set[asyncio.Task[None]] = set()


def assert_agent_available(guest: Guest) -> None:
    """The checks PVE::QemuServer::Agent::assert_agent_available makes, with its messages."""
    if not guest.agent_enabled:
        raise failed("No QEMU guest agent configured")
    if not guest.running:
        raise failed(f"VM {guest.vmid} is not running")
    if not guest.agent_installed or guest.paused:
        raise failed("QEMU guest agent is not running")


def start_process(sim: Sim, guest: Guest, argv: list[str], stdin: str = "") -> AgentProcess:
    sim.next_agent_pid += 1
    process = AgentProcess(pid=sim.next_agent_pid)
    sim.agent_processes.setdefault(guest.vmid, {})[process.pid] = process
    env = guest_shell(sim, guest)

    async def run() -> None:
        try:
            process.exitcode = await run_argv(argv, env, Streams(process.out.append, process.err.append, stdin))
        except asyncio.CancelledError:
            process.signal = 9
            raise
        except Exception as exc:  # a bug in an emulated command must not leave the process "running"
            process.err.append(f"pve-sim: {exc}\n")
            process.exitcode = 1
        finally:
            process.exited = True

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return process


def process_status(process: AgentProcess) -> dict[str, object]:
    status: dict[str, object] = {"exited": 1 if process.exited else 0}
    if process.exited:
        if process.signal is not None:
            status["signal"] = process.signal
        else:
            status["exitcode"] = process.exitcode if process.exitcode is not None else 0
        out, err = "".join(process.out), "".join(process.err)
        if out:
            status["out-data"] = out
        if err:
            status["err-data"] = err
    return status
