"""One simulated cluster: state, access control, tasks and faults (`dispatch.py` answers API calls on it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from proxmox_mcp_pve_sim.access import AccessControl
from proxmox_mcp_pve_sim.faults import Faults
from proxmox_mcp_pve_sim.model import Cluster
from proxmox_mcp_pve_sim.persisted import SimSecrets
from proxmox_mcp_pve_sim.seed import seeded_cluster
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
    def __init__(
        self,
        options: SimOptions,
        *,
        faults: Faults | None = None,
        fingerprint: str = "",
        sim_secrets: SimSecrets | None = None,
    ) -> None:
        self.options = options
        self.access = AccessControl(sim_secrets)
        self.faults = faults or Faults()
        self.fingerprint = fingerprint
        self.cluster: Cluster = seeded_cluster(options.seed, options.nodes, options.guests)
        self.tasks = TaskManager(options.task_duration)
        self.agent_processes: dict[int, dict[int, AgentProcess]] = {}
        self.next_agent_pid = 1000
        self.requests: Counter[str] = Counter()
        """API requests served since start, by "METHOD /path" (authenticated ones; GET /_sim/requests)."""

    @property
    def node_names(self) -> list[str]:
        return list(self.cluster.nodes)

    @property
    def api_node(self) -> str | None:
        """The node whose API answers: the first one online (a client fails over to a surviving node); None when
        every node is down and nothing answers at all."""
        return next((node.name for node in self.cluster.nodes.values() if node.answers), None)

    def set_node_online(self, node: str, online: bool, *, reachable: bool | None = None,
                        proxy_delay: float = 0.0) -> None:
        """Cut a node off from the cluster (or bring it back): the cluster then shows it offline and its guests
        with an unknown status, and requests proxied to it fail after proxy_delay seconds. online=True with
        reachable=False: the cluster still counts the node, but requests to it fail (the moments before corosync
        notices, or a hung API on that node)."""
        state = self.cluster.nodes[node]
        state.online = online
        state.reachable = online if reachable is None else reachable and online
        state.proxy_delay = 0.0 if state.answers else proxy_delay

    def reset(self) -> None:
        """Back to the seeded state; secrets and faults stay."""
        self.tasks.clear()
        self.cluster = seeded_cluster(self.options.seed, self.options.nodes, self.options.guests)
        self.agent_processes.clear()
