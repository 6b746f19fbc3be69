"""`proxmox-mcp token ...`: secrets shown once, clear errors (the store itself: gateway/test_tokens.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from proxmox_mcp_cli.main import main as cli


def test_cli_creates_lists_and_revokes_without_showing_secrets_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMCP_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("PMCP_TOKENS_FILE", raising=False)
    assert cli(["token", "create", "--name", "agent", "--scope", "exec", "--profile", "operator", "--tools",
                "execute_command,list_vms", "--cidr", "10.0.0.0/8", "--cidr", "192.168.1.7", "--expires", "7d",
                "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["token"].startswith("pmcp_") and created["profile"] == "operator"
    assert created["cidrs"] == ["10.0.0.0/8", "192.168.1.7/32"] and created["tools"] == ["execute_command", "list_vms"]
    assert cli(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert created["id"] in listing and created["token"] not in listing and "sha256" not in listing
    assert cli(["token", "revoke", created["id"]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli(["token", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked"] is True
    assert (tmp_path / "tokens.json").exists()


def test_cli_errors_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "t.json")
    assert cli(["token", "--store", store, "create", "--name", "x", "--scope", "read", "--tools", "bogus"]) == 2
    assert "unknown tool" in capsys.readouterr().err
    assert cli(["token", "--store", store, "revoke", "nope"]) == 2
    assert cli(["token", "--store", store, "create", "--name", "x", "--scope", "read", "--expires", "soon"]) == 2
    assert not Path(store).exists()
