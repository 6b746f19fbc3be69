"""TLS trust (pinned fingerprint, CA file, explicit insecure) and Proxmox auth (token, password, a token
without privileges) against the real simulator."""

from __future__ import annotations

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.subjects import ApiOp

from tests.integration.api.conftest import WRONG_PIN, ApiStack
from tests.integration.api.helpers import SimClient, error, ok, wait_for_task


async def test_pinned_fingerprint_is_accepted(api_stack: ApiStack, nc: NatsClient) -> None:
    assert (await ok(nc, api_stack["pinned"], ApiOp.PROBE))["ok"] is True


async def test_a_wrong_pinned_fingerprint_is_refused_naming_both(api_stack: ApiStack, nc: NatsClient) -> None:
    failure = await error(nc, api_stack["wrongpin"], ApiOp.LIST_VMS)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert failure.message.startswith(f"certificate fingerprint mismatch: expected {WRONG_PIN}, "
                                      f"got {api_stack.sim.fingerprint.upper()}")
    probe = await ok(nc, api_stack["wrongpin"], ApiOp.PROBE)
    assert probe["ok"] is False and "fingerprint mismatch" in probe["detail"]


async def test_ca_file_verification_works(api_stack: ApiStack, nc: NatsClient) -> None:
    result = await ok(nc, api_stack["cafile"], ApiOp.LIST_VMS)
    assert result["count"] > 0


async def test_a_self_signed_certificate_without_pin_or_ca_is_refused(api_stack: ApiStack, nc: NatsClient) -> None:
    failure = await error(nc, api_stack["untrusted"], ApiOp.LIST_VMS)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert "not trusted by the system CA certificates" in failure.message


async def test_verification_off_works_and_is_warned_about_and_reported(api_stack: ApiStack, nc: NatsClient) -> None:
    assert (await ok(nc, api_stack["insecure"], ApiOp.LIST_VMS))["count"] > 0
    probe = await ok(nc, api_stack["insecure"], ApiOp.PROBE)
    assert probe["ok"] is True and probe["insecure_tls"] is True
    warnings = [line for line in api_stack.worker.log_text().splitlines() if '"INSECURE:' in line]
    assert len(warnings) == 1 and api_stack["insecure"] in warnings[0] and '"level": "warning"' in warnings[0]


async def test_user_password_login_works_for_reads_and_writes(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    cluster = api_stack["password"]
    listed = await ok(nc, cluster, ApiOp.LIST_VMS)
    assert listed["count"] == len([g for g in sim_client.get("/cluster/resources", type="vm")
                                   if g["type"] in ("qemu", "lxc")])
    guest = next(vm for vm in listed["vms"] if vm["type"] == "lxc" and vm["status"] == "running")
    started = await ok(nc, cluster, ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "reboot"})
    assert (await wait_for_task(nc, cluster, started["upid"])).user == "root@pam"


async def test_rejected_worker_credentials_are_an_upstream_error(api_stack: ApiStack, nc: NatsClient) -> None:
    token = await error(nc, api_stack["badtoken"], ApiOp.LIST_VMS)
    password = await error(nc, api_stack["badpassword"], ApiOp.LIST_VMS)
    assert token.code is password.code is ErrorCode.UPSTREAM_ERROR
    assert "Proxmox rejected the worker's credentials (401)" in token.message
    assert "Proxmox rejected the worker's user/password login (401)" in password.message


async def test_a_token_without_power_privileges_is_permission_denied(
    api_stack: ApiStack, sim_client: SimClient, nc: NatsClient
) -> None:
    guest = next(g for g in sim_client.get("/cluster/resources", type="vm") if g["type"] == "qemu")
    assert (await ok(nc, api_stack["readonly"], ApiOp.VM_STATUS, {"vmid": guest["vmid"]}))["vmid"] == guest["vmid"]
    failure = await error(nc, api_stack["readonly"], ApiOp.VM_ACTION, {"vmid": guest["vmid"], "action": "stop"})
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert "Permission check failed" in failure.message and "VM.PowerMgmt" in failure.message


async def test_the_worker_log_holds_no_secrets(api_stack: ApiStack, nc: NatsClient) -> None:
    await ok(nc, api_stack["password"], ApiOp.PROBE)
    await error(nc, api_stack["wrongpin"], ApiOp.LIST_VMS)
    text = api_stack.worker.log_text()
    for secret in (api_stack.sim.admin_token["secret"], api_stack.sim.readonly_token["secret"],
                   api_stack.sim.root_password):
        assert secret not in text
