"""The compose `ha` profile on a real container engine, started with the README's commands (one stack for this
module): three NATS nodes in one JetStream cluster, two gateways (PMCP_STATE=jetstream), two of each worker, Caddy
in front. Calls work through Caddy with the official MCP client and are served by both gateways; what one gateway
stores or seals (tokens, revocations, rate counts, 2026-era confirmation state) holds on the other; under load,
kill -9 of a NATS node or of a gateway fails at most the calls in flight, and the killed one comes back."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import mcp_types as types
import pytest
from proxmox_mcp_gateway.state_names import AUDIT_STREAM, TOKENS

from tests.integration.tools.helpers import Elicitor
from tests.support.compose_ha import GATEWAYS, NATS_NODES, RATE, RATED_TOOL, HaStack, start_ha_stack
from tests.support.mcp_client import http_client
from tests.support.procs import wait_until
from tests.support.readme import readme_block

# The first test builds the images when they are not there yet (minutes when cold) and starts the stack.
pytestmark = pytest.mark.timeout(900)

RESTART_BUDGET = 30.0
LOAD_THREADS = 3
IN_FLIGHT_GRACE = 0.5
"""Seconds after a kill within which a call may still have been handed to the dying process."""
READS = ("list_vms",)
OUTCOME_UNKNOWN = "outcome of this non-idempotent call is unknown"
TOKENS_LOADING = "tokens_not_loaded"


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[HaStack]:
    stack = start_ha_stack(tmp_path_factory.mktemp("compose-ha"))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line("  " + stack.log.strip().splitlines()[-1])
    try:
        yield stack
    finally:
        stack.down()


def _new_token(ha: HaStack, name: str, scope: str = "admin") -> dict[str, Any]:
    """A token created with the CLI inside gateway-1's container (stored in the cluster's bucket), once both
    gateways accept it: a gateway whose token watch lived on a NATS node killed earlier sees the next change a
    few seconds late (README "Several gateways", Tokens)."""
    created = dict(json.loads(ha.exec("gateway-1", "proxmox-mcp", "token", "create", "--name", name, "--scope",
                                      scope, "--json")))
    started = time.monotonic()
    for index in range(len(GATEWAYS)):
        wait_until(lambda i=index: _accepted(ha, i, created["token"]) == 200, timeout=10, interval=0.05,
                   what=f"gateway-{index + 1} to accept the new token {name!r}")
    if time.monotonic() - started > 1:
        print(f"token {name!r} accepted by both gateways only {time.monotonic() - started:.1f} s after it was made")
    return created


@dataclass
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        """`ok`, the gateway's error code, or `http<status>` when no gateway answered (Caddy's own 502)."""
        if "error" in self.body:
            return str(self.body["error"]["code"])
        if "isError" in self.body:
            return "ok" if not self.body["isError"] else str(self.body["structuredContent"].get("code"))
        return f"http{self.status}"

    @property
    def retryable(self) -> bool:
        return bool((self.body.get("error") or {}).get("retryable"))

    @property
    def message(self) -> str:
        return str((self.body.get("error") or {}).get("message") or "")


def _call(client: httpx2.Client, url: str, token: str, tool: str, arguments: dict[str, Any]) -> Reply:
    response = client.post(f"{url}/api/mcp/tools/call", json={"name": tool, "arguments": arguments},
                           headers={"Authorization": f"Bearer {token}"})
    try:
        body = response.json()
    except ValueError:
        body = {}
    return Reply(response.status_code, body if isinstance(body, dict) else {})


@dataclass
class Outcome:
    tool: str
    started: float
    ended: float
    reply: Reply | None
    """None: the connection to Caddy broke (it never does in these tests)."""


class CaddyLoad:
    """A few threads calling a read and a command through Caddy (HTTPS) back to back, until stopped."""

    CALLS = (("list_vms", {}), ("execute_command", {"command": "uptime"}))

    def __init__(self, ha: HaStack, token: str) -> None:
        self.outcomes: list[Outcome] = []
        self._ha, self._token = ha, token
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(LOAD_THREADS)]

    def __enter__(self) -> CaddyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, worker: int) -> None:
        with httpx2.Client(verify=self._ha.tls(), timeout=30) as client:
            n = worker
            while not self._stop.is_set():
                tool, arguments = self.CALLS[n % len(self.CALLS)]
                started = time.monotonic()
                try:
                    reply: Reply | None = _call(client, self._ha.url(""), self._token, tool, arguments)
                except httpx2.HTTPError:
                    reply = None
                with self._lock:
                    self.outcomes.append(Outcome(tool, started, time.monotonic(), reply))
                n += 1

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, calls: int, within: float) -> None:
        wait_until(lambda: self.count() >= calls, timeout=within, interval=0.1, what=f"{calls} calls under load")

    def wait_for_calls_started_after(self, since: float, calls: int, within: float) -> None:
        """Until `calls` calls that started after `since` have ended (fast calls can all end in a short window)."""
        def started_after() -> int:
            with self._lock:
                return sum(1 for o in self.outcomes if o.started > since)
        wait_until(lambda: started_after() >= calls, timeout=within, interval=0.1,
                   what=f"{calls} calls started under load after the fault")

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.reply is None or o.reply.code != "ok"]


def _served(ha: HaStack) -> list[float]:
    """Tool calls each gateway has answered so far, from its own /metrics."""
    counts: list[float] = []
    for index in range(len(GATEWAYS)):
        text = httpx2.get(f"{ha.gateway_url(index)}/metrics", timeout=10).text
        counts.append(sum(float(v) for v in re.findall(r"^proxmox_mcp_tool_calls_total\{[^}]*\} (\S+)$", text,
                                                         flags=re.M)))
    return counts


def _cluster_rejoined(ha: HaStack, stream_names: tuple[str, ...]) -> bool:
    """Every node answers, agrees on the meta leader, is current, and holds the same messages of each stream."""
    if ha.meta_leader() is None:
        return False
    if not all(h == {"status": "ok"} for h in ha.nats_monitor("/healthz").values()):
        return False
    for stream in stream_names:
        replicas = ha.stream_replicas(stream)
        states = {(r["messages"], r.get("last_seq")) if r else None for r in replicas.values()}
        if None in states or len(states) != 1:
            return False
    return True


def test_the_ha_stack_comes_up_healthy_with_three_nats_nodes_in_one_jetstream_cluster(ha: HaStack) -> None:
    health = ha.health()
    services = {re.sub(r"^pmcp-test-ha-|-\d+$", "", name) for name in health}
    assert services == {*NATS_NODES, *GATEWAYS, "ssh-worker-ha", "api-worker-ha", "caddy-ha", "pve-sim"}, health
    assert len(ha.containers("ssh-worker-ha")) == len(ha.containers("api-worker-ha")) == 2
    assert all(state in ("healthy", "running") for state in health.values()), health
    for node, routez in ha.nats_monitor("/routez").items():
        peers = {route.get("remote_name") for route in (routez or {}).get("routes") or []}
        assert peers == set(NATS_NODES) - {node}, (node, peers)
    assert ha.meta_leader() in NATS_NODES
    tokens = ha.stream_replicas(f"KV_{TOKENS.name}")
    for node, replica in tokens.items():  # the token bucket lives on all three nodes (R3)
        assert replica is not None and len(replica["cluster"]["replicas"]) == 2, (node, replica)
    for index in range(len(GATEWAYS)):
        ready = httpx2.get(f"{ha.gateway_url(index)}/health/ready", timeout=10).json()
        assert ready["ready"] is True and ready["checks"]["state"] == "ok", ready
    # Prometheus (when started) finds the ha gateways and workers under the single stack's names.
    resolve = "import socket, sys; print(len({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80)}))"
    for name, count in (("gateway", 2), ("ssh-worker", 2), ("api-worker", 2)):
        assert ha.exec("gateway-1", "python", "-c", resolve, name).strip() == str(count), name


async def test_the_official_mcp_client_calls_tools_through_caddy_and_both_gateways_serve(ha: HaStack) -> None:
    before = _served(ha)
    async with http_client(ha.url("/mcp"), ha.token, mode="auto", verify=ha.tls()) as client:
        for _ in range(8):
            vms = await client.call_tool("list_vms", {})
            assert not vms.is_error and vms.structured_content is not None, vms.content
            assert vms.structured_content["vms"], vms.structured_content
            command = await client.call_tool("execute_command", {"command": "hostname", "node": "pve1"})
            assert not command.is_error and command.structured_content is not None, command.content
            assert command.structured_content["stdout"].strip() == "pve1", command.structured_content
    served = [after - earlier for after, earlier in zip(_served(ha), before, strict=True)]
    assert sum(served) >= 16 and all(n > 0 for n in served), served


async def test_a_confirmation_asked_through_one_gateway_is_answered_through_the_other(ha: HaStack) -> None:
    first, second = ha.gateway_url(0), ha.gateway_url(1)
    async with http_client(f"{first}/mcp", ha.token, mode="auto") as client:
        guests = (await client.call_tool("list_vms", {"type": "qemu", "status": "running"})).structured_content
    assert guests is not None
    vm = next(g for g in guests["vms"] if not g.get("template"))
    stop = {"vmid": vm["vmid"], "action": "stop", "wait": True}
    answer: types.InputResponses = {"confirm": types.ElicitResult(action="accept", content={"confirm": True})}
    async with http_client(f"{first}/mcp", ha.token, mode="auto", elicitation_callback=Elicitor()) as client:
        asked = await client.session.call_tool("vm_action", stop, allow_input_required=True)
    assert isinstance(asked, types.InputRequiredResult) and asked.request_state
    async with http_client(f"{second}/mcp", ha.token, mode="auto", elicitation_callback=Elicitor()) as client:
        done = await client.session.call_tool("vm_action", stop, input_responses=answer,
                                              request_state=asked.request_state, allow_input_required=True)
        assert isinstance(done, types.CallToolResult) and not done.is_error, done
        assert done.structured_content is not None and done.structured_content["task"]["ok"] is True
        started = await client.call_tool("vm_action", {"vmid": vm["vmid"], "action": "start", "wait": True})
        assert not started.is_error, started.content


def _accepted(ha: HaStack, index: int, token: str) -> int:
    return httpx2.post(f"{ha.gateway_url(index)}/api/mcp/tools/list", json={},
                       headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code


def _accepted_once_listening(ha: HaStack, index: int, token: str) -> int | None:
    """As _accepted; None while the gateway does not listen yet (a restarted container starts its process)."""
    try:
        return _accepted(ha, index, token)
    except httpx2.TransportError:
        return None


def test_a_token_created_in_gateway_1_works_through_gateway_2_and_its_revocation_reaches_it_within_a_second(
    ha: HaStack,
) -> None:
    created = dict(json.loads(ha.exec("gateway-1", "proxmox-mcp", "token", "create", "--name", "made-in-gateway-1",
                                      "--scope", "read", "--json")))
    wait_until(lambda: _accepted(ha, 1, created["token"]) == 200, timeout=1, interval=0.02,
               what="gateway-2 to accept a token created in gateway-1 within a second")
    revoke = ("import subprocess, sys, time; subprocess.run(['proxmox-mcp', 'token', 'revoke', sys.argv[1]], "
              "check=True, capture_output=True); print(time.time())")
    revoked_at = float(ha.exec("gateway-1", "python", "-c", revoke, created["id"]).strip())
    wait_until(lambda: _accepted(ha, 1, created["token"]) == 401, timeout=5, interval=0.01,
               what="gateway-2 to refuse the revoked token")
    seen_after = time.time() - revoked_at  # the containers share this machine's clock
    assert seen_after < 1.0, f"gateway-2 refused the revoked token only {seen_after:.2f} s after the revocation"
    assert _accepted(ha, 0, created["token"]) == 401
    print(f"revocation in gateway-1 refused by gateway-2 within {seen_after:.2f} s")


def test_a_per_token_tool_rate_limit_holds_across_both_gateways(ha: HaStack) -> None:
    token = _new_token(ha, "rated", scope="read")["token"]
    with httpx2.Client(timeout=30) as client:
        replies = [_call(client, ha.gateway_url(index), token, RATED_TOOL, {})
                   for _ in range(RATE + 2) for index in range(len(GATEWAYS))]
    codes = [reply.code for reply in replies]
    assert codes.count("ok") == RATE and codes.count("rate_limited") == len(replies) - RATE, codes
    assert {reply.status for reply in replies if reply.code == "rate_limited"} == {429}


def test_the_single_stacks_tokens_are_copied_into_the_cluster_with_the_readmes_command(ha: HaStack) -> None:
    (line,) = readme_block("token import --file /dev/stdin")
    # A token as the single-gateway stack stores it: in the token file of its `gateway-state` volume.
    made = ha.compose("run", "--rm", "--no-deps", "-T", "gateway", "proxmox-mcp", "token", "create", "--name",
                      "from-the-single-stack", "--scope", "read", "--json").stdout
    token = json.loads(made.strip().splitlines()[-1])["token"]
    assert _accepted(ha, 0, token) == 401  # not in the cluster yet
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; {line}"], capture_output=True, text=True, env=ha.env,
                          cwd=ha.workdir, timeout=180, check=False)
    assert done.returncode == 0 and "imported 1 token(s)" in done.stdout, done.stdout + done.stderr
    for index in range(len(GATEWAYS)):
        wait_until(lambda i=index: _accepted(ha, i, token) == 200, timeout=5, interval=0.05,
                   what=f"gateway-{index + 1} to accept the imported token")


def _describe(outcomes: list[Outcome], since: float) -> str:
    return ", ".join(f"{o.tool} +{o.started - since:.2f}s {o.reply.code if o.reply else 'no reply'} "
                     f"{o.reply.message[:120] if o.reply else ''}" for o in outcomes[:5])


def _assert_only_in_flight_failed(load: CaddyLoad, killed_at: float, what: str,
                                  also_allowed: str | None = None) -> list[Outcome]:
    """No call started after the kill failed (but those answered with the reason `also_allowed`), at most one
    per load thread failed, and calls went on."""
    failed = load.failed()
    late = [o for o in failed if o.started > killed_at + IN_FLIGHT_GRACE
            and (also_allowed is None or o.reply is None or _reason(o.reply) != also_allowed)]
    assert not late, f"{len(late)} calls started after the {what} failed: {_describe(late, killed_at)}"
    in_flight = [o for o in failed if o.started <= killed_at + IN_FLIGHT_GRACE]
    assert len(in_flight) <= LOAD_THREADS, _describe(in_flight, killed_at)
    after = [o for o in load.outcomes if o.started > killed_at + IN_FLIGHT_GRACE]
    assert len(after) >= 20
    return failed


def _reason(reply: Reply) -> str | None:
    details = (reply.body.get("error") or {}).get("details") or {}
    return str(details.get("reason")) if details.get("reason") else None


def test_kill_9_of_the_audit_streams_leader_node_under_load_fails_at_most_calls_in_flight_and_it_rejoins(
    ha: HaStack,
) -> None:
    token = _new_token(ha, "load-nats-kill")["token"]
    leaders = {r["cluster"]["leader"] for r in ha.stream_replicas(AUDIT_STREAM).values() if r}
    assert len(leaders) == 1
    victim = leaders.pop()
    with CaddyLoad(ha, token) as load:
        load.wait_for(20, within=60)
        container_id, restarts = ha.kill_main_process(victim)
        killed_at = time.monotonic()
        load.wait_for_calls_started_after(killed_at + IN_FLIGHT_GRACE, 60, within=90)
    failed = _assert_only_in_flight_failed(load, killed_at, f"kill -9 of {victim}")
    for outcome in failed:  # each with a clear code: a read may be sent again, a command's outcome is unknown
        reply = outcome.reply
        assert reply is not None and reply.code == "unavailable", (outcome.tool, reply)
        assert reply.retryable if outcome.tool in READS else (reply.retryable or OUTCOME_UNKNOWN in reply.message)
    slowest = max(o.ended - o.started for o in load.outcomes)
    wait_until(lambda: ha.restarted(container_id, restarts), timeout=RESTART_BUDGET, interval=0.5,
               what=f"the restart policy to bring {victim} back")
    wait_until(lambda: _cluster_rejoined(ha, (AUDIT_STREAM, f"KV_{TOKENS.name}")), timeout=60, interval=1,
               what=f"{victim} to rejoin and hold the same audit records and tokens as the other nodes")
    assert _accepted(ha, 0, token) == _accepted(ha, 1, token) == 200
    print(f"{victim} (audit stream leader) killed under load: {len(load.outcomes)} calls, {len(failed)} failed "
          f"(in flight), slowest {slowest:.1f} s; restarted and caught up")


def test_kill_9_of_a_gateway_under_load_fails_at_most_calls_in_flight_and_the_restart_policy_brings_it_back(
    ha: HaStack,
) -> None:
    token = _new_token(ha, "load-gateway-kill")["token"]
    with CaddyLoad(ha, token) as load:
        load.wait_for(20, within=60)
        container_id, restarts = ha.kill_main_process("gateway-1")
        killed_at = time.monotonic()
        load.wait_for_calls_started_after(killed_at + IN_FLIGHT_GRACE, 60, within=90)
    # Caddy tries a call that reached no gateway again (connection refused), on gateway-2 or on gateway-1 once it
    # listens again; the restarted gateway-1 refuses stored tokens for the moment until it has loaded them from
    # JetStream (503, retryable), as the README says.
    failed = _assert_only_in_flight_failed(load, killed_at, "kill -9 of gateway-1", also_allowed=TOKENS_LOADING)
    for outcome in failed:
        reply = outcome.reply
        assert reply is not None, outcome
        if outcome.started <= killed_at + IN_FLIGHT_GRACE:  # the gateway died under them: Caddy's own 502
            assert reply.code == "http502", (outcome.tool, reply)
        else:
            assert reply.status == 503 and reply.retryable, (outcome.tool, reply)
    wait_until(lambda: ha.restarted(container_id, restarts), timeout=RESTART_BUDGET, interval=0.5,
               what="the restart policy to bring gateway-1 back")
    wait_until(lambda: _accepted_once_listening(ha, 0, token) == 200, timeout=RESTART_BUDGET, interval=0.5,
               what="the restarted gateway-1 to accept the token again")
    loading = [o for o in failed if o.started > killed_at + IN_FLIGHT_GRACE]
    print(f"gateway-1 killed under load: {len(load.outcomes)} calls, {len(failed) - len(loading)} failed in "
          f"flight, {len(loading)} refused by the restarted gateway-1 until it had loaded the tokens")
