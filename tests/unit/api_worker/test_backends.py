"""The api-worker's backends as its settings build them."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.backends import ssh_pool
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig

CLUSTER = ClusterConfig(name="lab", hosts=[HostConfig(node="pve1", address="10.0.0.1")])


async def test_the_api_workers_ssh_pool_probes_as_its_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMCP_SSH_LIVENESS_INTERVAL", "0")
    pool = ssh_pool(CLUSTER, ApiWorkerSettings())
    try:
        assert pool.liveness.enabled is False
    finally:
        await pool.close()
