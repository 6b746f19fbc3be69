"""TokenAuthenticator: static and stored tokens, expiry, revocation without restart, per-token networks."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.auth import AuthStatus, TokenAuthenticator, TokenRecord, digest_secret
from proxmox_mcp_gateway.principal import Principal
from proxmox_mcp_gateway.tokens import TokenStore


def test_static_token_authenticates_with_its_configured_scope() -> None:
    auth = TokenAuthenticator([TokenRecord("static", digest_secret("s3cret-static"), Scope.OPERATE)])
    result = auth.check("s3cret-static", "127.0.0.1")
    assert result.status is AuthStatus.OK and result.caller is not None
    assert result.caller.scope is Scope.OPERATE and result.caller.address == "127.0.0.1"
    assert auth.check("s3cret-statiC").status is AuthStatus.INVALID
    assert auth.check(None).status is AuthStatus.MISSING
    assert auth.check("").status is AuthStatus.MISSING


def test_stored_tokens_carry_scope_profile_and_allowlist(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ops", scope=Scope.EXEC, profile="operator", tools=["execute_command"])
    caller = TokenAuthenticator([], store.path).check(new.secret, "10.0.0.5").caller
    assert isinstance(caller, Principal)
    assert (caller.token_id, caller.scope, caller.command_profile) == (new.entry.id, Scope.EXEC, "operator")
    assert caller.allowed_tools == frozenset({"execute_command"}) and caller.name == "ops"


def test_a_wrong_secret_with_a_real_id_is_invalid(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ops", scope=Scope.READ)
    forged = new.secret[:-4] + ("AAAA" if not new.secret.endswith("AAAA") else "BBBB")
    assert TokenAuthenticator([], store.path).check(forged).status is AuthStatus.INVALID


def test_revocation_takes_effect_on_the_next_request_without_restart(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    auth = TokenAuthenticator([], store.path)
    assert auth.check("pmcp_0123456789ab_" + "A" * 43).status is AuthStatus.INVALID  # store not there yet
    new = store.create(name="ops", scope=Scope.READ)
    assert auth.check(new.secret).status is AuthStatus.OK
    store.revoke(new.entry.id)
    result = auth.check(new.secret)
    assert result.status is AuthStatus.REVOKED and result.token_id == new.entry.id and result.caller is None


def test_expired_tokens_are_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ops", scope=Scope.READ, expires_at=datetime.now(UTC) + timedelta(hours=1))
    entries = store.load()
    store._write([entries[0].model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)})])
    assert TokenAuthenticator([], store.path).check(new.secret).status is AuthStatus.EXPIRED


def test_token_networks_are_checked_against_the_client_address(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ops", scope=Scope.READ, cidrs=["10.0.0.0/8", "2001:db8::/32"])
    auth = TokenAuthenticator([], store.path)
    assert auth.check(new.secret, "10.9.8.7").status is AuthStatus.OK
    assert auth.check(new.secret, "2001:db8::1").status is AuthStatus.OK
    assert auth.check(new.secret, "192.168.0.1").status is AuthStatus.ADDRESS_REFUSED
    assert auth.check(new.secret, None).status is AuthStatus.ADDRESS_REFUSED
    assert auth.check(new.secret, "not-an-ip").status is AuthStatus.ADDRESS_REFUSED


def test_a_token_network_matches_the_client_however_either_is_written(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    ipv4 = store.create(name="ipv4", scope=Scope.READ, cidrs=["10.0.0.0/8"])
    mapped = store.create(name="mapped", scope=Scope.READ, cidrs=["::ffff:10.0.0.0/104"])
    auth = TokenAuthenticator([], store.path)
    assert auth.check(ipv4.secret, "::ffff:10.1.2.3").status is AuthStatus.OK
    assert auth.check(mapped.secret, "10.1.2.3").status is AuthStatus.OK
    assert auth.check(ipv4.secret, "::ffff:192.168.0.1").status is AuthStatus.ADDRESS_REFUSED
    assert auth.check(mapped.secret, "192.168.0.1").status is AuthStatus.ADDRESS_REFUSED


def test_a_damaged_store_grants_nothing_but_static_tokens_keep_working(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ops", scope=Scope.READ)
    auth = TokenAuthenticator([TokenRecord("static", digest_secret("static-one"), Scope.READ)], store.path)
    assert auth.check(new.secret).status is AuthStatus.OK
    store.path.write_text("{not json")
    os.utime(store.path, ns=(1, 1))
    assert auth.check(new.secret).status is AuthStatus.INVALID
    assert auth.check("static-one").status is AuthStatus.OK
