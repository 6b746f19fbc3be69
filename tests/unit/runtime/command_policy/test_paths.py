"""The path rules in isolation: normalisation, secret and device paths, symlinks resolved on the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from proxmox_mcp_runtime.command_policy.model import PolicyError
from proxmox_mcp_runtime.command_policy.paths import check_device, check_path, normalize_path


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [("/etc/pve/", "/etc/pve"), ("//etc//pve/./qemu-server", "/etc/pve/qemu-server"), ("/", "/")],
)
def test_paths_are_normalized_to_one_absolute_form(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


@pytest.mark.parametrize("raw", ["etc/passwd", "./x", "", "~/x", "/etc/../etc/shadow", "/a/.."])
def test_normalize_refuses_relative_and_dotdot(raw: str) -> None:
    with pytest.raises(PolicyError):
        normalize_path(raw)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/pve/priv",
        "/etc/pve/priv/authorized_keys",
        "/etc/pve/nodes/pve/priv/x",
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/pve/pve-www.key",
        "/etc/pve/local/pve-ssl.key",
        "/home/bob/.ssh/id_ed25519",
        "/srv/x/.ssh/config",
        "/root",
        "/root/.bashrc",
        "/etc/shadow-",
        "/etc/sudoers.d/pmcp",
        "/etc/ceph/ceph.client.admin.keyring",
        "/etc/pve/priv/ceph/x.keyring",
        "/proc/1/cmdline",
        "/proc/self/fd/0",
        "/proc/kcore",
        "/dev/sda",
        "/dev/mem",
        "/sys/firmware/efi/efivars/x",
        "/etc/wireguard/wg0.conf",
        "/home/bob/.bash_history",
    ],
)
def test_secret_and_device_paths_are_refused(path: str) -> None:
    with pytest.raises(PolicyError, match="is refused"):
        check_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/pve/storage.cfg",
        "/etc/pve/user.cfg",
        "/etc/pve/qemu-server/100.conf",
        "/etc/pve/pve-root-ca.pem",
        "/var/log/syslog",
        "/proc/loadavg",
        "/proc/pressure/cpu",
        "/proc/sys/vm/swappiness",
        "/sys/class/net",
        "/etc/hostname",
        "/",
    ],
)
def test_ordinary_paths_pass(path: str) -> None:
    assert check_path(path) == normalize_path(path)


def test_resolver_catches_a_symlink_to_a_secret(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/etc/shadow")
    check_path(str(link))  # by name alone it looks harmless
    with pytest.raises(PolicyError, match="resolves to /etc/shadow"):
        check_path(str(link), os.path.realpath)


@pytest.mark.parametrize("device", ["/dev/sda", "/dev/nvme0n1p1", "/dev/disk/by-id/ata-X_123", "/dev/mapper"])
def test_device_paths_are_accepted_for_the_metadata_tools(device: str) -> None:
    check_device(device)


@pytest.mark.parametrize("device", ["/dev/../etc/shadow", "/etc/shadow", "/dev/a/b/c/d", "sda"])
def test_anything_but_a_plain_device_path_is_refused_as_a_device(device: str) -> None:
    with pytest.raises(PolicyError):
        check_device(device)
