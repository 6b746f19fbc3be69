"""The scope each worker operation needs, as a worker can tell from the request alone: one table for both
workers, so a worker decides what reads and what changes without trusting what a request says about itself.

The freeze switch uses it (everything above read is refused while frozen, also when a request comes straight
over NATS). An operation missing from the table counts as admin: a new operation is refused while frozen until
it is listed here (tests/unit/contracts/test_op_scopes.py names any that are missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

UNLISTED_OP_SCOPE = Scope.ADMIN

OP_SCOPES: Mapping[tuple[WorkerKind, str], Scope] = MappingProxyType({
    (WorkerKind.SSH, SshOp.EXEC): Scope.EXEC,
    (WorkerKind.SSH, SshOp.PROBE): Scope.READ,
    (WorkerKind.SSH, SshOp.CONTAINER_EXEC): Scope.EXEC,
    (WorkerKind.API, ApiOp.LIST_VMS): Scope.READ,
    (WorkerKind.API, ApiOp.VM_STATUS): Scope.READ,
    (WorkerKind.API, ApiOp.VM_ACTION): Scope.OPERATE,
    (WorkerKind.API, ApiOp.NODE_STATUS): Scope.READ,
    (WorkerKind.API, ApiOp.PROXMOX_API): Scope.ADMIN,
    (WorkerKind.API, ApiOp.TASK_STATUS): Scope.READ,
    (WorkerKind.API, ApiOp.PROBE): Scope.READ,
    (WorkerKind.API, ApiOp.SNAPSHOT_LIST): Scope.READ,
    (WorkerKind.API, ApiOp.SNAPSHOT_CREATE): Scope.OPERATE,
    (WorkerKind.API, ApiOp.SNAPSHOT_DELETE): Scope.ADMIN,
    (WorkerKind.API, ApiOp.SNAPSHOT_ROLLBACK): Scope.ADMIN,
    (WorkerKind.API, ApiOp.STORAGE_LIST): Scope.READ,
    (WorkerKind.API, ApiOp.STORAGE_CONTENT): Scope.READ,
    (WorkerKind.API, ApiOp.TASK_LIST): Scope.READ,
    (WorkerKind.API, ApiOp.TASK_LOG): Scope.READ,
    (WorkerKind.API, ApiOp.CLUSTER_STATUS): Scope.READ,
    (WorkerKind.API, ApiOp.CLUSTER_RESOURCES): Scope.READ,
    (WorkerKind.API, ApiOp.NODE_NETWORK): Scope.READ,
    (WorkerKind.API, ApiOp.GUEST_EXEC): Scope.EXEC,
    (WorkerKind.API, ApiOp.BACKUP_LIST): Scope.READ,
    (WorkerKind.API, ApiOp.BACKUP_LAST): Scope.READ,
    (WorkerKind.API, ApiOp.BACKUP_JOBS): Scope.READ,
    (WorkerKind.API, ApiOp.BACKUP_START): Scope.OPERATE,
    (WorkerKind.API, ApiOp.BACKUP_RESTORE): Scope.ADMIN,
    (WorkerKind.API, ApiOp.GUEST_NETWORK): Scope.READ,
})
"""The least scope each operation needs (command operations: exec, whatever the command)."""

READ_WHEN: Mapping[tuple[WorkerKind, str], tuple[str, str]] = MappingProxyType({
    (WorkerKind.API, ApiOp.PROXMOX_API): ("method", "GET"),
})
"""Operations that only read when one argument has one value (proxmox_api's GET; its default is GET too)."""


def op_scope(kind: WorkerKind, op: str, args: Mapping[str, Any]) -> Scope:
    """The scope a request for op with these (not yet validated) arguments needs, as far as a worker can tell.

    A value the worker would refuse anyway (e.g. method "get") does not count as the reading one: fail closed."""
    key = (kind, op)
    read_when = READ_WHEN.get(key)
    if read_when is not None:
        name, value = read_when
        if args.get(name, value) == value:
            return Scope.READ
    return OP_SCOPES.get(key, UNLISTED_OP_SCOPE)
