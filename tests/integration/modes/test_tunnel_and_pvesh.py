"""What is particular to the SSH modes: trust through the tunnel (pin, CA file, tickets), SSH failures named as
such, the tunnel recovering from a dead SSH connection, pvesh's quoting, and injected API failures mapping to the
same error in every mode."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client as NatsClient
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_api_worker.tunnel import TunnelBackend
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.helpers import SimClient
from tests.integration.modes.helpers import MODES, ModesStack, api_call, error_of, follow, result_of, sim_cluster
from tests.support.sim import clear_sim_faults, sim_faults


async def test_tls_trust_and_ticket_login_work_through_the_tunnel(modes_stack: ModesStack, nc: NatsClient) -> None:
    for role in ("alpha-tunnel", "alpha-tunnel-cafile", "alpha-tunnel-password"):
        probe = result_of(await api_call(nc, modes_stack[role], ApiOp.PROBE))
        assert probe["ok"] is True and probe["insecure_tls"] is False, (role, probe)
        assert result_of(await api_call(nc, modes_stack[role], ApiOp.LIST_VMS))["count"] > 0


async def test_a_wrong_certificate_pin_is_refused_through_the_tunnel(modes_stack: ModesStack, nc: NatsClient) -> None:
    failure = error_of(await api_call(nc, modes_stack["alpha-tunnel-wrongpin"], ApiOp.LIST_VMS))
    assert failure.code is ErrorCode.PERMISSION_DENIED and "fingerprint mismatch" in failure.message
    assert modes_stack.alpha.fingerprint in failure.message


@pytest.mark.parametrize("role", ["alpha-tunnel-badhostkey", "alpha-pvesh-badhostkey"])
async def test_an_untrusted_ssh_host_key_is_refused_and_named(modes_stack: ModesStack, nc: NatsClient,
                                                              role: str) -> None:
    failure = error_of(await api_call(nc, modes_stack[role], ApiOp.LIST_VMS))
    assert failure.code is ErrorCode.PERMISSION_DENIED, failure
    assert "host key" in failure.message and modes_stack.alpha.ssh_host_key_fingerprint in failure.message
    if "tunnel" in role:
        assert "SSH tunnel" in failure.message


async def test_the_tunnel_comes_back_after_its_ssh_connection_dies(modes_stack: ModesStack) -> None:
    """In process, so the SSH connection can be cut: the next requests reconnect and go through a new channel,
    and a dead local listener is replaced."""
    from proxmox_mcp_api_worker.backends import build_backend

    cluster = sim_cluster("tunnel-recovery", modes_stack.alpha, "tunnel")
    backend, problem = build_backend(cluster, ApiWorkerSettings())
    assert problem is None and isinstance(backend, TunnelBackend)
    try:
        assert (await backend.request("GET", "/version", timeout=5))["version"]
        first_port = backend.local_port
        for transport in list(backend.pool._transports.values()):  # pyright: ignore[reportPrivateUsage]
            transport.close()
        nodes = await backend.request("GET", "/nodes", timeout=5)
        assert {n["node"] for n in nodes} == set(modes_stack.alpha.nodes)
        assert backend.pool.stats.reconnects == 1 and backend.local_port == first_port
        assert backend._forward is not None  # pyright: ignore[reportPrivateUsage]
        await backend._forward.aclose()  # pyright: ignore[reportPrivateUsage]
        assert (await backend.request("GET", "/version", timeout=5))["version"]
        assert backend.local_port != first_port
    finally:
        await backend.close()


async def test_pvesh_passes_awkward_values_intact(modes_stack: ModesStack, alpha_client: SimClient,
                                                  nc: NatsClient) -> None:
    vm = next(g for g in alpha_client.get("/cluster/resources", type="vm")
              if g["type"] == "qemu" and not g.get("template"))
    awkward = "it's \"quoted\" $(id) `id`; --flag -1 ünïcode\\"
    cluster = modes_stack["alpha-pvesh"]
    created = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_CREATE,
                                       {"vmid": vm["vmid"], "name": "awkward", "description": awkward}))
    assert (await follow(nc, cluster, created["upid"]))["ok"] is True
    seen = result_of(await api_call(nc, modes_stack["alpha-direct"], ApiOp.SNAPSHOT_LIST, {"vmid": vm["vmid"]}))
    assert next(s for s in seen["snapshots"] if s["name"] == "awkward")["description"] == awkward
    deleted = result_of(await api_call(nc, cluster, ApiOp.SNAPSHOT_DELETE, {"vmid": vm["vmid"], "name": "awkward"}))
    await follow(nc, cluster, deleted["upid"])
    refused = error_of(await api_call(nc, cluster, ApiOp.PROXMOX_API,
                                      {"path": "/version", "data": {"output-format": "text"}}))
    assert refused.code is ErrorCode.INVALID_ARGUMENT and "pvesh" in refused.message


async def test_an_injected_api_failure_is_the_same_error_in_every_mode(modes_stack: ModesStack,
                                                                       nc: NatsClient) -> None:
    await asyncio.to_thread(sim_faults, modes_stack.alpha, [
        {"path": "^/nodes/[^/]+/network$", "error_rate": 1.0, "status": 500, "message": "injected failure"}])
    try:
        failures = [error_of(await api_call(nc, modes_stack[f"alpha-{mode}"], ApiOp.NODE_NETWORK, {"node": "pve1"}))
                    for mode in MODES]
    finally:
        await asyncio.to_thread(clear_sim_faults, modes_stack.alpha)
    assert {(f.code, f.message) for f in failures} == {(ErrorCode.UPSTREAM_ERROR, failures[0].message)}
    assert "injected failure" in failures[0].message
