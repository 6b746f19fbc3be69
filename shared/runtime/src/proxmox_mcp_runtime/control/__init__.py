"""The freeze switch (kill switch) that gateways and workers share: one rule (`freeze_refusal`), what a process
knows of the switch (`FreezeGuard`), where it reads it (the control bucket, or the gateway's relay in local
mode), and the store operations (change, audit claims)."""

from proxmox_mcp_runtime.control.guard import (
    ControlTiming,
    FreezeGuard,
    FreezeSource,
    FreezeStatus,
    Observation,
    above_read,
    freeze_refusal,
)
from proxmox_mcp_runtime.control.store import CONTROL_BUCKET, FreezeStoreError, change_freeze, read_freeze

__all__ = [
    "CONTROL_BUCKET",
    "ControlTiming",
    "FreezeGuard",
    "FreezeSource",
    "FreezeStatus",
    "FreezeStoreError",
    "Observation",
    "above_read",
    "change_freeze",
    "freeze_refusal",
    "read_freeze",
]
