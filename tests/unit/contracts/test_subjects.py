"""NATS subjects and endpoint names."""

from __future__ import annotations

import pytest
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, api_subject, endpoint_name, ssh_subject


def test_subjects_carry_cluster_and_op_and_refuse_bad_cluster_names() -> None:
    assert ssh_subject("default", SshOp.EXEC) == "pmcp.v1.default.ssh.exec"
    assert api_subject("lab-2", ApiOp.LIST_VMS) == "pmcp.v1.lab-2.api.list_vms"
    assert endpoint_name("lab-2", ApiOp.VM_STATUS) == "lab-2-vm_status"
    for bad in ("", "a.b", "UPPER", "x*", "has space", "a>"):
        with pytest.raises(ValueError):
            ssh_subject(bad, SshOp.EXEC)
