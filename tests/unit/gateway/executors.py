"""A ToolExecutor over the fake bus for the tests of what one call goes through (catalog, clusters, tasks,
confirmation): what would have gone to NATS is recorded in the bus, the audit log is a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from proxmox_mcp_gateway.access import AccessPolicy
from proxmox_mcp_gateway.audit import AuditLog
from proxmox_mcp_gateway.calls import CallLimits, CallSecurity, ToolExecutor
from proxmox_mcp_gateway.confirm import ConfirmPolicy
from proxmox_mcp_runtime.redact import Redactor

from tests.unit.gateway.fakes import FakeBus


def make(tmp_path: Path, *, bus: FakeBus | None = None, exposed: frozenset[str] | None = None,
         clusters: tuple[str, ...] = (), confirm: ConfirmPolicy | None = None,
         poll: float = 0.01) -> tuple[ToolExecutor, FakeBus, Path]:
    bus = bus or FakeBus()
    audit = tmp_path / "audit.jsonl"
    sec = CallSecurity(access=AccessPolicy(exposed=exposed), audit=AuditLog(audit), redactor=Redactor(),
                       confirm=confirm or ConfirmPolicy(timeout=1.0))
    limits = CallLimits(default_cluster=clusters[0] if clusters else "default", clusters=clusters,
                        task_poll_interval=poll)
    return ToolExecutor(cast(Any, bus), limits, sec), bus, audit
