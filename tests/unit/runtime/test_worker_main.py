"""The SSH liveness probe's settings, which every worker has: environment variables with sane defaults. That they reach
each worker's SSH pools: ssh_worker/test_service.py, api_worker/test_backends.py."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from proxmox_mcp_runtime.ssh.liveness import LivenessPolicy
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings
from pydantic import ValidationError


def test_by_default_a_host_is_probed_every_5_seconds_and_gone_after_3_misses() -> None:
    assert SshWorkerSettings().ssh_liveness() == LivenessPolicy(interval=5.0, misses=3)
    assert LivenessPolicy().window == 15.0


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


@pytest.mark.parametrize("state, stale_after", [("local", 2.0), ("jetstream", 10.0)])
def test_the_freeze_switch_goes_unknown_after_a_window_longer_than_a_leader_election_on_jetstream(
    monkeypatch: pytest.MonkeyPatch, state: str, stale_after: float
) -> None:
    monkeypatch.setenv("PMCP_STATE", state)
    assert SshWorkerSettings().control_timing().stale_after == stale_after
    monkeypatch.setenv("PMCP_CONTROL_STALE_AFTER", "4")
    assert SshWorkerSettings().control_timing().stale_after == 4.0
