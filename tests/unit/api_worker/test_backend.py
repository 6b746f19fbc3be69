"""proxmox_api paths stay below /api2/json and parameters reach Proxmox in its own encoding."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.backend import encode_params, normalize_api_path
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure


@pytest.mark.parametrize("raw, expected", [
    ("/nodes", "/nodes"),
    ("/nodes/", "/nodes"),
    ("//nodes///pve1/status", "/nodes/pve1/status"),
    ("/", ""),
    ("/nodes/pve1/storage/local/content/local%3Aiso%2Fdebian.iso", "/nodes/pve1/storage/local/content/"
     "local%3Aiso%2Fdebian.iso"),
    ("/nodes/pve1/tasks/UPID:pve1:0000ABCD:00000001:65000000:qmstart:100:root@pam:/status",
     "/nodes/pve1/tasks/UPID:pve1:0000ABCD:00000001:65000000:qmstart:100:root@pam:/status"),
    ("/nodes/pve1/qemu/100/snapshot/v1.2", "/nodes/pve1/qemu/100/snapshot/v1.2"),
])
def test_paths_are_normalized_without_changing_their_meaning(raw: str, expected: str) -> None:
    assert normalize_api_path(raw) == expected


@pytest.mark.parametrize("raw", [
    "/nodes/../access",
    "/nodes/./pve1",
    "/..",
    "/nodes/%2e%2e/access",
    "/nodes/%2E%2E%2Faccess",
    "/nodes/%252e%252e/access",
    "/nodes/pve1%2F..%2F..%2Fversion",
    "/nodes/a%5c..",
    "/nodes/%00",
    "/nodes/%0aX",
    "/api2/json/nodes",
    "/API2/extjs/nodes",
    "nodes",
    "/nodes?x=1",
    "/nodes#frag",
    "/nodes/%25252525252e",
])
def test_paths_that_could_leave_the_api_root_are_refused(raw: str) -> None:
    with pytest.raises(ServiceFailure) as caught:
        normalize_api_path(raw)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


def test_parameters_use_proxmox_encoding_booleans_as_numbers_and_none_dropped() -> None:
    encoded = encode_params({"force": True, "skiplock": False, "timeout": 30, "cpu": 0.5, "name": "web",
                             "description": None, "tags": ["a", True]})
    assert encoded == {"force": 1, "skiplock": 0, "timeout": 30, "cpu": 0.5, "name": "web", "tags": ["a", 1]}


def test_no_parameters_encode_to_an_empty_mapping() -> None:
    assert encode_params(None) == {}


@pytest.mark.parametrize("data, fragment", [
    ({"net0": {"bridge": "vmbr0"}}, "'net0' must be a string, number or boolean"),
    ({"": "x"}, "invalid parameter name"),
    ({"a\nb": "x"}, "invalid parameter name"),
    ({"list": [{"nested": 1}]}, "'list' must be"),
])
def test_nested_or_badly_named_parameters_are_refused_by_name(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ServiceFailure) as caught:
        encode_params(data)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert fragment in caught.value.info.message
