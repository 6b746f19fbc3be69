"""mcp-fuzzer (PyPI) in its protocol mode against a demo stack of its own, for a bounded number of messages: the
gateway answers every one without a 5xx, without hanging, and without a traceback (or any error) in its log.

The demo is its own, not the session's shared one: the fuzzer calls tools with whatever arguments it makes up, so
it may start guests or take snapshots. Its confirmation timeout is short, so a destructive call waiting for the
user's answer (the fuzzer never gives one) ends well inside the fuzzer's own request timeout."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support.demo import DemoStack, start_demo
from tests.support.procs import find_binary

RUNS_PER_TYPE = 4
"""x the fuzzer's 24 protocol types (more for tools/call, one per tool): about 200 messages, ~10 s here."""
REQUEST_TIMEOUT = 5
FUZZ_DEADLINE = 120
"""The whole run; past it the gateway is taken to hang."""
FATAL_FINDINGS = {"crash", "hang", "internal_error", "error_leakage", "oversized_response"}
_REQUESTS = re.compile(r'^proxmox_mcp_http_requests_total\{handler="/mcp",method="(\w+)",status_class="(\dxx)"\} '
                       r"([0-9.e+]+)$", re.M)


@pytest.fixture(scope="module")
def fuzz_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    stack = start_demo(tmp_path_factory.mktemp("fuzz-demo"), extra_env={"PMCP_CONFIRM_TIMEOUT": "2"})
    try:
        yield stack
    finally:
        stack.proc.stop()


def mcp_requests_by_status(demo: DemoStack) -> dict[str, float]:
    """The gateway's own count of /mcp requests per status class (a failure inside the app counts as 5xx)."""
    text = httpx2.get(f"{demo.base_url}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for _method, status, value in _REQUESTS.findall(text):
        counts[status] = counts.get(status, 0.0) + float(value)
    return counts


def failure_lines(log: str) -> list[str]:
    """Lines of the gateway's log that report a failure: a raw traceback, or a JSON line at error level or with
    an exception attached (the JSON formatter logs an exception's type, `error_type`, never its traceback)."""
    failures = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                failures.append(line)
            continue
        if isinstance(entry, dict) and (entry.get("level") in ("error", "critical") or "error_type" in entry):
            failures.append(line)
    return failures


@pytest.mark.slow
def test_mcp_fuzzer_protocol_mode_gets_no_5xx_no_hang_and_no_traceback(fuzz_demo: DemoStack, tmp_path: Path) -> None:
    fuzzer = find_binary("mcp-fuzzer")
    before = mcp_requests_by_status(fuzz_demo)
    log_start = len(fuzz_demo.proc.log_text())
    out = tmp_path / "out"
    argv = [fuzzer, "--mode", "protocol", "--protocol-phase", "aggressive", "--protocol", "streamablehttp",
            "--endpoint", fuzz_demo.mcp_url, "--runs-per-type", str(RUNS_PER_TYPE), "--seed", "17",
            "--timeout", str(REQUEST_TIMEOUT), "--no-network", "--no-corpus", "--fs-root", str(tmp_path / "fs"),
            "--output-dir", str(out), "--auth-env"]
    # The fuzzer keeps state under HOME; MCP_API_KEY is its bearer token (--auth-env).
    env = {**os.environ, "HOME": str(tmp_path), "MCP_API_KEY": fuzz_demo.token, "NO_COLOR": "1"}
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=FUZZ_DEADLINE, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"mcp-fuzzer did not finish within {FUZZ_DEADLINE} s: the gateway hangs on some message")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]

    findings = json.loads((out / "findings.json").read_text())["findings"]
    fatal = [f for f in findings if f["category"] in FATAL_FINDINGS]
    assert not fatal, json.dumps(fatal, indent=1)[:4000]

    after = mcp_requests_by_status(fuzz_demo)
    answered = {status: after.get(status, 0.0) - before.get(status, 0.0) for status in after}
    assert answered.get("5xx", 0.0) == 0, answered
    assert sum(answered.values()) >= 100, f"the fuzzer reached the gateway too rarely: {answered}\n{output[-2000:]}"

    failures = failure_lines(fuzz_demo.proc.log_text()[log_start:])
    assert not failures, "\n".join(failures)[-4000:]
