"""The modes stack: two simulators, one api-worker serving every mode of both, one ssh-worker; and calling them
over NATS as the gateway does."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client as NatsClient
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Caller, ReplyEnvelope, RequestEnvelope, Scope, decode_error
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, HostConfig, SshSettings
from proxmox_mcp_contracts.subjects import ERROR_CODE_HEADER, ERROR_HEADER, ApiOp, SshOp, api_subject, ssh_subject
from pydantic import SecretStr

from tests.integration.api.helpers import ok
from tests.support.procs import Proc
from tests.support.sim import SimInfo

MODES = ("direct", "tunnel", "pvesh")
API_MODE = {"direct": "direct", "tunnel": "ssh-tunnel", "pvesh": "pvesh"}
WRONG_PIN = ":".join(["00"] * 32)
WRONG_HOST_KEY = "SHA256:" + "A" * 43
EXEC_CALLER = Caller(token_id="modes-exec", scope=Scope.EXEC, command_profile="readonly")


@dataclass
class ModesStack:
    alpha: SimInfo
    beta: SimInfo
    names: dict[str, str]
    """Role → cluster name, e.g. "alpha-direct", "beta-pvesh", "alpha-tunnel-cafile"."""
    nats_url: str
    api_worker: Proc
    ssh_worker: Proc
    config_path: Path

    def __getitem__(self, role: str) -> str:
        return self.names[role]


def sim_cluster(name: str, sim: SimInfo, mode: str, *, ssh: dict[str, Any] | None = None,
                **api: Any) -> ClusterConfig:
    """A cluster for one simulator: its SSH face per node (pinned host key, the printed client key) and its API
    by token with the pinned certificate, reached the way `mode` says. So that each mode can only work the way
    it claims to: the tunnel goes to the host's 127.0.0.1:8006 (the simulator's SSH face maps that port to its
    API; nothing listens on 8006 here), and the pvesh clusters have no API credentials or port at all."""
    token = sim.admin_token
    api_settings: dict[str, Any] = {
        "mode": API_MODE[mode], "host": sim.host if mode == "direct" else None,
        "port": {"direct": sim.api_port, "tunnel": 8006, "pvesh": 1}[mode], "timeout": 5.0,
    }
    if mode != "pvesh":
        api_settings.update({"user": token["user"], "token_name": token["token_id"],
                             "token_value": SecretStr(token["secret"]), "fingerprint": sim.fingerprint})
    api_settings.update(api)
    ssh_settings: dict[str, Any] = {"user": sim.ssh_user, "key_path": Path(sim.ssh_private_key),
                                    "host_key_fingerprints": [sim.ssh_host_key_fingerprint], "connect_timeout": 5.0}
    ssh_settings.update(ssh or {})
    hosts = [HostConfig(node=node, address=sim.host, port=port) for node, port in sim.ssh_node_ports.items()]
    return ClusterConfig(name=name, hosts=hosts, ssh=SshSettings(**ssh_settings), api=ApiSettings(**api_settings))


def caller_envelope(cluster: str, op: str, args: dict[str, Any], caller: Caller, timeout: float) -> RequestEnvelope:
    return RequestEnvelope(op=op, cluster=cluster, args=args, deadline=time.time() + timeout, caller=caller)


async def api_call(nc: NatsClient, cluster: str, op: ApiOp, args: dict[str, Any] | None = None, *,
                   caller: Caller = EXEC_CALLER, timeout: float = 15.0) -> dict[str, Any] | ErrorInfo:
    envelope = caller_envelope(cluster, op.value, args or {}, caller, timeout)
    reply = await nc.request(api_subject(cluster, op), envelope.model_dump_json().encode(), timeout=timeout + 5)
    return _decode(reply)


async def ssh_call(nc: NatsClient, cluster: str, op: SshOp, args: dict[str, Any], *,
                   caller: Caller = EXEC_CALLER, timeout: float = 15.0) -> dict[str, Any] | ErrorInfo:
    envelope = caller_envelope(cluster, op.value, args, caller, timeout)
    reply = await nc.request(ssh_subject(cluster, op), envelope.model_dump_json().encode(), timeout=timeout + 5)
    return _decode(reply)


def _decode(reply: Any) -> dict[str, Any] | ErrorInfo:
    headers = reply.headers or {}
    if ERROR_CODE_HEADER in headers:
        return decode_error(headers.get(ERROR_CODE_HEADER), headers.get(ERROR_HEADER), reply.data)
    return ReplyEnvelope.model_validate_json(reply.data).result


def result_of(answer: dict[str, Any] | ErrorInfo) -> dict[str, Any]:
    assert isinstance(answer, dict), f"expected a result, got {answer!r}"
    return answer


def error_of(answer: dict[str, Any] | ErrorInfo) -> ErrorInfo:
    assert isinstance(answer, ErrorInfo), f"expected an error, got {answer!r}"
    return answer


async def follow(nc: NatsClient, cluster: str, upid: str, *, timeout: float = 15.0) -> dict[str, Any]:
    """Poll task_status until the task stopped, as the gateway does for wait=true."""
    deadline = time.monotonic() + timeout
    while True:
        task = await ok(nc, cluster, ApiOp.TASK_STATUS, {"upid": upid, "log_lines": 20})
        if task["status"] == "stopped":
            return task
        assert time.monotonic() < deadline, f"task {upid} still running after {timeout}s"
        await asyncio.sleep(0.03)


def guests(result: dict[str, Any]) -> list[t.VmSummary]:
    return t.ListVmsResult.model_validate(result).vms
