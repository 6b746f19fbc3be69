"""Harmless system commands with plausible output: hostname, uptime, uname, df, free, date, sleep, timeout, ..."""

from __future__ import annotations

import time

from proxmox_mcp_pve_sim.model import GIB, GUEST_KERNEL, KERNEL_RELEASE, KERNEL_VERSION, MIB
from proxmox_mcp_pve_sim.shell import ShellEnv, Streams
from proxmox_mcp_pve_sim.vfs import list_dir, read_file


def _kernel(env: ShellEnv) -> str:
    return GUEST_KERNEL if env.guest is not None and env.guest.kind == "qemu" else KERNEL_RELEASE


async def echo(argv: list[str], env: ShellEnv, io: Streams) -> int:
    args = argv[1:]
    newline = True
    while args and args[0] in ("-n", "-e", "-E", "-ne", "-en"):
        newline = newline and "n" not in args[0]
        args = args[1:]
    io.out(" ".join(args) + ("\n" if newline else ""))
    return 0


async def true_(argv: list[str], env: ShellEnv, io: Streams) -> int:
    return 0


async def false_(argv: list[str], env: ShellEnv, io: Streams) -> int:
    return 1


async def hostname(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flag = argv[1] if len(argv) > 1 else ""
    ip = env.sim.cluster.nodes[env.node].ip
    answers = {
        "": env.hostname,
        "-s": env.hostname,
        "--short": env.hostname,
        "-f": f"{env.hostname}.sim.local",
        "--fqdn": f"{env.hostname}.sim.local",
        "-i": ip,
        "-I": ip + " ",
        "-d": "sim.local",
    }
    if flag not in answers:
        io.err(f"hostname: invalid option -- '{flag.lstrip('-')[:1]}'\n")
        return 1
    io.out(answers[flag] + "\n")
    return 0


async def whoami(argv: list[str], env: ShellEnv, io: Streams) -> int:
    io.out(f"{env.user}\n")
    return 0


async def id_(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags = "".join(a.lstrip("-") for a in argv[1:])
    if "u" in flags or "g" in flags:
        io.out("root\n" if "n" in flags else "0\n")
    else:
        io.out("uid=0(root) gid=0(root) groups=0(root)\n")
    return 0


async def pwd(argv: list[str], env: ShellEnv, io: Streams) -> int:
    io.out(env.cwd + "\n")
    return 0


def _uptime_seconds(env: ShellEnv) -> int:
    return env.guest.uptime if env.guest is not None else env.sim.cluster.nodes[env.node].uptime


def _load(env: ShellEnv) -> float:
    return round(env.guest.cpu * env.guest.cpus, 2) if env.guest is not None else env.sim.cluster.nodes[env.node].load


async def uptime(argv: list[str], env: ShellEnv, io: Streams) -> int:
    seconds = _uptime_seconds(env)
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if "-p" in argv or "--pretty" in argv:
        io.out(f"up {days} days, {hours} hours, {minutes} minutes\n")
        return 0
    if "-s" in argv or "--since" in argv:
        io.out(time.strftime("%Y-%m-%d %H:%M:%S\n", time.gmtime(time.time() - seconds)))
        return 0
    load = _load(env)
    since = f"{days} days, {hours:2d}:{minutes:02d}" if days else f"{hours:2d}:{minutes:02d}"
    io.out(
        f" {time.strftime('%H:%M:%S', time.gmtime())} up {since},  1 user,  load average: "
        f"{load:.2f}, {load * 0.9:.2f}, {load * 0.8:.2f}\n"
    )
    return 0


async def uname(argv: list[str], env: ShellEnv, io: Streams) -> int:
    kernel = _kernel(env)
    version = KERNEL_VERSION if kernel == KERNEL_RELEASE else "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)"
    fields = {
        "s": "Linux",
        "n": env.hostname,
        "r": kernel,
        "v": version,
        "m": "x86_64",
        "p": "unknown",
        "i": "unknown",
        "o": "GNU/Linux",
    }
    flags = "".join(a.lstrip("-") for a in argv[1:]) or "s"
    if "a" in flags or "all" in argv[1:] or "--all" in argv:
        io.out(f"Linux {env.hostname} {kernel} {version} x86_64 GNU/Linux\n")
        return 0
    unknown = [f for f in flags if f not in fields]
    if unknown:
        io.err(f"uname: invalid option -- '{unknown[0]}'\n")
        return 1
    io.out(" ".join(fields[f] for f in "snrvmpio" if f in flags) + "\n")
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            if unit == "":
                return str(int(value))
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
        value /= 1024
    return str(size)


def _filesystems(env: ShellEnv) -> list[tuple[str, int, int, str]]:
    if env.guest is not None:
        total = env.guest.maxdisk or 8 * GIB
        used = env.guest.disk_used or total // 4
        return [
            ("/dev/sda1" if env.guest.kind == "qemu" else "/dev/mapper/pve-vm--disk", total, used, "/"),
            ("tmpfs", env.guest.maxmem // 2, 0, "/dev/shm"),
        ]
    node = env.sim.cluster.nodes[env.node]
    root = node.storages["local"]
    return [
        ("udev", node.maxmem // 2, 0, "/dev"),
        ("tmpfs", node.maxmem // 10, 1_900_000, "/run"),
        ("/dev/mapper/pve-root", root.total, root.used, "/"),
        ("tmpfs", node.maxmem // 2, 48 * MIB, "/dev/shm"),
        ("tmpfs", 5 * MIB, 0, "/run/lock"),
        ("/dev/nvme0n1p2", 1022 * MIB, 12 * MIB, "/boot/efi"),
        ("/dev/fuse", 128 * MIB, 32 * 1024, "/etc/pve"),
    ]


async def df(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags = "".join(a.lstrip("-") for a in argv[1:] if a.startswith("-"))
    bad = [f for f in flags if f not in "hHkmTaP"]
    if bad:
        io.err(f"df: invalid option -- '{bad[0]}'\nTry 'df --help' for more information.\n")
        return 1
    human = "h" in flags or "H" in flags
    rows = [("Filesystem", "Size" if human else "1K-blocks", "Used", "Avail", "Use%", "Mounted on")]
    for name, total, used, mount in _filesystems(env):
        avail = max(total - used, 0)
        pct = f"{-(-used * 100 // total) if total else 0}%"
        if human:
            rows.append((name, _human(total), _human(used) if used else "0", _human(avail), pct, mount))
        else:
            rows.append((name, str(total // 1024), str(used // 1024), str(avail // 1024), pct, mount))
    width = max(len(r[0]) for r in rows) + 1
    for row in rows:
        io.out(f"{row[0]:<{width}}{row[1]:>9} {row[2]:>5} {row[3]:>5} {row[4]:>4} {row[5]}\n")
    return 0


async def free(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if env.guest is not None:
        total, used = env.guest.maxmem, env.guest.mem
    else:
        node = env.sim.cluster.nodes[env.node]
        total, used = node.maxmem, env.sim.cluster.node_mem_used(env.node)
    swap = 8 * GIB if env.guest is None else 1 * GIB
    cache = total // 20
    unit = {"-b": 1, "-k": 1024, "-m": MIB, "-g": GIB}
    chosen = next((a for a in argv[1:] if a in unit or a == "-h"), "-k")

    def fmt(value: int) -> str:
        return _human(value) if chosen == "-h" else str(value // unit[chosen])

    free_mem = total - used - cache
    io.out(f"{'':7}{'total':>13}{'used':>12}{'free':>12}{'shared':>12}{'buff/cache':>12}{'available':>12}\n")
    io.out(
        f"{'Mem:':7}{fmt(total):>13}{fmt(used):>12}{fmt(free_mem):>12}{fmt(64 * MIB):>12}{fmt(cache):>12}"
        f"{fmt(total - used):>12}\n"
    )
    io.out(f"{'Swap:':7}{fmt(swap):>13}{fmt(0):>12}{fmt(swap):>12}\n")
    return 0


async def nproc(argv: list[str], env: ShellEnv, io: Streams) -> int:
    count = env.guest.cpus if env.guest is not None else env.sim.cluster.nodes[env.node].maxcpu
    io.out(f"{count}\n")
    return 0


async def date(argv: list[str], env: ShellEnv, io: Streams) -> int:
    now = time.gmtime()
    for arg in argv[1:]:
        if arg.startswith("+"):
            io.out(time.strftime(arg[1:].replace("%N", "000000000"), now) + "\n")
            return 0
        if arg in ("-R", "--rfc-email"):
            io.out(time.strftime("%a, %d %b %Y %H:%M:%S +0000\n", now))
            return 0
        if arg in ("-I", "--iso-8601"):
            io.out(time.strftime("%Y-%m-%d\n", now))
            return 0
        if arg not in ("-u", "--utc"):
            io.err(f"date: invalid date '{arg}'\n")
            return 1
    io.out(time.strftime("%a %b %e %H:%M:%S UTC %Y\n", now))
    return 0


async def cat(argv: list[str], env: ShellEnv, io: Streams) -> int:
    paths = [a for a in argv[1:] if not a.startswith("-") or a == "-"]
    if not paths:
        io.out(io.stdin)
        return 0
    status = 0
    for path in paths:
        if path == "-":
            io.out(io.stdin)
            continue
        content = read_file(path, env)
        if content is None:
            if list_dir(path, env) is not None:
                io.err(f"cat: {path}: Is a directory\n")
            else:
                io.err(f"cat: {path}: No such file or directory\n")
            status = 1
            continue
        io.out(content)
    return status


async def ls(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags = "".join(a.lstrip("-") for a in argv[1:] if a.startswith("-"))
    paths = [a for a in argv[1:] if not a.startswith("-")] or [env.cwd]
    long = "l" in flags
    status = 0
    for index, path in enumerate(paths):
        names = list_dir(path, env)
        if names is None:
            if read_file(path, env) is not None:
                io.out(f"-rw-r--r-- 1 root root 512 Jan  1 00:00 {path}\n" if long else f"{path}\n")
                continue
            io.err(f"ls: cannot access '{path}': No such file or directory\n")
            status = 2
            continue
        if len(paths) > 1:
            io.out(("\n" if index else "") + f"{path}:\n")
        shown = ([".", ".."] if "a" in flags else []) + sorted(names)
        if long:
            io.out(f"total {len(shown) * 4}\n")
            for name in shown:
                is_dir = list_dir(f"{path.rstrip('/')}/{name}", env) is not None or name in (".", "..")
                io.out(
                    f"{'drwxr-xr-x 2' if is_dir else '-rw-r----- 1'} root root {4096 if is_dir else 1024:>5} "
                    f"Jan  1 00:00 {name}\n"
                )
        elif shown:
            io.out("  ".join(shown) + "\n")
    return status


UNIT_LINES = {
    "pveproxy": ["starting 3 worker(s)", "worker {pid} started", "proxy detected vanished client connection"],
    "pvedaemon": [
        "<root@pam> successful auth for user 'root@pam'",
        "worker {pid} finished",
        "<root@pam> starting task UPID:{node}:0000{pid}:00A3C1F2:6745A1B2:vncshell::root@pam:",
    ],
    "pvestatd": ["status update time (0.412 seconds)", "auth key pair too old, rotating.."],
    "pve-cluster": ["[status] notice: received log", "[dcdb] notice: data verification successful"],
    "corosync": [
        "[TOTEM ] Token has not been received in 2250 ms",
        "[QUORUM] Members[3]: 1 2 3",
        "[MAIN  ] Completed service synchronization, ready to provide service.",
    ],
    "ssh": ["Accepted publickey for root from 192.168.100.5 port 51234 ssh2", "Received disconnect from 192.168.100.5"],
    "sshd": ["Accepted publickey for root from 192.168.100.5 port 51234 ssh2"],
    "cron": ["(root) CMD (test -e /run/systemd/system || SERVICE_MODE=1 /sbin/e2scrub_all -A -r)"],
}
UNIT_ALIASES = {"pveproxy.service": "pveproxy", "pvedaemon.service": "pvedaemon", "ssh.service": "ssh"}


async def journalctl(argv: list[str], env: ShellEnv, io: Streams) -> int:
    unit, count = None, 10
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-u", "--unit"):
            unit = next(args, None)
        elif arg.startswith("--unit="):
            unit = arg.split("=", 1)[1]
        elif arg in ("-n", "--lines"):
            value = next(args, "10")
            if not value.isdigit():
                io.err(f"Failed to parse lines '{value}'.\n")
                return 1
            count = int(value)
        elif arg.startswith("-n") and arg[2:].isdigit():
            count = int(arg[2:])
        elif arg.startswith("--lines="):
            count = int(arg.split("=", 1)[1]) if arg.split("=", 1)[1].isdigit() else 10
    name = UNIT_ALIASES.get(unit or "", unit or "pvedaemon")
    lines = UNIT_LINES.get(name.removesuffix(".service"))
    if lines is None:
        io.out("-- No entries --\n")
        return 0
    now = time.time()
    count = min(count, 200)
    for index in range(count):
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(now - (count - index) * 37))
        pid = 1200 + index % 7
        text = lines[index % len(lines)].format(pid=pid, node=env.hostname)
        io.out(f"{stamp} {env.hostname} {name}[{pid}]: {text}\n")
    return 0


KNOWN_UNITS = (
    "pveproxy",
    "pvedaemon",
    "pvestatd",
    "pve-cluster",
    "corosync",
    "ssh",
    "cron",
    "pve-firewall",
    "pvescheduler",
    "spiceproxy",
    "chrony",
    "postfix",
)


async def systemctl(argv: list[str], env: ShellEnv, io: Streams) -> int:
    if len(argv) < 2:
        io.out("  UNIT               LOAD   ACTIVE SUB     DESCRIPTION\n")
        for unit in KNOWN_UNITS:
            io.out(f"  {unit + '.service':<18} loaded active running {unit}\n")
        return 0
    verb, units = argv[1], [u.removesuffix(".service") for u in argv[2:] if not u.startswith("-")]
    if verb in ("is-active", "is-enabled"):
        status = 0
        for unit in units:
            known = unit in KNOWN_UNITS
            io.out(("active" if verb == "is-active" else "enabled") + "\n" if known else "inactive\n")
            status = status or (0 if known else 3)
        return status
    if verb == "status":
        for unit in units or ["pveproxy"]:
            if unit not in KNOWN_UNITS:
                io.err(f"Unit {unit}.service could not be found.\n")
                return 4
            io.out(
                f"● {unit}.service - {unit}\n     Loaded: loaded (/usr/lib/systemd/system/{unit}.service; enabled)\n"
                f"     Active: active (running) since {time.strftime('%a %Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n"
            )
        return 0
    io.err(f"Unknown command verb '{verb}', or not supported by pve-sim.\n")
    return 1


async def ps(argv: list[str], env: ShellEnv, io: Streams) -> int:
    io.out("    PID TTY          TIME CMD\n")
    processes = (
        ["systemd", "pmxcfs", "corosync", "pvedaemon", "pveproxy", "pvestatd", "sshd"]
        if env.on_host
        else ["systemd", "sshd", "cron"]
    )
    for index, name in enumerate(processes):
        io.out(f"{1 + index * 97:>7} ?        00:00:0{index} {name}\n")
    return 0


async def ip(argv: list[str], env: ShellEnv, io: Streams) -> int:
    addr = env.sim.cluster.nodes[env.node].ip
    if env.guest is not None:
        addr = f"192.168.100.{100 + env.guest.vmid % 100}"
    args = [a for a in argv[1:] if not a.startswith("-")]
    if args[:1] in (["r"], ["route"]):
        io.out(
            f"default via 192.168.100.1 dev {'vmbr0' if env.on_host else 'eth0'}\n"
            f"192.168.100.0/24 dev {'vmbr0' if env.on_host else 'eth0'} proto kernel scope link src {addr}\n"
        )
        return 0
    if args[:1] not in (["a"], ["addr"], ["address"], []):
        io.err(f'Object "{args[0]}" is unknown, try "ip help".\n')
        return 1
    dev = "vmbr0" if env.on_host else "eth0"
    io.out(
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n    inet 127.0.0.1/8 scope host lo\n"
        f"2: {dev}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n"
        f"    inet {addr}/24 scope global {dev}\n"
    )
    return 0
