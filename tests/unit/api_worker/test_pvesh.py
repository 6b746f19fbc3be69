"""The pvesh backend's pure parts: the argv it sends, and pvesh's output and error text turned into the same
answers and error codes as the HTTPS API (messages as the simulator's SSH face and real pvesh print them)."""

from __future__ import annotations

import shlex

import pytest
from proxmox_mcp_api_worker.backend import encode_params
from proxmox_mcp_api_worker.errors import to_failure
from proxmox_mcp_api_worker.pvesh import parse_error, parse_output, pvesh_argv, pvesh_path
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

USAGE = "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"


def test_argv_uses_key_equals_value_so_values_may_start_with_a_dash() -> None:
    argv = pvesh_argv("POST", "/nodes/pve1/qemu/100/snapshot",
                      encode_params({"snapname": "s1", "description": "-x; rm -rf / $(id)", "vmstate": True,
                                     "none": None}))
    assert argv == ["pvesh", "create", "/nodes/pve1/qemu/100/snapshot", "--snapname=s1",
                    "--description=-x; rm -rf / $(id)", "--vmstate=1", "--output-format", "json"]
    assert shlex.split(shlex.join(argv)) == argv


def test_lists_become_repeated_options_and_verbs_follow_the_method() -> None:
    argv = pvesh_argv("POST", "/nodes/pve1/qemu/100/agent/exec", {"command": ["ls", "-la", "/"]})
    assert argv[1] == "create" and argv[3:6] == ["--command=ls", "--command=-la", "--command=/"]
    assert [pvesh_argv(m, "/version", None)[1] for m in ("GET", "POST", "PUT", "DELETE")] == \
        ["get", "create", "set", "delete"]


def test_path_segments_are_decoded_and_a_decoded_slash_is_refused() -> None:
    assert pvesh_path("/nodes/pve1/storage/local/content/local%3Aiso") == "/nodes/pve1/storage/local/content/local:iso"
    assert pvesh_path("") == "/"
    with pytest.raises(ServiceFailure) as caught:
        pvesh_path("/nodes/pve1/storage/local/content/local%3Aiso%2Fx.iso")
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("key", ["output-format", "quiet", "noborder"])
def test_pveshs_own_options_are_not_api_parameters(key: str) -> None:
    with pytest.raises(ServiceFailure) as caught:
        pvesh_argv("GET", "/version", {key: "text"})
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


def test_output_is_the_json_answer_or_the_last_line_after_a_tasks_output() -> None:
    assert parse_output(b'[{"vmid":100}]\n', "GET", "/x") == [{"vmid": 100}]
    assert parse_output(b"null\n", "PUT", "/x") is None
    assert parse_output(b"", "PUT", "/x") is None
    task = b"snapshotting 'drive-scsi0'\n{not json\n\"UPID:pve1:0001F402:001E25C9:6B06A823:qmsnapshot:100:root@pam:\"\n"
    assert parse_output(task, "POST", "/x") == "UPID:pve1:0001F402:001E25C9:6B06A823:qmsnapshot:100:root@pam:"
    with pytest.raises(ServiceFailure) as caught:
        parse_output(b"a table\nnot json\n", "GET", "/x")
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR


@pytest.mark.parametrize("stderr, status, code, fragment", [
    (f"400 Parameter verification failed.\nvmid: type check ('integer') failed - got 'abc'\n{USAGE}", 400,
     ErrorCode.INVALID_ARGUMENT, "vmid: type check ('integer') failed - got 'abc'"),
    (f"400 unable to parse option\nmissing value for option 'x'\n{USAGE}", 400, ErrorCode.INVALID_ARGUMENT,
     "unable to parse option"),
    ("Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist\n", 500, ErrorCode.NOT_FOUND,
     "999.conf"),
    ("hostname lookup 'pve9' failed - failed to get address info for: pve9: Name or service not known\n", 500,
     ErrorCode.NOT_FOUND, "pve9"),
    ("CT 100 already running\n", 500, ErrorCode.CONFLICT, "CT 100 already running"),
    ("snapshot name 's1' already used\n", 500, ErrorCode.CONFLICT, "already used"),
    ("No 'get' handler defined for '/nope'\n", 501, ErrorCode.NOT_FOUND, "GET /nope"),
    ("403 Permission check failed (/vms/100, VM.PowerMgmt)\n", 403, ErrorCode.PERMISSION_DENIED, "VM.PowerMgmt"),
    ("warning: something odd\nstorage 'x' is not online\n", 500, ErrorCode.UPSTREAM_ERROR, "is not online"),
    ("", 500, ErrorCode.UPSTREAM_ERROR, "without a message"),
])
def test_errors_map_to_the_same_codes_as_https(stderr: str, status: int, code: ErrorCode, fragment: str) -> None:
    error = parse_error(stderr.encode(), "GET", "/nope" if status == 501 else "/x")
    assert error.status == status
    failure = to_failure(error, method="GET", path="/nope" if status == 501 else "/x")
    assert failure.code is code and fragment in failure.info.message


def test_an_unknown_task_reported_as_a_bad_parameter_is_not_found() -> None:
    error = parse_error(b"400 Parameter verification failed.\nupid: no such task\n", "GET", "/x")
    assert error.errors == {"upid": "no such task"}
    assert to_failure(error, method="GET", path="/x").code is ErrorCode.NOT_FOUND
