"""The seeded cluster layout."""

from __future__ import annotations

import pytest
from proxmox_mcp_pve_sim.model import build_cluster


def layout(seed: int, nodes: int = 3, guests: int = 8) -> list[tuple[int, str, str, str, str, int]]:
    cluster = build_cluster(seed, nodes, guests, now=1_700_000_000)
    return [(g.vmid, g.kind, g.node, g.name, g.status, g.maxmem) for g in cluster.guests.values()]


def test_the_same_seed_gives_the_same_cluster_and_another_seed_another() -> None:
    assert layout(7) == layout(7)
    assert layout(7) != layout(8)


@pytest.mark.parametrize("guests", [5, 8, 30])
def test_the_guest_mix_has_every_kind_of_guest_the_tests_need(guests: int) -> None:
    cluster = build_cluster(3, 3, guests, now=1_700_000_000)
    found = {(g.kind, g.status, bool(g.template)) for g in cluster.guests.values()}
    assert {
        ("qemu", "running", False),
        ("qemu", "stopped", False),
        ("lxc", "running", False),
        ("lxc", "stopped", False),
        ("qemu", "stopped", True),
    } <= found
    assert sorted(cluster.guests) == list(range(100, 100 + guests))
    assert {g.node for g in cluster.guests.values()} == {"pve1", "pve2", "pve3"}
    assert len({g.name for g in cluster.guests.values()}) == guests
    assert any(g.agent_enabled and g.running for g in cluster.guests.values() if g.kind == "qemu")


def test_small_clusters_still_build() -> None:
    assert layout(1, nodes=1, guests=0) == []
    assert len(layout(1, nodes=1, guests=2)) == 2
