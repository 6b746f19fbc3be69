"""The ssh-worker as its service builds it from its settings."""

from __future__ import annotations

import pytest
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_runtime.ssh.liveness import LivenessPolicy
from proxmox_mcp_ssh_worker.service import build_worker
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings

CLUSTER = ClusterConfig(name="lab", hosts=[HostConfig(node="pve1", address="10.0.0.1")])


async def test_the_ssh_workers_pools_probe_as_its_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMCP_SSH_LIVENESS_INTERVAL", "1.5")
    monkeypatch.setenv("PMCP_SSH_LIVENESS_MISSES", "4")
    worker, _ = build_worker(ProxmoxConfig(clusters=[CLUSTER]), SshWorkerSettings())
    try:
        assert worker.pools["lab"].liveness == LivenessPolicy(interval=1.5, misses=4)
    finally:
        await worker.close()
