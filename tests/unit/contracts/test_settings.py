"""Cluster settings."""

from __future__ import annotations

import pytest
from proxmox_mcp_contracts.settings import cluster_from_legacy_env


def test_legacy_environment_names_build_one_cluster() -> None:
    cluster = cluster_from_legacy_env({
        "SSH_HOST": "10.0.0.5", "SSH_USER": "pmcp", "SSH_PORT": "2222", "SSH_KEY_PATH": "/k",
        "SSH_KEY_PASSPHRASE": "pp", "PROXMOX_HOST": "10.0.0.6", "PROXMOX_USER": "pmcp@pve",
        "PROXMOX_TOKEN_NAME": "mcp", "PROXMOX_TOKEN_VALUE": "secret-uuid", "PROXMOX_VERIFY_SSL": "false",
    })
    assert cluster.hosts[0].address == "10.0.0.5" and cluster.ssh.port == 2222 and cluster.ssh.user == "pmcp"
    assert cluster.api.host == "10.0.0.6" and cluster.api.verify_ssl is False
    assert cluster.api.token_value is not None and cluster.api.token_value.get_secret_value() == "secret-uuid"
    assert "secret-uuid" not in repr(cluster) and "pp" not in repr(cluster.ssh)
    with pytest.raises(ValueError):
        cluster_from_legacy_env({"SSH_HOST": "h", "PROXMOX_VERIFY_SSL": "maybe"})
