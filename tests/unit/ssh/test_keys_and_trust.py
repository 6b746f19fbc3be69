"""Key loading, permission checks, host key trust and command lines: pure logic, keys generated per test."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import paramiko
import pytest
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import SshSettings
from proxmox_mcp_runtime.ssh import HostKeyVerifier, command_line, load_private_key, normalize_fingerprint
from proxmox_mcp_runtime.ssh.trust import HostKeyRefused, known_hosts_name

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


def test_fingerprints_are_normalized_to_ssh_keygen_form() -> None:
    assert normalize_fingerprint("SHA256:abc=") == "SHA256:abc"
    assert normalize_fingerprint(" abc ") == "SHA256:abc"
    assert normalize_fingerprint("sha256:abc") == "SHA256:abc"


def test_known_hosts_names_use_brackets_for_other_ports() -> None:
    assert known_hosts_name("pve1", 22) == "pve1"
    assert known_hosts_name("10.0.0.1", 2222) == "[10.0.0.1]:2222"


def _verifier(known_hosts: Path | None = None, pins: list[str] | None = None, accept: bool = False) -> HostKeyVerifier:
    settings = SshSettings(known_hosts=known_hosts, host_key_fingerprints=pins or [],
                           accept_unknown_host_keys=accept)
    return HostKeyVerifier.from_settings(settings)


@pytest.fixture
def host_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


def test_pinned_fingerprint_is_trusted(host_key: paramiko.PKey, tmp_path: Path) -> None:
    _verifier(tmp_path / "none", pins=[host_key.fingerprint]).verify("pve1", "h", 22, host_key)


def test_known_hosts_entry_is_trusted_also_when_hashed(host_key: paramiko.PKey, tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("[h]:2222")
    path.write_text(f"{hashed} {host_key.get_name()} {host_key.get_base64()}\n")
    _verifier(path).verify("pve1", "h", 2222, host_key)


def test_unknown_key_is_refused_naming_the_fingerprint(host_key: paramiko.PKey, tmp_path: Path) -> None:
    with pytest.raises(HostKeyRefused) as caught:
        _verifier(tmp_path / "none").verify("pve1", "h", 22, host_key)
    assert caught.value.code is ErrorCode.PERMISSION_DENIED
    assert "host key for pve1 is unknown" in caught.value.info.message
    assert host_key.fingerprint in caught.value.info.message
    assert host_key.get_base64() not in caught.value.info.message


def test_changed_key_is_refused_even_when_unknown_keys_are_accepted(host_key: paramiko.PKey, tmp_path: Path) -> None:
    other = paramiko.ECDSAKey.generate()
    with pytest.raises(HostKeyRefused) as caught:
        _verifier(tmp_path / "none", pins=[other.fingerprint], accept=True).verify("pve1", "h", 22, host_key)
    assert "host key for pve1 does not match the pinned key" in caught.value.info.message
    assert caught.value.changed


def test_unknown_key_is_accepted_only_when_explicitly_allowed(host_key: paramiko.PKey, tmp_path: Path) -> None:
    _verifier(tmp_path / "none", accept=True).verify("pve1", "h", 22, host_key)


def test_known_hosts_types_are_negotiated_first(host_key: paramiko.PKey, tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"h ssh-rsa {paramiko.RSAKey.generate(1024).get_base64()}\n")
    order = _verifier(path).preferred_algorithms("h", 22, ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"))
    assert order == ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519"]


def test_argv_is_quoted_so_the_remote_shell_rebuilds_it_exactly() -> None:
    argv = ["echo", "a b", "$(id)", "it's", ";", "*"]
    line = command_line(argv, timeout=5, wrap=False, kill_after=2)
    assert shlex.split(line) == argv


def test_remote_timeout_wrapper_execs_timeout_a_second_after_the_deadline() -> None:
    line = command_line(["sleep", "60"], timeout=2, wrap=True, kill_after=2)
    assert line == "exec timeout --signal=TERM --kill-after=2 3 sleep 60"


def test_string_command_runs_under_sh_when_wrapped() -> None:
    line = command_line("echo a | wc -c", timeout=1.5, wrap=True, kill_after=2)
    assert shlex.split(line)[-3:] == ["sh", "-c", "echo a | wc -c"]


def test_empty_argv_is_refused() -> None:
    with pytest.raises(ServiceFailure, match="empty command"):
        command_line([], timeout=1, wrap=True, kill_after=2)
