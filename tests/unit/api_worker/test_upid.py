"""Task ids in the real Proxmox format."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.upid import parse_upid
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure


def test_upid_fields_are_decoded() -> None:
    upid = parse_upid("UPID:pve-2:0001A2B3:00C0FFEE:6560A1B2:qmstart:100:root@pam!mcp:")
    assert (upid.node, upid.pid, upid.pstart, upid.starttime) == ("pve-2", 0x1A2B3, 0xC0FFEE, 0x6560A1B2)
    assert (upid.type, upid.id, upid.user) == ("qmstart", "100", "root@pam!mcp")


def test_upid_with_empty_id_is_accepted() -> None:
    assert parse_upid("UPID:pve1:00000001:00000002:00000003:aptupdate::root@pam:").id == ""


@pytest.mark.parametrize("text", [
    "UPID:pve1:00000001:00000002:00000003:qmstart:100:root@pam",
    "TASK:pve1:00000001:00000002:00000003:qmstart:100:root@pam:",
    "UPID::00000001:00000002:00000003:qmstart:100:root@pam:",
    "UPID:pve1:zzzzzzzz:00000002:00000003:qmstart:100:root@pam:",
])
def test_malformed_upids_are_invalid_arguments(text: str) -> None:
    with pytest.raises(ServiceFailure) as caught:
        parse_upid(text)
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
