"""The api-worker's own settings (environment only; Proxmox credentials come from the cluster config, never argv)."""

from __future__ import annotations

from proxmox_mcp_runtime.worker_main import WorkerBaseSettings
from pydantic import Field


class ApiWorkerSettings(WorkerBaseSettings):
    clusters: str | None = Field(
        default=None, validation_alias="PMCP_API_CLUSTERS", description="Comma list: serve only these clusters"
    )
    threads: int = Field(
        default=32, ge=2, le=512, validation_alias="PMCP_API_THREADS",
        description="Blocking Proxmox requests at once per cluster (also the HTTPS connection pool size)",
    )
    node_concurrency: int = Field(
        default=4, ge=1, le=64, validation_alias="PMCP_API_NODE_CONCURRENCY",
        description="node_status for all nodes: node status requests at once",
    )
    deadline_margin: float = Field(
        default=0.2, ge=0, validation_alias="PMCP_API_DEADLINE_MARGIN",
        description="Proxmox requests time out this long before the call's deadline, so their error wins",
    )
    max_reply_bytes: int = Field(
        default=1_000_000, ge=16_384, validation_alias="PMCP_API_MAX_REPLY_BYTES",
        description="Largest JSON reply; NATS refuses messages over its max_payload (1 MiB by default)",
    )
    task_log_page: int = Field(
        default=500, ge=10, le=50_000, validation_alias="PMCP_API_TASK_LOG_PAGE",
        description="Task log lines fetched per request while looking for a log's tail",
    )
    task_log_max_pages: int = Field(default=40, ge=1, le=1000, validation_alias="PMCP_API_TASK_LOG_MAX_PAGES")
    ssh_sessions: int = Field(
        default=6, ge=1, le=100, validation_alias="PMCP_API_SSH_MAX_SESSIONS",
        description="pvesh mode: pvesh commands at once per SSH connection (stay below sshd's MaxSessions)",
    )
    pvesh_max_output: int = Field(
        default=16 * 1024 * 1024, ge=65_536, validation_alias="PMCP_API_PVESH_MAX_OUTPUT",
        description="pvesh mode: largest pvesh answer read (bytes); a larger one fails with a hint to narrow it",
    )
    guest_exec_poll: float = Field(
        default=0.5, gt=0, le=10, validation_alias="PMCP_API_GUEST_EXEC_POLL",
        description="guest_exec: longest pause between agent/exec-status polls (seconds; starts at 50 ms)",
    )

    def cluster_names(self) -> list[str] | None:
        if not self.clusters:
            return None
        return [name.strip() for name in self.clusters.split(",") if name.strip()]
