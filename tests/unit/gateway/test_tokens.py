"""The token store: hashes only, mode 0600, atomic rewrites, clear errors."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.tokens import TokenStore, TokenStoreError, hash_token, parse_expiry, token_id_of


def test_created_tokens_are_stored_as_hashes_in_a_private_file(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "tokens.json")
    new = store.create(name="ci", scope=Scope.EXEC)
    raw = store.path.read_text()
    secret_part = new.secret.removeprefix(f"pmcp_{new.entry.id}_")  # may itself contain "_"
    assert len(secret_part) >= 20
    assert new.secret not in raw and secret_part not in raw
    assert hash_token(new.secret) in raw
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert token_id_of(new.secret) == new.entry.id
    assert new.entry.profile == "readonly"
    assert store.create(name="boss", scope=Scope.ADMIN).entry.profile == "admin"
    assert [e.name for e in store.load()] == ["ci", "boss"]
    assert not [p for p in store.path.parent.iterdir() if p.name.startswith(".tokens-")]  # no temp files left


@pytest.mark.parametrize("kwargs,words", [
    ({"name": "x", "scope": Scope.READ, "profile": "operator"}, "only matters"),
    ({"name": "x", "scope": Scope.EXEC, "profile": "admin"}, "needs --scope admin"),
    ({"name": "x", "scope": Scope.EXEC, "profile": "nosuch", "known_profiles": {"readonly"}}, "unknown"),
    ({"name": "x", "scope": Scope.READ, "tools": ["nope"], "known_tools": {"list_vms"}}, "unknown tool"),
    ({"name": "x", "scope": Scope.READ, "cidrs": ["10.0.0.300/8"]}, "--cidr"),
    ({"name": "", "scope": Scope.READ}, "--name"),
    ({"name": "bad\nname", "scope": Scope.READ}, "--name"),
])
def test_invalid_token_requests_are_refused_and_nothing_is_written(
    tmp_path: Path, kwargs: dict[str, object], words: str
) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    with pytest.raises(TokenStoreError, match=words):
        store.create(**kwargs)  # type: ignore[arg-type]
    assert store.load() == []


def test_a_second_live_token_with_the_same_name_is_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    first = store.create(name="ci", scope=Scope.READ)
    with pytest.raises(TokenStoreError, match="exists already"):
        store.create(name="ci", scope=Scope.READ)
    store.revoke(first.entry.id)
    store.create(name="ci", scope=Scope.READ)


def test_revoke_marks_the_token_and_unknown_ids_are_reported(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    new = store.create(name="ci", scope=Scope.READ)
    assert store.revoke(new.entry.id).revoked
    assert store.load()[0].revoked_at is not None
    with pytest.raises(TokenStoreError, match="no token with id"):
        store.revoke("000000000000")


def test_a_damaged_store_is_reported_not_silently_emptied(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text('{"version": 1, "tokens": [{"id": "x"}]}')
    with pytest.raises(TokenStoreError, match="damaged"):
        TokenStore(path).load()
    with pytest.raises(TokenStoreError, match="damaged"):
        TokenStore(path).create(name="ci", scope=Scope.READ)
    assert json.loads(path.read_text())["tokens"] == [{"id": "x"}]


def test_expiry_accepts_durations_and_iso_dates() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("90m", now) == now + timedelta(minutes=90)
    assert parse_expiry("2031-02-03T04:05:06", now) == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    for bad in ("0d", "yesterday", "2020-01-01", "-5d"):
        with pytest.raises(TokenStoreError):
            parse_expiry(bad, now)


def test_token_id_of_accepts_only_well_formed_tokens() -> None:
    assert token_id_of("pmcp_0123456789ab_" + "A" * 43) == "0123456789ab"
    for bad in ("pmcp_0123456789ab_short", "pmcp_XYZ_" + "A" * 43, "static-token", "pmcp_0123456789ab_" + "A" * 44):
        assert token_id_of(bad) is None
