"""The ssh-worker keeps its reply under the NATS payload limit, cutting output and saying so."""

from __future__ import annotations

from proxmox_mcp_contracts.tools import ExecResult
from proxmox_mcp_ssh_worker.handlers import fit_reply

LIMIT = 100_000


def result(stdout: str, stderr: str = "") -> ExecResult:
    return ExecResult(node="pve1", command="x", exit_code=0, stdout=stdout, stderr=stderr, truncated=False,
                      duration_ms=1.0)


def test_small_output_is_left_alone() -> None:
    original = result("hello\n", "warn\n")
    assert fit_reply(original, LIMIT) == original


def test_output_past_the_limit_is_cut_and_marked_truncated() -> None:
    fitted = fit_reply(result("a" * 300_000, "b" * 100_000), LIMIT)
    assert fitted.truncated
    assert len(fitted.model_dump_json()) <= LIMIT
    assert fitted.stdout.startswith("aaa") and fitted.stderr.startswith("bbb")
    assert len(fitted.stdout) > LIMIT * 0.5


def test_text_that_grows_when_escaped_still_fits() -> None:
    fitted = fit_reply(result("\x01" * 90_000), LIMIT)  # each byte becomes \\u0001 in JSON
    assert fitted.truncated
    assert len(fitted.model_dump_json()) <= LIMIT
