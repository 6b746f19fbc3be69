"""The cluster names the gateway accepts, where they come from, and that a call names its cluster to the workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_gateway.clusters import ClusterConfigError, ClusterNames
from proxmox_mcp_gateway.settings import GatewaySettings

from tests.unit.gateway.executors import make
from tests.unit.gateway.test_calls import caller, records, refused


def test_a_known_cluster_or_the_default_is_resolved_and_an_unknown_one_is_refused() -> None:
    names = ClusterNames.of("alpha", ["alpha", "beta"])
    assert names.resolve(None) == "alpha" and names.resolve("beta") == "beta"
    with pytest.raises(ServiceFailure) as caught:
        names.resolve("gamma")
    failure = caught.value
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "known clusters: alpha, beta" in failure.info.message
    assert ClusterNames.of("default").known == ("default",)
    with pytest.raises(ClusterConfigError, match="not among"):
        ClusterNames.of("gamma", ["alpha"])
    with pytest.raises(ClusterConfigError, match="invalid cluster name"):
        ClusterNames.of("default", ["Bad Name"])


def test_cluster_names_come_from_pmcp_clusters_or_else_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PMCP_DEFAULT_CLUSTER", "PMCP_CLUSTERS", "PMCP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "clusters.toml"
    config.write_text('default_cluster = "beta"\n[[clusters]]\nname = "alpha"\n[clusters.api]\n'
                      'token_value = "s3cret-never-kept"\n[[clusters]]\nname = "beta"\n')
    names = GatewaySettings(config=config).cluster_names()
    assert names == ClusterNames(default="beta", known=("alpha", "beta"))
    assert GatewaySettings().cluster_names() == ClusterNames(default="default", known=("default",))
    with pytest.raises(ClusterConfigError, match="does not exist"):
        GatewaySettings(config=tmp_path / "missing.toml").cluster_names()
    config.write_text("[[clusters]\nname=")
    with pytest.raises(ClusterConfigError, match="TOML") as caught:
        GatewaySettings(config=config).cluster_names()
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("PMCP_CLUSTERS", "x, y")  # wins over the config file
    assert GatewaySettings(config=config).cluster_names() == ClusterNames(default="x", known=("x", "y"))
    assert GatewaySettings(default_cluster="y").cluster_names().default == "y"


async def test_unknown_clusters_are_refused_before_the_bus_and_known_ones_travel_in_the_request(
    tmp_path: Path,
) -> None:
    executor, bus, audit = make(tmp_path, clusters=("alpha", "beta"))
    failure = await refused(executor, caller(Scope.READ), "list_vms", {"cluster": "gamma"})
    assert failure.code is ErrorCode.INVALID_ARGUMENT and "alpha, beta" in failure.info.message
    assert bus.sent == []
    await executor.call("list_containers", {"cluster": "beta", "node": "pve1"}, caller(Scope.READ))
    await executor.call("list_vms", {}, caller(Scope.READ))
    assert [(r.cluster, r.args) for r in bus.sent] == [("beta", {"node": "pve1", "type": "lxc"}), ("alpha", {})]
    assert records(audit)[-1]["cluster"] == "alpha"
