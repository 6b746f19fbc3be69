"""Host-health commands with plausible output from the simulated cluster: corosync-quorumtool, vmstat, timedatectl.

Only the read-only forms the readonly command profile allows are emulated; any other option is refused like the
real tool refuses an unknown one.
"""

from __future__ import annotations

import asyncio
import time

from proxmox_mcp_pve_sim.shell import ShellEnv, Streams

_QUORUM_FLAGS = set("slapHi")


def _members(env: ShellEnv, flags: set[str]) -> list[str]:
    rows = ["    Nodeid      Votes Name"]
    for node in sorted(env.sim.cluster.nodes.values(), key=lambda n: n.nodeid):
        nodeid = f"0x{node.nodeid:08x}" if "H" in flags else f"{node.nodeid:>10}"
        name = node.ip if "i" in flags else node.name
        local = " (local)" if node.name == env.node else ""
        rows.append(f"{nodeid}          1 {name}{local}")
    return rows


async def corosync_quorumtool(argv: list[str], env: ShellEnv, io: Streams) -> int:
    flags: set[str] = set()
    args = iter(argv[1:])
    for arg in args:
        if arg == "-o" and next(args, None) in ("a", "n", "i"):
            continue  # the order: members are always listed by node id here
        letters = set(arg[1:]) if arg.startswith("-") and len(arg) > 1 else {"?"}
        if not letters <= _QUORUM_FLAGS:
            io.err(f"corosync-quorumtool: option {arg!r} is not supported by pve-sim\n")
            return 1
        flags |= letters
    membership = ["", "Membership information", "----------------------", *_members(env, flags)]
    if "l" in flags and "s" not in flags:
        io.out("\n".join(membership) + "\n")
        return 0
    count = len(env.sim.cluster.nodes)
    local = env.sim.cluster.nodes[env.node]
    lines = [
        "Quorum information",
        "------------------",
        f"Date:             {time.strftime('%a %b %d %H:%M:%S %Y', time.gmtime())}",
        "Quorum provider:  corosync_votequorum",
        f"Nodes:            {count}",
        f"Node ID:          0x{local.nodeid:08x}",
        f"Ring ID:          1.{count * 7:x}",
        "Quorate:          Yes",
        "",
        "Votequorum information",
        "----------------------",
        f"Expected votes:   {count}",
        f"Highest expected: {count}",
        f"Total votes:      {count}",
        f"Quorum:           {count // 2 + 1}  ",
        "Flags:            Quorate ",
        *membership,
    ]
    io.out("\n".join(lines) + "\n")
    return 0


def _vmstat_row(env: ShellEnv) -> str:
    cluster = env.sim.cluster
    if env.guest is not None:
        total, used, cpu = env.guest.maxmem, env.guest.mem, env.guest.cpu
    else:
        total, used, cpu = cluster.nodes[env.node].maxmem, cluster.node_mem_used(env.node), cluster.node_cpu(env.node)
    user = min(99, round(cpu * 100))
    system = min(99 - user, max(1, user // 4))
    idle = 100 - user - system
    free_kib, cache_kib = (total - used) // 1024, total // 20 // 1024
    return (
        f"{1 + user // 25:>2} {0:>2} {0:>6} {free_kib:>9} {cache_kib // 8:>6} {cache_kib:>8} {0:>4} {0:>4} "
        f"{12:>5} {48:>5} {640:>4} {1210:>5} {user:>2} {system:>2} {idle:>2} {0:>2} {0:>2}\n"
    )


async def vmstat(argv: list[str], env: ShellEnv, io: Streams) -> int:
    numbers = [arg for arg in argv[1:] if not arg.startswith("-")]
    if len(numbers) > 2 or not all(n.isdigit() and int(n) > 0 for n in numbers):
        io.err("vmstat: pve-sim takes only [delay [count]] (positive integers)\n")
        return 1
    delay = int(numbers[0]) if numbers else 0
    count = int(numbers[1]) if len(numbers) == 2 else (None if delay else 1)  # a delay alone: until killed
    io.out("procs -----------memory---------- ---swap-- -----io---- -system-- ------cpu-----\n")
    io.out(" r  b   swpd      free   buff    cache   si   so    bi    bo   in    cs us sy id wa st\n")
    printed = 0
    while count is None or printed < count:
        if printed:
            await asyncio.sleep(delay)
        io.out(_vmstat_row(env))
        printed += 1
    return 0


async def timedatectl(argv: list[str], env: ShellEnv, io: Streams) -> int:
    verbs: list[str] = []
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-p", "--property"):
            next(args, None)  # every property is shown
        elif not arg.startswith("-"):
            verbs.append(arg)
    verb = verbs[0] if verbs else "status"
    now = time.gmtime()
    if verb == "status":
        stamp = time.strftime("%a %Y-%m-%d %H:%M:%S", now)
        fields = (
            ("Local time", f"{stamp} UTC"),
            ("Universal time", f"{stamp} UTC"),
            ("RTC time", stamp),
            ("Time zone", "Etc/UTC (UTC, +0000)"),
            ("System clock synchronized", "yes"),
            ("NTP service", "active"),
            ("RTC in local time", "no"),
        )
        io.out("".join(f"{label:>25}: {value}\n" for label, value in fields))
        return 0
    if verb == "show":
        io.out(
            "Timezone=Etc/UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n"
            f"TimeUSec={time.strftime('%a %Y-%m-%d %H:%M:%S UTC', now)}\n"
        )
        return 0
    io.err(f"timedatectl: '{verb}' is not supported by pve-sim\n")
    return 1
