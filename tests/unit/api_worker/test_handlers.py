"""The api-worker's endpoints, argument checks and configuration problems (no network: nothing is called)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_api_worker.handlers import SERVED_OPS, ApiWorker
from proxmox_mcp_api_worker.operations import ClusterOperations
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_contracts.envelope import Caller, RequestEnvelope, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, ProxmoxConfig
from proxmox_mcp_contracts.subjects import ApiOp, api_subject
from pydantic import SecretStr

from tests.unit.api_worker.test_operations import ScriptedBackend

PIN = ":".join(["AB"] * 32)


def _api(**extra: Any) -> ApiSettings:
    values: dict[str, Any] = {"host": "127.0.0.1", "token_name": "mcp", "token_value": SecretStr("s3cret"),
                              "fingerprint": PIN}
    values.update(extra)
    return ApiSettings(**values)


def _worker(*clusters: ClusterConfig, **settings: Any) -> ApiWorker:
    return ApiWorker(ProxmoxConfig(clusters=list(clusters)), ApiWorkerSettings(**settings))


def _envelope(op: ApiOp, args: dict[str, Any], cluster: str = "lab") -> RequestEnvelope:
    return RequestEnvelope(op=op.value, cluster=cluster, args=args, deadline=time.time() + 10,
                           caller=Caller(token_id="t", scope=Scope.READ))


def _handler(worker: ApiWorker, cluster: str, op: ApiOp):
    return next(e.handler for e in worker.endpoints() if e.subject == api_subject(cluster, op))


def test_every_operation_has_an_endpoint_per_served_cluster() -> None:
    worker = _worker(ClusterConfig(name="lab", api=_api()), ClusterConfig(name="prod", api=_api()),
                     clusters="prod")
    subjects = {e.subject for e in worker.endpoints()}
    assert subjects == {api_subject("prod", op) for op in SERVED_OPS}
    assert {e.name for e in worker.endpoints()} == {f"prod-{op.value}" for op in SERVED_OPS}


async def test_bad_arguments_are_refused_by_name_before_proxmox_is_asked() -> None:
    worker = _worker(ClusterConfig(name="lab", api=_api()))
    backend = ScriptedBackend({})
    worker.operations["lab"] = ClusterOperations("lab", backend, ceiling=5)
    with pytest.raises(ServiceFailure) as caught:
        await _handler(worker, "lab", ApiOp.VM_STATUS)(_envelope(ApiOp.VM_STATUS, {"vmid": 5, "bogus": 1}))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert "vmid:" in caught.value.info.message and "bogus:" in caught.value.info.message
    assert backend.requests == []


async def test_a_request_for_another_cluster_than_its_subject_is_refused() -> None:
    worker = _worker(ClusterConfig(name="lab", api=_api()))
    with pytest.raises(ServiceFailure) as caught:
        await _handler(worker, "lab", ApiOp.LIST_VMS)(_envelope(ApiOp.LIST_VMS, {}, cluster="prod"))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT


async def test_a_result_too_big_for_one_reply_is_refused_with_a_hint() -> None:
    worker = _worker(ClusterConfig(name="lab", api=_api()), max_reply_bytes=16_384)
    worker.operations["lab"] = ClusterOperations(
        "lab", ScriptedBackend({("GET", "/nodes/pve1/syslog"): ["x" * 100] * 500}), ceiling=5)
    envelope = _envelope(ApiOp.PROXMOX_API, {"method": "GET", "path": "/nodes/pve1/syslog"})
    with pytest.raises(ServiceFailure) as caught:
        await _handler(worker, "lab", ApiOp.PROXMOX_API)(envelope)
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR and "narrow it" in caught.value.info.message


async def test_results_are_plain_json_dicts() -> None:
    worker = _worker(ClusterConfig(name="lab", api=_api()))
    worker.operations["lab"] = ClusterOperations("lab", ScriptedBackend({("GET", "/version"): {"version": "8"}}),
                                                 ceiling=5)
    result = await _handler(worker, "lab", ApiOp.PROBE)(_envelope(ApiOp.PROBE, {}))
    assert result["ok"] is True and result["insecure_tls"] is False and result["detail"] == "Proxmox VE 8"


@pytest.mark.parametrize("cluster, fragment", [
    (ClusterConfig(name="lab", api=_api(mode="pvesh", host=None)), "api mode 'pvesh' needs an SSH host"),
    (ClusterConfig(name="lab", api=_api(mode="ssh-tunnel", host=None)), "api mode 'ssh-tunnel' needs an SSH host"),
    (ClusterConfig(name="lab", api=_api(mode="ssh-tunnel", token_name=None, token_value=None)),
     "no Proxmox API credentials"),
    (ClusterConfig(name="lab", api=_api(mode="ssh-tunnel", fingerprint="nope")), "SHA-256"),
    (ClusterConfig(name="lab", api=_api(token_name=None, token_value=None)), "no Proxmox API credentials"),
    (ClusterConfig(name="lab", api=_api(fingerprint="nope")), "SHA-256"),
    (ClusterConfig(name="lab", api=_api(host=None)), "no API host configured"),
    (ClusterConfig(name="lab", api=_api(fingerprint=None, ca_file=Path("/nonexistent/ca.pem"))), "does not exist"),
])
async def test_unusable_cluster_configuration_is_reported_and_fails_each_call_clearly(
    cluster: ClusterConfig, fragment: str
) -> None:
    worker = _worker(cluster)
    assert len(worker.problems) == 1 and fragment in worker.problems[0]
    with pytest.raises(ServiceFailure) as caught:
        await _handler(worker, "lab", ApiOp.LIST_VMS)(_envelope(ApiOp.LIST_VMS, {}))
    assert caught.value.code is ErrorCode.UNAVAILABLE and fragment in caught.value.info.message
    assert "s3cret" not in caught.value.info.message


def test_only_clusters_with_verification_off_count_as_insecure() -> None:
    worker = _worker(ClusterConfig(name="pinned", api=_api()),
                     ClusterConfig(name="loose", api=_api(fingerprint=None, verify_ssl=False)))
    assert worker.insecure_clusters == ["loose"]
    assert worker.problems == []
