"""The workers' table of operation scopes: complete, in step with the gateway's tools, and failing closed."""

from __future__ import annotations

import pytest
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.op_scopes import OP_SCOPES, UNLISTED_OP_SCOPE, op_scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind
from proxmox_mcp_gateway.catalog import TOOLS, TOOLS_BY_NAME
from proxmox_mcp_gateway.spec import ToolSpec


def test_every_operation_of_both_workers_has_a_scope_in_the_table() -> None:
    listed = set(OP_SCOPES)
    missing = [f"{kind.value}.{op.value}" for kind, ops in ((WorkerKind.SSH, SshOp), (WorkerKind.API, ApiOp))
               for op in ops if (kind, op) not in listed]
    assert not missing, f"add these to proxmox_mcp_contracts.op_scopes.OP_SCOPES: {missing}"


@pytest.mark.parametrize("spec", TOOLS, ids=lambda spec: spec.name)
def test_a_worker_gives_each_tools_operation_the_scope_the_gateway_gives_the_tool(spec: ToolSpec) -> None:
    assert op_scope(spec.kind, spec.op, dict(spec.fixed)) == spec.scope


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_proxmox_api_writes_need_admin_like_the_gateway_says(method: str) -> None:
    args = t.ProxmoxApiArgs(method=method, path="/nodes/pve1/tasks/x")  # type: ignore[arg-type]
    assert op_scope(WorkerKind.API, ApiOp.PROXMOX_API, {"method": method}) is Scope.ADMIN
    assert TOOLS_BY_NAME["proxmox_api"].required_scope(args) is Scope.ADMIN


def test_proxmox_api_reads_only_with_get_and_get_is_its_default() -> None:
    assert op_scope(WorkerKind.API, ApiOp.PROXMOX_API, {"method": "GET", "path": "/nodes"}) is Scope.READ
    assert op_scope(WorkerKind.API, ApiOp.PROXMOX_API, {"path": "/nodes"}) is Scope.READ


@pytest.mark.parametrize("method", ["get", None, 1, "HEAD"])
def test_a_method_the_worker_would_refuse_anyway_does_not_count_as_a_read(method: object) -> None:
    assert op_scope(WorkerKind.API, ApiOp.PROXMOX_API, {"method": method}) is Scope.ADMIN


def test_an_operation_missing_from_the_table_counts_as_admin() -> None:
    assert UNLISTED_OP_SCOPE is Scope.ADMIN
    assert op_scope(WorkerKind.API, "backup_restore_everything", {}) is Scope.ADMIN
    assert op_scope(WorkerKind.SSH, ApiOp.LIST_VMS.value, {}) is Scope.ADMIN  # an api op on the ssh-worker


def test_commands_need_exec_whatever_the_command() -> None:
    for kind, op in ((WorkerKind.SSH, SshOp.EXEC), (WorkerKind.SSH, SshOp.CONTAINER_EXEC),
                     (WorkerKind.API, ApiOp.GUEST_EXEC)):
        assert op_scope(kind, op, {"command": "uptime"}) is Scope.EXEC
