"""The ssh-worker's own settings (environment only; secrets come from the cluster config, never argv)."""

from __future__ import annotations

from proxmox_mcp_runtime.worker_main import WorkerBaseSettings
from pydantic import Field


class SshWorkerSettings(WorkerBaseSettings):
    clusters: str | None = Field(
        default=None, validation_alias="PMCP_SSH_CLUSTERS", description="Comma list: serve only these clusters"
    )
    threads: int = Field(default=64, ge=2, le=1024, validation_alias="PMCP_SSH_THREADS")
    max_sessions_per_host: int = Field(
        default=6, ge=1, le=100, validation_alias="PMCP_SSH_MAX_SESSIONS",
        description="Commands at once per connection; sshd's MaxSessions (default 10) also counts sessions "
        "still closing, so stay a few below it",
    )
    kill_after: float = Field(default=2.0, gt=0, validation_alias="PMCP_SSH_KILL_AFTER")
    max_reply_bytes: int = Field(
        default=1_000_000, ge=16_384, validation_alias="PMCP_SSH_MAX_REPLY_BYTES",
        description="Largest JSON reply; output beyond it is cut (truncated=true). NATS refuses messages over its "
        "max_payload (1 MiB by default): raise both together",
    )
    deadline_margin: float = Field(
        default=0.5, ge=0, validation_alias="PMCP_SSH_DEADLINE_MARGIN",
        description="The command's timeout ends this long before the call's deadline, so its error wins",
    )

    def cluster_names(self) -> list[str] | None:
        if not self.clusters:
            return None
        return [name.strip() for name in self.clusters.split(",") if name.strip()]
