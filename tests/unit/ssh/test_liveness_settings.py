"""The SSH liveness probe's settings: worker environment variables with sane defaults, reaching every SSH pool."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.backends import ssh_pool
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from proxmox_mcp_runtime.ssh.liveness import LivenessPolicy
from proxmox_mcp_ssh_worker.service import build_worker
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings
from pydantic import ValidationError

CLUSTER = ClusterConfig(name="lab", hosts=[HostConfig(node="pve1", address="10.0.0.1")])


def test_by_default_a_host_is_probed_every_5_seconds_and_gone_after_3_misses() -> None:
    assert SshWorkerSettings().ssh_liveness() == LivenessPolicy(interval=5.0, misses=3)
    assert LivenessPolicy().window == 15.0


async def test_the_ssh_workers_pools_probe_as_its_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMCP_SSH_LIVENESS_INTERVAL", "1.5")
    monkeypatch.setenv("PMCP_SSH_LIVENESS_MISSES", "4")
    worker, _ = build_worker(ProxmoxConfig(clusters=[CLUSTER]), SshWorkerSettings())
    try:
        assert worker.pools["lab"].liveness == LivenessPolicy(interval=1.5, misses=4)
    finally:
        await worker.close()


async def test_the_api_workers_ssh_pool_probes_as_its_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMCP_SSH_LIVENESS_INTERVAL", "0")
    pool = ssh_pool(CLUSTER, ApiWorkerSettings())
    try:
        assert pool.liveness.enabled is False
    finally:
        await pool.close()


@pytest.mark.parametrize("variable, value, message", [
    ("PMCP_SSH_LIVENESS_INTERVAL", "-1", "PMCP_SSH_LIVENESS_INTERVAL: Input should be greater than or equal to 0"),
    ("PMCP_SSH_LIVENESS_MISSES", "0", "PMCP_SSH_LIVENESS_MISSES: Input should be greater than or equal to 1"),
    ("PMCP_SSH_LIVENESS_MISSES", "few", "PMCP_SSH_LIVENESS_MISSES: Input should be a valid integer"),
])
def test_a_liveness_setting_that_cannot_work_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        SshWorkerSettings()
    assert message in describe_settings_error(caught.value, SshWorkerSettings)
