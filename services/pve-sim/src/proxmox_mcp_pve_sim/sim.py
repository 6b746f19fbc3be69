"""One simulated cluster: state, access control, tasks and faults (`dispatch.py` answers API calls on it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxmox_mcp_pve_sim.access import AccessControl
from proxmox_mcp_pve_sim.faults import Faults
from proxmox_mcp_pve_sim.model import Cluster, build_cluster
from proxmox_mcp_pve_sim.tasks import TaskManager


@dataclass(frozen=True)
class SimOptions:
    seed: int = 7
    nodes: int = 3
    guests: int = 8
    task_duration: float = 1.0
    auth_fail_delay: float = 0.0


@dataclass
class AgentProcess:
    """A command started through the guest agent (`agent/exec`), polled with `agent/exec-status`."""

    pid: int
    exited: bool = False
    exitcode: int | None = None
    signal: int | None = None
    out: list[str] = field(default_factory=list[str])
    err: list[str] = field(default_factory=list[str])


class Sim:
    def __init__(self, options: SimOptions, *, faults: Faults | None = None, fingerprint: str = "") -> None:
        self.options = options
        self.access = AccessControl()
        self.faults = faults or Faults()
        self.fingerprint = fingerprint
        self.cluster: Cluster = build_cluster(options.seed, options.nodes, options.guests)
        self.tasks = TaskManager(options.task_duration)
        self.agent_processes: dict[int, dict[int, AgentProcess]] = {}
        self.next_agent_pid = 1000

    @property
    def node_names(self) -> list[str]:
        return list(self.cluster.nodes)

    def reset(self) -> None:
        """Back to the seeded state; secrets and faults stay."""
        self.tasks.clear()
        self.cluster = build_cluster(self.options.seed, self.options.nodes, self.options.guests)
        self.agent_processes.clear()
