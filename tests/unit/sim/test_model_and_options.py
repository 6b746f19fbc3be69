"""The seeded cluster layout, fault rules and command-line parsing."""

from __future__ import annotations

import pytest
from proxmox_mcp_pve_sim.cli import config_from_args
from proxmox_mcp_pve_sim.faults import FaultRule, FaultRuleError, Faults, parse_cli_rule
from proxmox_mcp_pve_sim.model import build_cluster
from proxmox_mcp_pve_sim.pve_output import render


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


def test_fault_rules_parse_from_flags_and_json() -> None:
    rule = parse_cli_rule("^/nodes/[^/]+/qemu$=250", "latency_ms")
    assert (rule.path.pattern, rule.latency_ms) == ("^/nodes/[^/]+/qemu$", 250)
    assert parse_cli_rule("a=b=0.5", "error_rate").path.pattern == "a=b"
    for bad, field in (("noequals", "latency_ms"), ("^x$=abc", "latency_ms"), ("^x$=1.5", "error_rate")):
        with pytest.raises(FaultRuleError):
            parse_cli_rule(bad, field)
    faults = Faults(
        [
            FaultRule.from_dict(
                {"path": "^/a", "method": "get", "latency_ms": 10, "error_rate": 1, "status": 503, "message": "down"}
            )
        ]
    )
    delay, error = faults.plan("GET", "/a/b")
    assert delay == 0.01 and error is not None and (error.status, error.message) == (503, "down")
    assert faults.plan("POST", "/a/b") == (0.0, None)
    assert faults.plan("GET", "/b") == (0.0, None)


def test_command_line_options_build_the_server_config(tmp_path: object) -> None:
    config = config_from_args(
        [
            "--port",
            "0",
            "--ssh-port",
            "0",
            "--seed",
            "3",
            "--nodes",
            "2",
            "--guests",
            "4",
            "--task-duration",
            "0.5",
            "--latency",
            "^/x$=5",
            "--error-rate",
            "^/y$=0.25",
            "--no-ssh",
            "--auth-fail-delay",
            "1",
        ]
    )
    assert (config.port, config.ssh_port, config.ssh) == (0, 0, False)
    assert (config.options.seed, config.options.nodes, config.options.guests) == (3, 2, 4)
    assert (config.options.task_duration, config.options.auth_fail_delay) == (0.5, 1.0)
    assert [(r.path.pattern, r.latency_ms, r.error_rate) for r in config.fault_rules] == [
        ("^/x$", 5.0, 0.0),
        ("^/y$", 0.0, 0.25),
    ]
    with pytest.raises(SystemExit):
        config_from_args(["--nodes", "40"])


def test_pvesh_text_output_draws_tables_and_plain_values() -> None:
    assert render("UPID:x", "text") == "UPID:x\n"
    assert render(None, "text") == ""
    table = render([{"a": 1, "b": "x"}, {"a": 22}], "text")
    assert table.splitlines()[1] == "│ a  │ b │"
    assert render([{"a": 1}], "text", noborder=True, noheader=True) == "1\n"
    assert render({"k": [1, {"x": None}]}, "yaml") == "---\nk:\n  - 1\n  - x: ~\n"
