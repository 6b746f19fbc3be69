"""The simulator's command line."""

from __future__ import annotations

import pytest
from proxmox_mcp_pve_sim.cli import config_from_args


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
