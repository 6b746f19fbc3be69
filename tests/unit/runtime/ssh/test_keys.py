"""Key loading and permission checks: pure logic, keys generated per test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_runtime.ssh import load_private_key

from tests.support.procs import find_binary

PASSPHRASE = "correct horse battery staple"


def keygen(path: Path, kind: str, passphrase: str = "", extra: tuple[str, ...] = ()) -> Path:
    subprocess.run([find_binary("ssh-keygen"), "-q", "-t", kind, "-N", passphrase, "-f", str(path), *extra], check=True)
    return path


@pytest.mark.parametrize(("kind", "name"), [("ed25519", "ssh-ed25519"), ("rsa", "ssh-rsa"),
                                            ("ecdsa", "ecdsa-sha2-nistp256")])
def test_plain_keys_of_each_type_load(tmp_path: Path, kind: str, name: str) -> None:
    key = load_private_key(keygen(tmp_path / "id", kind), None)
    assert key.get_name() == name


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_encrypted_key_loads_with_the_right_passphrase(tmp_path: Path, kind: str) -> None:
    key = load_private_key(keygen(tmp_path / "id", kind, PASSPHRASE), PASSPHRASE)
    assert key.can_sign()


def test_pem_rsa_key_loads(tmp_path: Path) -> None:
    path = keygen(tmp_path / "id", "rsa", PASSPHRASE, ("-m", "PEM", "-b", "2048"))
    assert load_private_key(path, PASSPHRASE).get_name() == "ssh-rsa"


def test_encrypted_key_without_passphrase_says_to_set_one(tmp_path: Path) -> None:
    path = keygen(tmp_path / "id", "ed25519", PASSPHRASE)
    with pytest.raises(ServiceFailure) as caught:
        load_private_key(path, None)
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert "encrypted but no passphrase" in caught.value.info.message
    assert "SSH_KEY_PASSPHRASE" in caught.value.info.message


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_wrong_passphrase_is_named_as_such(tmp_path: Path, kind: str) -> None:
    path = keygen(tmp_path / "id", kind, PASSPHRASE)
    with pytest.raises(ServiceFailure) as caught:
        load_private_key(path, "not it")
    assert "passphrase for private key" in caught.value.info.message
    assert "is wrong" in caught.value.info.message
    assert "not it" not in caught.value.info.message


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused_with_the_chmod_fix(tmp_path: Path, mode: int) -> None:
    path = keygen(tmp_path / "id", "ed25519")
    path.chmod(mode)
    with pytest.raises(ServiceFailure) as caught:
        load_private_key(path, None)
    message = caught.value.info.message
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message
    assert caught.value.info.retryable is False


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ServiceFailure, match="does not exist"):
        load_private_key(tmp_path / "nope", None)


def test_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "id"
    path.write_text("hello\n")
    path.chmod(0o600)
    with pytest.raises(ServiceFailure, match="is not a private key file"):
        load_private_key(path, None)
