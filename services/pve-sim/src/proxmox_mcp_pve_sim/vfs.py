"""The few files and directories the emulated shell can show, generated from the cluster state."""

from __future__ import annotations

import time

from proxmox_mcp_pve_sim.model import GUEST_KERNEL, KERNEL_RELEASE, GuestKind
from proxmox_mcp_pve_sim.shell import ShellEnv

HOST_OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.2
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""
GUEST_OS_RELEASE = (
    HOST_OS_RELEASE.replace("13 (trixie)", "12 (bookworm)")
    .replace("trixie", "bookworm")
    .replace('"13"', '"12"')
    .replace("13.2", "12.7")
)

ROOT_DIRS = [
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib64",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
]


def _uptime_seconds(env: ShellEnv) -> float:
    if env.guest is not None:
        return float(env.guest.uptime)
    return float(env.sim.cluster.nodes[env.node].uptime)


def _load(env: ShellEnv) -> float:
    if env.guest is not None:
        return round(env.guest.cpu * env.guest.cpus, 2)
    return env.sim.cluster.nodes[env.node].load


def read_file(path: str, env: ShellEnv) -> str | None:
    """The content of a known file, or None when the emulated system has no such file."""
    path = _normalise(path, env)
    cluster = env.sim.cluster
    node = cluster.nodes[env.node]
    load = _load(env)
    kernel = KERNEL_RELEASE if env.on_host else GUEST_KERNEL
    files: dict[str, str] = {
        "/etc/hostname": f"{env.hostname}\n",
        "/etc/os-release": HOST_OS_RELEASE if env.on_host else GUEST_OS_RELEASE,
        "/etc/debian_version": "13.2\n" if env.on_host else "12.7\n",
        "/etc/resolv.conf": "search sim.local\nnameserver 192.168.100.1\nnameserver 1.1.1.1\n",
        "/proc/loadavg": f"{load:.2f} {load * 0.9:.2f} {load * 0.8:.2f} 1/512 {4000 + int(time.time()) % 9000}\n",
        "/proc/uptime": f"{_uptime_seconds(env):.2f} {_uptime_seconds(env) * 3.1:.2f}\n",
        "/proc/version": f"Linux version {kernel} (build@pve) (gcc (Debian 14.2.0-19) 14.2.0)\n",
    }
    if env.on_host:
        files["/etc/hosts"] = "127.0.0.1 localhost.localdomain localhost\n" + "".join(
            f"{n.ip} {n.name}.sim.local {n.name}\n" for n in cluster.nodes.values()
        )
        files["/etc/network/interfaces"] = (
            "auto lo\niface lo inet loopback\n\niface eno1 inet manual\n\nauto vmbr0\n"
            f"iface vmbr0 inet static\n\taddress {node.ip}/24\n\tgateway 192.168.100.1\n\tbridge-ports eno1\n"
            "\tbridge-stp off\n\tbridge-fd 0\n"
        )
        files["/etc/pve/storage.cfg"] = (
            "dir: local\n\tpath /var/lib/vz\n\tcontent backup,iso,vztmpl\n\n"
            "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n"
        )
        for guest in cluster.guests_on(env.node):
            folder = "qemu-server" if guest.kind == "qemu" else "lxc"
            files[f"/etc/pve/{folder}/{guest.vmid}.conf"] = "".join(
                f"{key}: {value}\n" for key, value in sorted(guest.config.items())
            )
    else:
        files["/etc/hosts"] = f"127.0.0.1 localhost\n127.0.1.1 {env.hostname}\n"
    return files.get(path)


def list_dir(path: str, env: ShellEnv) -> list[str] | None:
    """Names in a known directory, or None when it does not exist."""
    path = _normalise(path, env)
    node = env.sim.cluster.nodes[env.node]
    dirs: dict[str, list[str]] = {
        "/": ROOT_DIRS,
        "/root": [],
        "/tmp": [],
        "/home": [],
        "/etc": ["hostname", "hosts", "os-release", "debian_version", "resolv.conf"],
    }
    if env.on_host:
        dirs["/etc"] = sorted([*dirs["/etc"], "network", "pve"])
        dirs["/etc/network"] = ["interfaces"]
        dirs["/etc/pve"] = [
            "authkey.pub",
            "corosync.conf",
            "datacenter.cfg",
            "local",
            "lxc",
            "nodes",
            "qemu-server",
            "storage.cfg",
            "user.cfg",
            "vzdump.cron",
        ]
        dirs["/etc/pve/nodes"] = sorted(env.sim.cluster.nodes)
        folders: tuple[tuple[GuestKind, str], ...] = (("qemu", "qemu-server"), ("lxc", "lxc"))
        for kind, folder in folders:
            dirs[f"/etc/pve/{folder}"] = [f"{g.vmid}.conf" for g in env.sim.cluster.guests_on(env.node, kind)]
        local = node.storages["local"]
        dirs["/var"] = ["backups", "cache", "lib", "log", "spool", "tmp"]
        dirs["/var/lib"] = ["apt", "dpkg", "pve-cluster", "pve-manager", "vz"]
        dirs["/var/lib/vz"] = ["dump", "images", "template"]
        dirs["/var/lib/vz/template"] = ["cache", "iso"]
        dirs["/var/lib/vz/template/iso"] = [v.volid.rsplit("/", 1)[1] for v in local.volumes if v.content == "iso"]
        dirs["/var/lib/vz/template/cache"] = [v.volid.rsplit("/", 1)[1] for v in local.volumes if v.content == "vztmpl"]
        dirs["/var/lib/vz/dump"] = [v.volid.rsplit("/", 1)[1] for v in local.volumes if v.content == "backup"]
        dirs["/var/lib/vz/images"] = []
    else:
        dirs["/var"] = ["backups", "cache", "lib", "log", "spool", "tmp", "www"]
        dirs["/var/www"] = ["html"]
        dirs["/var/www/html"] = ["index.html"]
    return dirs.get(path)


def _normalise(path: str, env: ShellEnv) -> str:
    if path in ("~", ""):
        return "/root"
    if path.startswith("~/"):
        path = "/root/" + path[2:]
    if not path.startswith("/"):
        path = env.cwd.rstrip("/") + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)
