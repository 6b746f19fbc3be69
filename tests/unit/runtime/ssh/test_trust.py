"""Host key trust: fingerprints, known_hosts names and entries, pins, and what is refused."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.settings import SshSettings
from proxmox_mcp_runtime.ssh import HostKeyVerifier, normalize_fingerprint
from proxmox_mcp_runtime.ssh.trust import HostKeyRefused, known_hosts_name


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
