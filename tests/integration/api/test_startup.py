"""Starting the real `proxmox-mcp-api-worker`: the original environment variable names, and configurations
that cannot work (clear message, exit status 2, nothing served)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.helpers import WORKER, ok, start_api_worker
from tests.support.nats import NatsServer, start_nats
from tests.support.procs import start_process, wait_until
from tests.support.sim import SimInfo


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A private NATS: a worker for cluster `default` must not join other tests' `default` queue group."""
    server = start_nats(tmp_path / "nats")
    try:
        yield server
    finally:
        server.proc.stop()


@pytest.fixture
async def own_nc(own_nats: NatsServer) -> AsyncIterator[NatsClient]:
    client = await nats.connect(own_nats.url)
    try:
        yield client
    finally:
        await client.close()


def _legacy_env(sim: SimInfo, tmp_path: Path, **extra: str) -> dict[str, str]:
    token = sim.admin_token
    return {"PROXMOX_HOST": sim.host, "PROXMOX_PORT": str(sim.api_port), "PROXMOX_USER": token["user"],
            "PROXMOX_TOKEN_NAME": token["token_id"], "PROXMOX_TOKEN_VALUE": token["secret"],
            "PMCP_ENV_FILE": str(tmp_path / "absent.env"), **extra}


async def test_the_original_environment_variables_configure_the_default_cluster(
    api_sim: SimInfo, own_nats: NatsServer, own_nc: NatsClient, tmp_path: Path
) -> None:
    env = _legacy_env(api_sim, tmp_path, PROXMOX_FINGERPRINT=api_sim.fingerprint, PMCP_CONFIG="")
    worker = start_api_worker(tmp_path / "unused.toml", tmp_path, "api-worker-legacy", own_nats.url, **env)
    try:
        assert (await ok(own_nc, "default", ApiOp.PROBE))["ok"] is True
        assert (await ok(own_nc, "default", ApiOp.LIST_VMS))["count"] > 0
    finally:
        worker.stop()


async def test_proxmox_verify_ssl_false_works_with_a_loud_warning(
    api_sim: SimInfo, own_nats: NatsServer, own_nc: NatsClient, tmp_path: Path
) -> None:
    env = _legacy_env(api_sim, tmp_path, PROXMOX_VERIFY_SSL="false", PMCP_CONFIG="")
    worker = start_api_worker(tmp_path / "unused.toml", tmp_path, "api-worker-insecure", own_nats.url, **env)
    try:
        probe = await ok(own_nc, "default", ApiOp.PROBE)
        assert probe["ok"] is True and probe["insecure_tls"] is True and "NOT VERIFIED" in probe["detail"]
        assert '"level": "warning"' in worker.log_text() and "INSECURE: TLS verification" in worker.log_text()
    finally:
        worker.stop()


@pytest.mark.parametrize("env, message", [
    ({"PMCP_CONFIG": "/nonexistent/clusters.toml"}, "config file /nonexistent/clusters.toml does not exist"),
    ({"PMCP_CONFIG": "", "PROXMOX_HOST": "127.0.0.1", "PROXMOX_VERIFY_SSL": "maybe"},
     "PROXMOX_VERIFY_SSL must be true or false"),
    ({"PMCP_CONFIG": "", "PROXMOX_HOST": "127.0.0.1", "PMCP_API_CLUSTERS": "elsewhere"}, "no cluster to serve"),
    ({"PMCP_CONFIG": "", "PROXMOX_HOST": "127.0.0.1", "PMCP_DRAIN_TIMEOUT": "-1"},
     "PMCP_DRAIN_TIMEOUT: Input should be greater than 0"),
    ({"PMCP_CONFIG": "", "PROXMOX_HOST": "127.0.0.1", "PMCP_EVENT_LOOP": "tokio"},
     "PMCP_EVENT_LOOP='tokio' is not one of auto, uvloop, asyncio"),
])
def test_a_configuration_that_cannot_work_stops_the_worker_with_the_reason(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    full = {"NATS_URL": "nats://127.0.0.1:1", "LOG_LEVEL": "INFO", "PMCP_ENV_FILE": str(tmp_path / "absent.env"),
            **env}
    proc = start_process("api-worker-bad", [WORKER], tmp_path, env=full)
    try:
        wait_until(lambda: not proc.alive(), timeout=30, what="the misconfigured worker to exit")
    finally:
        proc.stop()
    assert proc.popen.returncode == 2
    assert "cannot start the api-worker" in proc.log_text() and message in proc.log_text()
