"""The command line sent to a host: argv quoted for the remote shell, and the remote timeout wrapper."""

from __future__ import annotations

import shlex

import pytest
from proxmox_mcp_contracts.errors import ServiceFailure
from proxmox_mcp_runtime.ssh import command_line


def test_argv_is_quoted_so_the_remote_shell_rebuilds_it_exactly() -> None:
    argv = ["echo", "a b", "$(id)", "it's", ";", "*"]
    line = command_line(argv, timeout=5, wrap=False, kill_after=2)
    assert shlex.split(line) == argv


def test_remote_timeout_wrapper_execs_timeout_a_second_after_the_deadline() -> None:
    line = command_line(["sleep", "60"], timeout=2, wrap=True, kill_after=2)
    assert line == "exec timeout --signal=TERM --kill-after=2 3 sleep 60"


def test_string_command_runs_under_sh_when_wrapped() -> None:
    line = command_line("echo a | wc -c", timeout=1.5, wrap=True, kill_after=2)
    assert shlex.split(line)[-3:] == ["sh", "-c", "echo a | wc -c"]


def test_empty_argv_is_refused() -> None:
    with pytest.raises(ServiceFailure, match="empty command"):
        command_line([], timeout=1, wrap=True, kill_after=2)
