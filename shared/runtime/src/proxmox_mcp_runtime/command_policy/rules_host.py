"""The readonly profile's host-health rules: Ceph, SMART, corosync, bridges and NICs, logins, time sync and
sampling statistics. Standard library only.

These programs also change state or print secrets through some subcommand or option (Ceph key dumps, SMART
self-tests, quorum overrides, forwarding-table edits, clock steps, endless sampling, failed-login records): each
rule lists only the read-only forms, and everything else is refused like any unlisted argument.
"""

from __future__ import annotations

from .model import CommandRule
from .rulekit import rule

_CEPH_FORMAT = "choice:json|json-pretty|plain|xml|xml-pretty"
_CEPH_OPTIONS = {"-f": _CEPH_FORMAT, "--format": _CEPH_FORMAT, "--connect-timeout": "int:1:300"}
CEPH_READ_COMMANDS = (
    "-s",
    "status",
    "health",
    "health detail",
    "df",
    "df detail",
    "osd tree",
    "osd df",
    "osd df tree",
    "osd stat",
    "osd perf",
    "osd pool ls",
    "osd pool ls detail",
    "osd pool stats",
    "mon stat",
    "mgr stat",
    "pg stat",
    "quorum_status",
    "versions",
)
"""`ceph` commands that only report. Never `auth`, `config-key` (keys), `tell`/`daemon` (daemon commands),
`config` (options can hold credentials), and no global option that names a file, key, user or daemon socket."""

_SMART_LOGS = (
    "choice:error|xerror|selftest|xselftest|selective|directory|background|scttemp|scttempsts|scttemphist|scterc"
    "|devstat|ssd|sataphy|sasphy"
)  # no `,reset`, `scterc,R,W` or `scttempint,N`: those write to the drive
_SMART_DEVICE_TYPES = (
    r"regex:auto|test|ata|scsi|nvme|sat|sat,auto|sat,12|sat,16|usbcypress|usbjmicron|usbsunplus|sntjmicron"
    r"|sntasmedia|sntrealtek|(megaraid|cciss|areca|3ware),[0-9]{1,3}"
)
_SMART_GET = "choice:all|aam|apm|dsn|lookahead|security|wcache|rcache|wcreorder|wcache-sct"

_BRIDGE_GLOBAL = ("-s", "-statistics", "-d", "-details", "-j", "-json", "-p", "-pretty", "-o", "-oneline", "-4", "-6")
_ETHTOOL_SHOW_MODES = ("-i", "-S", "-k", "-g", "-a", "-P", "-c", "-l")
"""driver, statistics, offloads, rings, pause, permanent address, coalescing, channels: each an upper-case twin
(-K, -G, -A, -C, -L) or a neighbour (-s, -E, -f, -t, -p, -r, -w) that changes the NIC."""

_LOGIN_TIME = r"regex:[A-Za-z0-9 :.+-]{1,64}"
_LOGIN_OR_TTY = r"regex:[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,63}"
_DAYS = "int:0:100000"
_LASTLOG_OPTIONS = {"-b": _DAYS, "--before": _DAYS, "-t": _DAYS, "--time": _DAYS, "-u": "name", "--user": "name"}
"""Never -C/-S (clear or set a record), -R (chroot), and for lastlog2 -r (rename), -i (import), -d (database)."""

_TIMEDATECTL_PROPERTY = r"regex:[A-Za-z][A-Za-z0-9,]{0,255}"
_CHRONYC_GLOBAL = ("-n", "-N", "-c", "-4", "-6")
"""Never -h/-p (another daemon), -m (each argument a command), -a/-f (command-key authentication, old
versions read the key file), -u."""

_SAMPLE_NUMBER = r"regex:[0-9]{1,4}"
_DEVICE_OR_NUMBER = r"regex:ALL|(/dev/)?[A-Za-z][A-Za-z0-9_.-]{0,63}|[0-9]{1,4}"
_DEC = "choice:0|1|2"

HOST_RULES: tuple[CommandRule, ...] = (
    # --- Ceph ----------------------------------------------------------------------------------------------
    *(rule("ceph", words, options=_CEPH_OPTIONS) for words in CEPH_READ_COMMANDS),
    rule("pveceph", "status"),
    rule(
        "pveceph",
        "pool ls",
        flags=("--noborder", "--noheader"),
        options={"--output-format": "choice:json|json-pretty|text|yaml"},
    ),
    # --- disk health ---------------------------------------------------------------------------------------
    rule(
        "smartctl",
        short="HiAaxcj",
        flags=(
            "--health",
            "--info",
            "--attributes",
            "--all",
            "--xall",
            "--capabilities",
            "--json",
            "--scan",
            "--scan-open",
        ),
        options={
            "-l": _SMART_LOGS,
            "--log": _SMART_LOGS,
            "-d": _SMART_DEVICE_TYPES,
            "--device": _SMART_DEVICE_TYPES,
            "-n": "choice:never|sleep|standby|idle",
            "--nocheck": "choice:never|sleep|standby|idle",
            "-q": "choice:errorsonly|silent|noserial",
            "--quietmode": "choice:errorsonly|silent|noserial",
            "-f": "choice:old|brief",
            "--format": "choice:old|brief",
            "-g": _SMART_GET,
            "--get": _SMART_GET,
        },
        positionals=("device",),
        max_pos=1,
        check="smartctl",
    ),
    # --- cluster communication -----------------------------------------------------------------------------
    rule("corosync-quorumtool", short="slapHiV", options={"-o": "choice:a|n|i"}),
    rule(
        "corosync-cfgtool",
        short="snb",
        flags=("--status", "--nodes", "--brief"),
        options={
            "-a": "int:1:4294967295",
            "--address": "int:1:4294967295",
            "-i": r"regex:[0-9A-Fa-f.:]{1,64}",
            "--if": r"regex:[0-9A-Fa-f.:]{1,64}",
        },
    ),
    # --- bridges and NICs ----------------------------------------------------------------------------------
    *(rule("bridge", table, global_flags=_BRIDGE_GLOBAL) for table in ("link", "fdb", "vlan", "mdb")),
    *(
        rule("bridge", f"{table} show", global_flags=_BRIDGE_GLOBAL, positionals=("name",), max_pos=8)
        for table in ("link", "fdb", "vlan", "mdb")
    ),
    rule("ethtool", positionals=("name",), min_pos=1),
    *(rule("ethtool", mode, positionals=("name",), min_pos=1) for mode in _ETHTOOL_SHOW_MODES),
    rule("sensors", short="fAuj", flags=("--fahrenheit", "--no-adapter"), positionals=("name",), max_pos=8),
    # --- logins: sessions and history from utmp/wtmp, never btmp (failed logins hold mistyped passwords) ---
    rule("who", short="abdHlmpqrstTuw", flags=("--all", "--boot", "--heading", "--ips", "--count", "--users")),
    rule("w", short="hsufoi", positionals=("name",), max_pos=1),
    rule(
        "last",
        short="aFiRwx",
        flags=("--hostlast", "--fulltimes", "--ip", "--nohostname", "--fullnames", "--system"),
        options={
            "-n": "int:1:100000",
            "--limit": "int:1:100000",
            "-s": _LOGIN_TIME,
            "--since": _LOGIN_TIME,
            "-t": _LOGIN_TIME,
            "--until": _LOGIN_TIME,
            "-p": _LOGIN_TIME,
            "--present": _LOGIN_TIME,
            "--time-format": "choice:notime|short|full|iso",
        },
        positionals=(_LOGIN_OR_TTY,),
        max_pos=8,
    ),
    rule("lastlog", options=_LASTLOG_OPTIONS),
    rule("lastlog2", short="as", flags=("--active", "--service"), options=_LASTLOG_OPTIONS),
    # --- time synchronisation ------------------------------------------------------------------------------
    rule("timedatectl", flags=("--no-pager",)),
    rule("timedatectl", "status", flags=("--no-pager",), global_flags=("--no-pager",)),
    rule("timedatectl", "timesync-status", flags=("--no-pager",), global_flags=("--no-pager",)),
    *(
        rule(
            "timedatectl",
            sub,
            short="a",
            flags=("--all", "--value", "--no-pager"),
            options={"-p": _TIMEDATECTL_PROPERTY, "--property": _TIMEDATECTL_PROPERTY},
            global_flags=("--no-pager",),
        )
        for sub in ("show", "show-timesync")
    ),
    *(
        rule("chronyc", sub, global_flags=_CHRONYC_GLOBAL)
        for sub in ("tracking", "activity", "ntpdata", "serverstats", "rtcdata", "smoothing")
    ),
    *(
        rule("chronyc", sub, short="av", global_flags=_CHRONYC_GLOBAL)
        for sub in ("sources", "sourcestats", "selectdata")
    ),
    # --- sampling statistics: an interval needs a count, both bounded ---------------------------------------
    rule(
        "vmstat",
        short="afmnsdDwty",
        flags=(
            "--active",
            "--forks",
            "--slabs",
            "--one-header",
            "--stats",
            "--disk",
            "--disk-sum",
            "--wide",
            "--timestamp",
            "--no-first",
        ),
        options={
            "-p": r"regex:(/dev/)?[A-Za-z0-9_.-]{1,64}",
            "--partition": r"regex:(/dev/)?[A-Za-z0-9_.-]{1,64}",
            "-S": "choice:k|K|m|M",
            "--unit": "choice:k|K|m|M",
        },
        positionals=(_SAMPLE_NUMBER,),
        max_pos=2,
        check="samples",
    ),
    rule(
        "iostat",
        short="cdhkmNstxyz",
        flags=("--human", "--pretty", "--compact"),
        options={
            "-p": r"regex:[A-Za-z][A-Za-z0-9_,.-]{0,255}",  # never a number: iostat would read it as the interval
            "-j": "choice:ID|LABEL|PATH|UUID",
            "-o": "choice:JSON",
            "--dec": _DEC,
        },
        attached=("--dec",),
        positionals=(_DEVICE_OR_NUMBER,),
        max_pos=18,
        check="samples",
    ),
    rule(
        "mpstat",
        short="AnTuH",
        options={
            "-P": r"regex:ALL|ON|[0-9,-]{1,64}",
            "-I": "choice:SUM|CPU|SCPU|ALL",
            "-N": r"regex:ALL|[0-9,-]{1,64}",
            "-o": "choice:JSON",
            "--dec": _DEC,
        },
        attached=("--dec",),
        positionals=(_SAMPLE_NUMBER,),
        max_pos=2,
        check="samples",
    ),
)
