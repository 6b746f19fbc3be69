"""A command's reply (execute_command, container_exec, guest_exec) stays under the NATS payload limit: output is
cut and the reply says so. One function for both workers."""

from __future__ import annotations

from typing import Any

from proxmox_mcp_contracts.tools import ExecResult
from proxmox_mcp_contracts.tools_extra import GuestExecResult
from proxmox_mcp_runtime.command_reply import ENVELOPE_ALLOWANCE, fit_reply

LIMIT = 100_000


def result(stdout: str, stderr: str = "", command: str = "x") -> ExecResult:
    return ExecResult(node="pve1", command=command, exit_code=0, stdout=stdout, stderr=stderr, truncated=False,
                      duration_ms=1.0)


def test_small_output_is_left_alone() -> None:
    original = result("hello\n", "warn\n")
    assert fit_reply(original, LIMIT) == original


def test_output_past_the_limit_is_cut_and_marked_truncated() -> None:
    fitted = fit_reply(result("a" * 300_000, "b" * 100_000), LIMIT)
    assert fitted.truncated
    assert len(fitted.model_dump_json()) + ENVELOPE_ALLOWANCE <= LIMIT
    assert fitted.stdout.startswith("aaa") and fitted.stderr.startswith("bbb")
    assert len(fitted.stdout) > LIMIT * 0.5


def test_text_that_grows_when_escaped_still_fits() -> None:
    fitted = fit_reply(result("\x01" * 90_000), LIMIT)  # each byte becomes \\u0001 in JSON
    assert fitted.truncated
    assert len(fitted.model_dump_json()) + ENVELOPE_ALLOWANCE <= LIMIT


def test_a_guest_command_reply_is_fitted_the_same_way_and_keeps_its_type() -> None:
    original = GuestExecResult(vmid=100, node="pve1", type="qemu", command="cat", stdout="\x01" * 50_000, stderr="",
                               truncated=False, duration_ms=1.0, pid=7)
    fitted = fit_reply(original, 20_000)
    assert isinstance(fitted, GuestExecResult) and (fitted.vmid, fitted.pid) == (100, 7)
    assert fitted.truncated is True and len(fitted.model_dump_json()) + ENVELOPE_ALLOWANCE <= 20_000


class CountingResult(ExecResult):
    """Counts how often the reply is measured: each measurement is one round of cutting."""

    measured: int = 0

    def model_dump_json(self, **kwargs: Any) -> str:
        type(self).measured += 1
        return super().model_dump_json(**kwargs)


def test_a_reply_too_big_without_any_output_is_not_cut_again_and_again() -> None:
    """The copies had drifted here: the api-worker's went on cutting empty output for eight rounds."""
    CountingResult.measured = 0
    big = CountingResult(node="pve1", command="c" * 30_000, exit_code=0, stdout="", stderr="", truncated=False,
                         duration_ms=1.0)
    fitted = fit_reply(big, 20_000)
    assert (fitted.stdout, fitted.stderr, fitted.truncated) == ("", "", True)
    assert CountingResult.measured <= 2
