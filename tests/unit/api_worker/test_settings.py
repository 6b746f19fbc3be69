"""The api-worker's settings."""

from __future__ import annotations

import pytest
from proxmox_mcp_api_worker.settings import ApiWorkerSettings


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:4333")
    monkeypatch.setenv("PMCP_API_CLUSTERS", "a, b,")
    monkeypatch.setenv("PMCP_DRAIN_TIMEOUT", "3")
    settings = ApiWorkerSettings()
    assert settings.nats_url == "nats://127.0.0.1:4333" and settings.drain_timeout == 3.0
    assert settings.cluster_names() == ["a", "b"]
