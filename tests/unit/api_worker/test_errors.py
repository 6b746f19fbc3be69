"""Proxmox's error answers become our error codes with Proxmox's own words (real PVE wire shapes)."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.errors import PveHttpError, to_failure
from proxmox_mcp_contracts.errors import ErrorCode


def _map(status: int, message: str, errors: dict[str, str] | None = None, method: str = "GET",
         path: str = "/nodes/pve1/qemu/100/status/current"):
    return to_failure(PveHttpError(status, message, errors or {}), method=method, path=path)


def test_parameter_verification_failure_is_invalid_argument_naming_each_parameter() -> None:
    failure = _map(400, "Parameter verification failed.", {"vmid": "invalid format", "node": "value missing"},
                   method="POST", path="/nodes/pve1/qemu")
    assert failure.code is ErrorCode.INVALID_ARGUMENT
    assert "node: value missing" in failure.info.message and "vmid: invalid format" in failure.info.message
    assert failure.info.details["errors"] == {"vmid": "invalid format", "node": "value missing"}


def test_rejected_worker_credentials_are_an_upstream_error_without_secrets() -> None:
    failure = _map(401, "authentication failure")
    assert failure.code is ErrorCode.UPSTREAM_ERROR
    assert "credentials (401)" in failure.info.message


def test_permission_check_failure_is_permission_denied_with_proxmoxs_text() -> None:
    failure = _map(403, "Permission check failed (/vms/100, VM.PowerMgmt)", method="POST")
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert "Permission check failed (/vms/100, VM.PowerMgmt)" in failure.info.message


@pytest.mark.parametrize("message", [
    "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
    "no such task",
    "storage 'nfs1' does not exist",
    "hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known",
])
def test_missing_things_answered_with_500_are_not_found(message: str) -> None:
    assert _map(500, message).code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize("message", ["CT 100 already running", "VM 100 not running", "VM is locked (backup)",
                                     "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout"])
def test_state_errors_are_conflicts(message: str) -> None:
    failure = _map(500, message, method="POST")
    assert failure.code is ErrorCode.CONFLICT
    assert failure.info.message == message


def test_unknown_api_path_is_not_found() -> None:
    failure = _map(501, "Method 'GET /nodes/pve1/nothing' not implemented", path="/nodes/pve1/nothing")
    assert failure.code is ErrorCode.NOT_FOUND
    assert "no such API path" in failure.info.message


def test_other_server_errors_are_upstream_errors_and_only_reads_are_retryable() -> None:
    read = _map(503, "Service Unavailable")
    write = _map(503, "Service Unavailable", method="POST")
    plain = _map(500, "got timeout")
    assert read.code is write.code is plain.code is ErrorCode.UPSTREAM_ERROR
    assert read.info.retryable and not write.info.retryable and not plain.info.retryable


def test_proxy_could_not_reach_the_owning_node_is_unavailable() -> None:
    failure = _map(595, "Errors during connection establishment, proxy handshake")
    assert failure.code is ErrorCode.UNAVAILABLE


def test_long_or_multiline_messages_become_one_bounded_line() -> None:
    failure = _map(500, "first line\nsecond line " + "x" * 2000)
    assert "\n" not in failure.info.message
    assert len(failure.info.message) < 700


def test_an_unknown_task_reported_as_a_bad_parameter_is_not_found() -> None:
    failure = _map(400, "Parameter verification failed.", {"upid": "no such task"}, path="/nodes/pve1/tasks/X/status")
    assert failure.code is ErrorCode.NOT_FOUND and failure.info.message == "upid: no such task"


def test_a_bad_parameter_beside_a_missing_one_stays_invalid_argument() -> None:
    failure = _map(400, "Parameter verification failed.", {"upid": "no such task", "limit": "invalid integer"})
    assert failure.code is ErrorCode.INVALID_ARGUMENT
