"""Tokens on JetStream (PMCP_STATE=jetstream) with one real nats-server and real gateway processes: the CLI
against the bucket, visibility within a second, the token file imported once, and fail-closed loading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.state_names import IMPORT_MARKER_KEY
from proxmox_mcp_gateway.tokens import TokenStore, TokenStoreError

from tests.support.nats import NatsServer, start_nats
from tests.support.procs import wait_until
from tests.support.services import GatewayProc, start_gateway
from tests.support.shared_state import (
    cli,
    connected,
    jetstream_env,
    list_tools,
    new_token,
    ready_body,
    token_store,
    wait_accepted,
)


@pytest.fixture
def nats_js(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of this test's own: the token bucket and its import marker start empty."""
    server = start_nats(tmp_path / "nats")
    try:
        yield server
    finally:
        server.proc.stop()


def _gateway(nats: NatsServer, workdir: Path, **env: str) -> GatewayProc:
    return start_gateway(nats.url, workdir, env=jetstream_env(1, **{"PMCP_STATE_TIMEOUT": "2", **env}))


def _cli_env(nats: NatsServer, workdir: Path) -> dict[str, str]:
    return {"NATS_URL": nats.url, **jetstream_env(1), "PMCP_STATE_DIR": str(workdir / "cli-state")}


def _wait_loaded(gateway: GatewayProc) -> None:
    wait_until(lambda: ready_body(gateway)[1]["checks"]["state"] == "ok", timeout=20,
               what="the gateway to load its tokens from JetStream", proc=gateway.proc, interval=0.05)


def test_a_token_created_with_the_cli_works_within_a_second_and_is_refused_within_a_second_of_its_revocation(
    nats_js: NatsServer, tmp_path: Path,
) -> None:
    gateway = _gateway(nats_js, tmp_path)
    try:
        _wait_loaded(gateway)
        env = _cli_env(nats_js, tmp_path)
        created = cli("token", "create", "--name", "laptop", "--scope", "read", "--json", env=env)
        assert created.returncode == 0, created.stderr
        token = json.loads(created.stdout)
        visible = wait_accepted(gateway, token["token"], accepted=True, within=1.0)
        revoked = cli("token", "revoke", token["id"], env=env)
        assert revoked.returncode == 0 and "every gateway refuses it" in revoked.stdout, revoked.stderr
        refused = wait_accepted(gateway, token["token"], accepted=False, within=1.0)
        body = list_tools(gateway, token["token"]).json()
        assert body["error"]["details"]["reason"] == "revoked", body
        print(f"created -> accepted {visible * 1000:.0f} ms; revoked -> refused {refused * 1000:.0f} ms")
    finally:
        gateway.proc.stop()


def test_token_list_on_jetstream_shows_every_token_without_its_secret_or_hash(
    nats_js: NatsServer, tmp_path: Path,
) -> None:
    env = _cli_env(nats_js, tmp_path)
    first = json.loads(cli("token", "create", "--name", "a", "--scope", "exec", "--json", env=env).stdout)
    second = json.loads(cli("token", "create", "--name", "b", "--scope", "read", "--expires", "2h", "--json",
                            env=env).stdout)
    assert cli("token", "revoke", f"{first['token']}", env=env).returncode == 0  # the whole token names its id
    listed = cli("token", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entries = {e["id"]: e for e in json.loads(listed.stdout)}
    assert set(entries) == {first["id"], second["id"]}
    assert entries[first["id"]]["revoked"] is True and entries[second["id"]]["revoked"] is False
    assert first["token"] not in listed.stdout and "sha256" not in listed.stdout
    human = cli("token", "list", env=env).stdout
    assert "revoked" in human and "active" in human


async def test_two_live_tokens_cannot_share_a_name_but_the_name_of_a_revoked_one_can_be_reused(
    nats_js: NatsServer,
) -> None:
    async with connected(nats_js.url) as nc:
        store = await token_store(nc, replicas=1)
        outcomes = await asyncio.gather(new_token(store, "ci"), new_token(store, "ci"), return_exceptions=True)
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, TokenStoreError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert "exists already" in str(losers[0])
        await store.revoke(winners[0].entry.id)
        again = await new_token(store, "ci")
        assert again.entry.id != winners[0].entry.id
        names = [e.name for e in await store.load() if not e.revoked]
        assert names == ["ci"]


def test_the_cli_on_jetstream_says_what_is_wrong_and_exits_2(nats_js: NatsServer, tmp_path: Path) -> None:
    env = _cli_env(nats_js, tmp_path)
    unknown = cli("token", "revoke", "0123456789ab", env=env)
    assert unknown.returncode == 2 and "no token with id '0123456789ab'" in unknown.stderr
    assert cli("token", "create", "--name", "x", "--scope", "read", env=env).returncode == 0
    duplicate = cli("token", "create", "--name", "x", "--scope", "read", env=env)
    assert duplicate.returncode == 2 and "exists already" in duplicate.stderr
    bad_profile = cli("token", "create", "--name", "y", "--scope", "read", "--profile", "operator", env=env)
    assert bad_profile.returncode == 2 and "--profile only matters" in bad_profile.stderr
    nowhere = cli("token", "list", env={**env, "NATS_URL": "nats://127.0.0.1:1"})
    assert nowhere.returncode == 2 and "cannot connect to NATS" in nowhere.stderr
    assert "127.0.0.1:1" not in nowhere.stderr  # a NATS URL may carry credentials: never printed
    local = cli("token", "import", env={**env, "PMCP_STATE": "local"})
    assert local.returncode == 2 and "PMCP_STATE=jetstream" in local.stderr


def test_the_token_file_is_imported_once_and_a_token_revoked_in_the_bucket_stays_revoked(
    nats_js: NatsServer, tmp_path: Path,
) -> None:
    token_file = tmp_path / "tokens.json"
    store = TokenStore(token_file)
    revoked_later, kept = store.create(name="old-1", scope=Scope.READ), store.create(name="old-2", scope=Scope.READ)
    env = {"PMCP_TOKENS_FILE": str(token_file)}
    first = _gateway(nats_js, tmp_path, **env)
    try:
        _wait_loaded(first)
        wait_accepted(first, revoked_later.secret, accepted=True, within=1.0)
        cli_env = {**_cli_env(nats_js, tmp_path), **env}
        assert cli("token", "revoke", revoked_later.entry.id, env=cli_env).returncode == 0
    finally:
        first.proc.stop()
    added_to_file = store.create(name="old-3", scope=Scope.READ)
    second = _gateway(nats_js, tmp_path, **env)
    try:
        _wait_loaded(second)
        wait_accepted(second, kept.secret, accepted=True, within=1.0)
        # Not imported again: the revocation made in the bucket holds, and the file's new token is unknown.
        assert list_tools(second, revoked_later.secret).status_code == 401
        assert list_tools(second, added_to_file.secret).status_code == 401
        imported = cli("token", "import", env=cli_env)
        assert imported.returncode == 0, imported.stderr
        assert "imported 1 token(s)" in imported.stdout and "2 already there" in imported.stdout
        wait_accepted(second, added_to_file.secret, accepted=True, within=1.0)
        assert list_tools(second, revoked_later.secret).status_code == 401
    finally:
        second.proc.stop()


async def test_a_damaged_token_file_is_not_marked_imported_so_the_fixed_file_is_imported_at_the_next_start(
    nats_js: NatsServer, tmp_path: Path,
) -> None:
    token_file = tmp_path / "tokens.json"
    token_file.write_text("{not json")
    gateway = _gateway(nats_js, tmp_path, PMCP_TOKENS_FILE=str(token_file))
    try:
        _wait_loaded(gateway)  # the bucket's tokens still load: only the import is skipped
        assert "could not be imported" in gateway.proc.log_path.read_text()
    finally:
        gateway.proc.stop()
    async with connected(nats_js.url) as nc:
        assert await (await token_store(nc, replicas=1)).bucket.get(IMPORT_MARKER_KEY) is None
    token_file.unlink()
    fixed = TokenStore(token_file).create(name="fixed", scope=Scope.READ)
    again = _gateway(nats_js, tmp_path, PMCP_TOKENS_FILE=str(token_file))
    try:
        _wait_loaded(again)
        wait_accepted(again, fixed.secret, accepted=True, within=1.0)
    finally:
        again.proc.stop()


def test_until_the_tokens_are_loaded_stored_tokens_get_503_static_ones_work_and_readiness_says_why(
    tmp_path: Path,
) -> None:
    plain = start_nats(tmp_path / "plain", jetstream=False)
    gateway: GatewayProc | None = None
    try:
        gateway = _gateway(plain, tmp_path, PMCP_STATE_TIMEOUT="1")
        status, body = ready_body(gateway)
        assert status == 503 and body["checks"]["state"] == "loading", body
        wait_until(lambda: bool(ready_body(gateway)[1].get("state", {}).get("last_error")), timeout=10,
                   what="readiness to name the reason", proc=gateway.proc)
        assert "JetStream" in ready_body(gateway)[1]["state"]["last_error"]
        stored_shape = "pmcp_0123456789ab_" + "A" * 43
        refused = list_tools(gateway, stored_shape)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
        assert refused.json()["error"]["details"]["reason"] == "tokens_not_loaded"
        assert refused.json()["error"]["retryable"] is True
        assert list_tools(gateway, gateway.token).status_code == 200  # the static token works meanwhile
        # The same server with JetStream on the same port: the gateway loads its tokens by itself.
        port = plain.port
        plain.proc.stop()
        plain = start_nats(tmp_path / "js", port=port)
        _wait_loaded(gateway)
        env = _cli_env(plain, tmp_path)
        token = json.loads(cli("token", "create", "--name", "late", "--scope", "read", "--json", env=env).stdout)
        wait_accepted(gateway, token["token"], accepted=True, within=1.0)
    finally:
        if gateway is not None:
            gateway.proc.stop()
        plain.proc.stop()


@pytest.mark.parametrize("command", [["demo"], ["up"], ["stdio", "--demo"]])
def test_the_embedded_stacks_refuse_jetstream_state_before_starting_anything(
    command: list[str], tmp_path: Path,
) -> None:
    env = {"PMCP_STATE": "jetstream", "SSH_HOST": "198.51.100.1", "PROXMOX_HOST": "198.51.100.2",
           "PMCP_STATE_DIR": str(tmp_path), "NATS_URL": ""}
    refused = cli(*command, "--env-file", str(tmp_path / "none.env"), env=env, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "PMCP_STATE=jetstream needs a NATS cluster" in refused.stderr
