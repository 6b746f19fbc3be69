"""The simulated cluster: nodes, storage, network and guests, built deterministically from a seed."""

from __future__ import annotations

import copy
import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

GuestKind = Literal["qemu", "lxc"]

GIB = 1024**3
MIB = 1024**2
PVE_VERSION = "9.1.1"
PVE_RELEASE = "9.1"
PVE_REPOID = "42db4a6cf33dac83"
KERNEL_RELEASE = "6.17.2-1-pve"
KERNEL_VERSION = "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2025-10-21T11:55Z)"
GUEST_KERNEL = "6.1.0-26-amd64"
CLUSTER_NAME = "pve-sim"
CPU_MODELS = (
    "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz",
    "AMD EPYC 7302P 16-Core Processor",
    "Intel(R) Xeon(R) E-2388G CPU @ 3.20GHz",
)
VM_NAMES = ("web", "db", "app", "cache", "mail", "git", "ci", "monitor", "proxy", "build", "vpn", "files")
CT_NAMES = ("dns", "ntp", "nginx", "redis", "pihole", "grafana", "syslog", "backup")
ISO_FILES = (("debian-12.7.0-amd64-netinst.iso", 661651456), ("ubuntu-24.04.1-live-server-amd64.iso", 2773874688))
CT_TEMPLATES = (
    ("debian-12-standard_12.7-1_amd64.tar.zst", 126649244, "tzst"),
    ("alpine-3.20-default_20240908_amd64.tar.xz", 3058188, "txz"),
)


@dataclass
class Snapshot:
    name: str
    description: str
    snaptime: int
    parent: str | None
    vmstate: int
    config: dict[str, str]


@dataclass
class Guest:
    vmid: int
    kind: GuestKind
    node: str
    config: dict[str, str]
    status: str = "stopped"
    paused: bool = False
    started_at: float | None = None
    pid: int | None = None
    cpu_load: float = 0.0
    mem_fraction: float = 0.5
    disk_used: int = 0
    agent_installed: bool = True
    snapshots: list[Snapshot] = field(default_factory=list[Snapshot])
    lock: str | None = None

    @property
    def name(self) -> str:
        return (
            self.config.get("name")
            or self.config.get("hostname")
            or f"{'VM' if self.kind == 'qemu' else 'CT'} {self.vmid}"
        )

    @property
    def template(self) -> int:
        return 1 if self.config.get("template") == "1" else 0

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def maxmem(self) -> int:
        memory = self.config.get("memory", "512").split(",")[0].removeprefix("current=")
        return int(memory) * MIB if memory.isdigit() else 512 * MIB

    @property
    def cpus(self) -> int:
        cores = self.config.get("cores", "1")
        sockets = self.config.get("sockets", "1")
        return (int(cores) if cores.isdigit() else 1) * (int(sockets) if sockets.isdigit() else 1)

    @property
    def maxdisk(self) -> int:
        disk = self.config.get("scsi0") or self.config.get("virtio0") or self.config.get("rootfs") or ""
        for part in disk.split(","):
            if part.startswith("size="):
                return parse_size(part[5:])
        return 0

    @property
    def agent_enabled(self) -> bool:
        agent = self.config.get("agent", "0").split(",")[0].removeprefix("enabled=")
        return agent in ("1", "on", "yes", "true")

    @property
    def uptime(self) -> int:
        return int(time.time() - self.started_at) if self.running and self.started_at else 0

    @property
    def mem(self) -> int:
        return int(self.maxmem * self.mem_fraction) if self.running else 0

    @property
    def cpu(self) -> float:
        return round(self.cpu_load, 4) if self.running and not self.paused else 0.0

    def counters(self) -> dict[str, int]:
        """Traffic and I/O since start, growing with uptime so repeated reads look alive."""
        up = self.uptime
        return {
            "netin": up * 1843,
            "netout": up * 977,
            "diskread": 187_432_960 + up * 4096 if up else 0,
            "diskwrite": 52_318_208 + up * 2048 if up else 0,
        }

    def digest(self) -> str:
        text = "".join(f"{key}: {value}\n" for key, value in sorted(self.config.items()))
        return hashlib.sha1(text.encode()).hexdigest()

    def config_path(self) -> str:
        folder = "qemu-server" if self.kind == "qemu" else "lxc"
        return f"nodes/{self.node}/{folder}/{self.vmid}.conf"


@dataclass
class Volume:
    volid: str
    content: str
    format: str
    size: int
    ctime: int
    vmid: int | None = None
    used: int | None = None
    notes: str | None = None
    subtype: str | None = None
    """Backups: the guest type (qemu or lxc) the archive holds."""
    protected: int = 0
    verification: dict[str, str] | None = None
    """Proxmox Backup Server: the last verify job's state and UPID."""
    config: dict[str, str] | None = None
    """Backups: the guest configuration inside the archive (what a restore brings back)."""


@dataclass
class Storage:
    storage: str
    type: str
    content: str
    total: int
    shared: int = 0
    path: str | None = None
    volumes: list[Volume] = field(default_factory=list[Volume])
    prune_backups: str | None = None
    settings: dict[str, str] = field(default_factory=dict[str, str])
    """Further storage.cfg keys (server, export, datastore, username, fingerprint)."""
    full: bool = False
    """Set through the control endpoint: no space left, so writes (backups) fail."""

    @property
    def used(self) -> int:
        if self.full:
            return self.total
        return min(self.total, sum(v.used if v.used is not None else v.size for v in self.volumes) + self.total // 20)


@dataclass
class NetIface:
    iface: str
    type: str
    method: str = "manual"
    address: str | None = None
    netmask: str | None = None
    gateway: str | None = None
    bridge_ports: str | None = None
    active: int = 1
    autostart: int = 1


@dataclass
class Node:
    name: str
    nodeid: int
    ip: str
    maxcpu: int
    maxmem: int
    cpu_model: str
    booted_at: float
    rootfs_total: int
    storages: dict[str, Storage] = field(default_factory=dict[str, Storage])
    network: list[NetIface] = field(default_factory=list[NetIface])
    load: float = 0.05
    online: bool = True
    """False: the node is cut off from the cluster (corosync lost it); requests proxied to it fail."""
    reachable: bool = True
    """False while online: the cluster has not noticed yet (or the node's API hangs); proxied requests fail."""
    proxy_delay: float = 0.0
    """Seconds a request proxied to the unreachable node hangs before it fails (0: 'No route to host' at once)."""

    @property
    def answers(self) -> bool:
        return self.online and self.reachable

    @property
    def uptime(self) -> int:
        return int(time.time() - self.booted_at)


@dataclass
class BackupJob:
    """A scheduled vzdump job (jobs.cfg), as /cluster/backup lists it."""

    id: str
    schedule: str
    storage: str
    enabled: int = 1
    mode: str = "snapshot"
    all: int = 0
    vmid: str | None = None
    exclude: str | None = None
    comment: str | None = None
    prune_backups: str | None = None
    compress: str = "zstd"


@dataclass
class Cluster:
    name: str
    nodes: dict[str, Node]
    guests: dict[int, Guest]
    backup_jobs: list[BackupJob] = field(default_factory=list[BackupJob])

    def clone(self) -> Cluster:
        return copy.deepcopy(self)

    def guest(self, node: str, vmid: int, kind: GuestKind) -> Guest | None:
        guest = self.guests.get(vmid)
        if guest is None or guest.node != node or guest.kind != kind:
            return None
        return guest

    def guests_on(self, node: str, kind: GuestKind | None = None) -> list[Guest]:
        return sorted(
            (g for g in self.guests.values() if g.node == node and (kind is None or g.kind == kind)),
            key=lambda g: g.vmid,
        )

    def node_mem_used(self, node: str) -> int:
        base = self.nodes[node].maxmem // 12
        return base + sum(g.mem for g in self.guests_on(node))

    def node_cpu(self, node: str) -> float:
        info = self.nodes[node]
        busy = sum(g.cpu * g.cpus for g in self.guests_on(node))
        return round(min(1.0, info.load / 10 + busy / info.maxcpu), 4)


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MIB, "G": GIB, "T": GIB * 1024}
    text = text.strip()
    if text and text[-1] in units:
        try:
            return int(float(text[:-1]) * units[text[-1]])
        except ValueError:
            return 0
    return int(text) if text.isdigit() else 0


def mac_address(rng: random.Random) -> str:
    return "BC:24:11:" + ":".join(f"{rng.randrange(256):02X}" for _ in range(3))


def build_cluster(seed: int, node_count: int, guest_count: int, *, now: float | None = None) -> Cluster:
    """The seeded cluster; the same arguments always give the same nodes, guests, names and sizes."""
    rng = random.Random(seed)
    now = time.time() if now is None else now
    nodes: dict[str, Node] = {}
    for index in range(1, max(1, node_count) + 1):
        name = f"pve{index}"
        node = Node(
            name=name,
            nodeid=index,
            ip=f"192.168.100.{10 + index}",
            maxcpu=rng.choice((8, 12, 16, 24, 32)),
            maxmem=rng.choice((32, 64, 128)) * GIB,
            cpu_model=rng.choice(CPU_MODELS),
            booted_at=now - rng.randint(2, 90) * 86400 - rng.randint(0, 86399),
            rootfs_total=rng.choice((94, 98, 196)) * GIB,
            load=round(rng.uniform(0.02, 0.9), 2),
        )
        node.storages = {
            "local": Storage("local", "dir", "backup,iso,vztmpl", node.rootfs_total, path="/var/lib/vz"),
            "local-lvm": Storage("local-lvm", "lvmthin", "images,rootdir", rng.choice((800, 1700, 3500)) * GIB),
        }
        for filename, size in ISO_FILES:
            node.storages["local"].volumes.append(
                Volume(f"local:iso/{filename}", "iso", "iso", size, int(now) - rng.randint(10, 400) * 86400)
            )
        for filename, size, fmt in CT_TEMPLATES:
            node.storages["local"].volumes.append(
                Volume(f"local:vztmpl/{filename}", "vztmpl", fmt, size, int(now) - rng.randint(10, 400) * 86400)
            )
        node.network = [
            NetIface("eno1", "eth", active=1, autostart=0),
            NetIface("eno2", "eth", active=0, autostart=0),
            NetIface(
                "vmbr0",
                "bridge",
                method="static",
                address=node.ip,
                netmask="255.255.255.0",
                gateway="192.168.100.1",
                bridge_ports="eno1",
            ),
        ]
        nodes[name] = node

    guests: dict[int, Guest] = {}
    required: list[tuple[GuestKind, str]] = [
        ("qemu", "running"),
        ("lxc", "running"),
        ("qemu", "stopped"),
        ("lxc", "stopped"),
        ("qemu", "template"),
    ]
    plan = required[:guest_count]
    while len(plan) < guest_count:
        plan.append(("qemu" if rng.random() < 0.6 else "lxc", "running" if rng.random() < 0.6 else "stopped"))
    rng.shuffle(plan)
    node_names = list(nodes)
    used_names: set[str] = set()
    for index, (kind, state) in enumerate(plan):
        vmid = 100 + index
        node_name = node_names[index % len(node_names)]
        guest = _seed_guest(rng, vmid, kind, state, node_name, now, used_names)
        guests[vmid] = guest
        _add_disk_volume(nodes[node_name], guest, now)
    for guest in rng.sample(sorted(guests.values(), key=lambda g: g.vmid), k=min(2, len(guests))):
        if guest.template:
            continue
        guest.snapshots.append(
            Snapshot(
                "before-upgrade",
                "state before the last apt upgrade",
                int(now) - rng.randint(2, 60) * 86400,
                None,
                0,
                dict(guest.config),
            )
        )
    for node in nodes.values():
        backups = [g for g in guests.values() if g.node == node.name][:2]
        for guest in backups:
            node.storages["local"].volumes.append(
                backup_volume(node.storages["local"], guest, int(now) - 86400, rng.randint(300, 3000) * MIB)
            )
    return Cluster(name=CLUSTER_NAME, nodes=nodes, guests=guests)


def _unique_name(rng: random.Random, bases: tuple[str, ...], used: set[str]) -> str:
    while True:
        name = f"{rng.choice(bases)}-{rng.randint(1, 30):02d}"
        if name not in used:
            used.add(name)
            return name


def _seed_guest(
    rng: random.Random, vmid: int, kind: GuestKind, state: str, node: str, now: float, used_names: set[str]
) -> Guest:
    memory = rng.choice((512, 1024, 2048, 4096, 8192))
    cores = rng.choice((1, 2, 4))
    mac = mac_address(rng)
    if kind == "qemu":
        disk = rng.choice((16, 32, 64, 128))
        name = "debian12-tmpl" if state == "template" else _unique_name(rng, VM_NAMES, used_names)
        config = {
            "name": name,
            "memory": str(memory),
            "cores": str(cores),
            "sockets": "1",
            "cpu": "x86-64-v2-AES",
            "ostype": "l26",
            "scsihw": "virtio-scsi-single",
            "boot": "order=scsi0;ide2;net0",
            "scsi0": f"local-lvm:vm-{vmid}-disk-0,iothread=1,size={disk}G",
            "ide2": "none,media=cdrom",
            "net0": f"virtio={mac},bridge=vmbr0,firewall=1",
            "agent": "1" if rng.random() < 0.7 or state == "running" else "0",
            "onboot": "1" if state == "running" else "0",
            "numa": "0",
            "smbios1": f"uuid={uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "vmgenid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "meta": f"creation-qemu=9.2.0,ctime={int(now) - rng.randint(30, 700) * 86400}",
        }
        if state == "template":
            config["template"] = "1"
    else:
        disk = rng.choice((4, 8, 16))
        name = _unique_name(rng, CT_NAMES, used_names)
        config = {
            "arch": "amd64",
            "hostname": name,
            "memory": str(memory),
            "swap": "512",
            "cores": str(cores),
            "ostype": "debian",
            "rootfs": f"local-lvm:vm-{vmid}-disk-0,size={disk}G",
            "net0": f"name=eth0,bridge=vmbr0,firewall=1,hwaddr={mac},ip=dhcp,type=veth",
            "unprivileged": "1",
            "features": "nesting=1",
            "onboot": "1" if state == "running" else "0",
        }
    if rng.random() < 0.4:
        config["tags"] = rng.choice(("prod", "staging", "infra", "prod;web"))
    guest = Guest(
        vmid=vmid,
        kind=kind,
        node=node,
        config=config,
        cpu_load=round(rng.uniform(0.005, 0.25), 4),
        mem_fraction=round(rng.uniform(0.25, 0.8), 3),
        disk_used=int(disk * GIB * rng.uniform(0.15, 0.6)),
    )
    if state == "running":
        guest.status = "running"
        guest.started_at = now - rng.randint(600, 40 * 86400)
        guest.pid = rng.randint(1500, 250000)
    return guest


def _add_disk_volume(node: Node, guest: Guest, now: float) -> None:
    node.storages["local-lvm"].volumes.append(
        Volume(
            f"local-lvm:vm-{guest.vmid}-disk-0",
            "images" if guest.kind == "qemu" else "rootdir",
            "raw",
            guest.maxdisk,
            int(now) - 30 * 86400,
            vmid=guest.vmid,
            used=guest.disk_used if guest.kind == "lxc" else guest.maxdisk // 3,
        )
    )


def backup_volume(storage: Storage, guest: Guest, ctime: int, size: int, notes: str | None = None) -> Volume:
    """A vzdump archive of `guest` on `storage`, named the way vzdump names it there."""
    if storage.type == "pbs":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ctime))
        volid = f"{storage.storage}:backup/{'vm' if guest.kind == 'qemu' else 'ct'}/{guest.vmid}/{stamp}"
        fmt = "pbs-vm" if guest.kind == "qemu" else "pbs-ct"
        verification = {"state": "ok", "upid": f"UPID:pbs:0000{guest.vmid:04X}:00000000:{ctime:08X}:verify:::"}
    else:
        stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(ctime))
        fmt = "vma.zst" if guest.kind == "qemu" else "tar.zst"
        volid = f"{storage.storage}:backup/vzdump-{guest.kind}-{guest.vmid}-{stamp}.{fmt}"
        verification = None
    return Volume(
        volid, "backup", fmt, size, ctime, vmid=guest.vmid, notes=notes if notes is not None else guest.name,
        subtype=guest.kind, verification=verification, config=dict(guest.config),
    )

