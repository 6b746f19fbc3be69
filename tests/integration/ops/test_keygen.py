"""`proxmox-mcp keygen`: a real ed25519 pair OpenSSH accepts, and an authorized_keys line sshd honours."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from proxmox_mcp_runtime.ssh.connection import ConnectFailed, Credentials, Target, open_transport
from proxmox_mcp_runtime.ssh.trust import HostKeyVerifier

from tests.support.sshd import SshdServer


def keygen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "keygen", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_pair_has_the_right_modes_and_openssh_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "id_ed25519"
    result = keygen("--out", str(out), "--comment", "pmcp@test")
    assert result.returncode == 0, result.stderr
    assert mode(out) == 0o600 and mode(out.with_name("id_ed25519.pub")) == 0o644
    assert mode(out.parent) == 0o700
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(out)], capture_output=True, text=True, check=True)
    public = out.with_name("id_ed25519.pub").read_text().split()
    assert derived.stdout.split()[:2] == public[:2] and public[2] == "pmcp@test"
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(out.with_name("id_ed25519.pub"))], capture_output=True,
                            text=True, check=True).stdout.split()[1]
    assert f"Fingerprint: {listed} (ED25519)" in result.stdout
    assert isinstance(paramiko.Ed25519Key.from_private_key_file(str(out)), paramiko.Ed25519Key)


def test_a_passphrase_from_a_file_encrypts_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse battery\n")
    out = tmp_path / "id"
    assert keygen("--out", str(out), "--passphrase-file", str(secret)).returncode == 0
    with pytest.raises(paramiko.PasswordRequiredException):
        paramiko.Ed25519Key.from_private_key_file(str(out))
    assert paramiko.Ed25519Key.from_private_key_file(str(out), password="correct horse battery")
    assert "correct horse" not in out.read_text()


def test_an_existing_key_is_kept_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "id"
    assert keygen("--out", str(out)).returncode == 0
    before = out.read_bytes()
    again = keygen("--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert out.read_bytes() == before
    out.chmod(0o644)
    assert keygen("--out", str(out), "--force").returncode == 0
    assert out.read_bytes() != before and mode(out) == 0o600


def test_the_printed_lines_restrict_the_key_and_name_the_copy_command(tmp_path: Path) -> None:
    out = tmp_path / "id"
    result = keygen("--out", str(out), "--from", "10.0.0.0/24", "--from", "192.0.2.7", "--user", "pmcp",
                    "--host", "pve1.example", "--port", "2222")
    assert result.returncode == 0
    public = out.with_name("id.pub").read_text().strip()
    assert f'restrict,from="10.0.0.0/24,192.0.2.7" {public}' in result.stdout
    assert f"ssh-copy-id -i {out}.pub -p 2222 pmcp@pve1.example" in result.stdout
    assert "THIS_HOST_IP" not in result.stdout
    tunnel = keygen("--out", str(tmp_path / "t"), "--tunnel")
    assert 'restrict,port-forwarding,permitopen="127.0.0.1:8006"' in tunnel.stdout
    assert 'from="THIS_HOST_IP"' in tunnel.stdout


@pytest.mark.parametrize("args, message", [
    (["--from", 'x" ,command="sh'], "not an address"),
    (["--passphrase-file", "/nonexistent/pass"], "cannot read the passphrase file"),
])
def test_bad_input_is_refused_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "id"
    result = keygen("--out", str(out), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()


def test_an_empty_passphrase_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = keygen("--out", str(tmp_path / "id"), "--passphrase-file", str(empty))
    assert result.returncode == 2 and "is empty" in result.stderr


def _login(sshd: SshdServer, key_path: Path) -> None:
    key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
    verifier = HostKeyVerifier(known_hosts_files=(sshd.known_hosts,), pinned=frozenset(), accept_unknown=False)
    transport = open_transport(Target("pve1", "127.0.0.1", sshd.port), Credentials(sshd.user, key, None), verifier,
                               timeout=5, keepalive_interval=0)
    transport.close()


def test_sshd_honours_the_printed_authorized_keys_line(sshd: SshdServer, tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    elsewhere = tmp_path / "elsewhere"
    lines = []
    for out, source in ((allowed, "127.0.0.1"), (elsewhere, "192.0.2.99")):
        result = keygen("--out", str(out), "--from", source)
        match = re.search(r"^restrict,from=.*$", result.stdout, flags=re.M)
        assert match is not None
        lines.append(match.group(0))
    original = sshd.authorized_keys.read_text()
    try:
        sshd.authorized_keys.write_text(original + "\n".join(lines) + "\n")
        _login(sshd, allowed)
        with pytest.raises(ConnectFailed) as refused:
            _login(sshd, elsewhere)
        assert refused.value.outcome == "auth_failed"
    finally:
        sshd.authorized_keys.write_text(original)
        os.sync()
