"""Path arguments: normalisation and the secret / device / pseudo-file rules. Standard library only.

Matching is by name (the worker cannot see the host's file system); on the host the dispatcher also checks
the resolved path (symlinks followed), so a link to a secret is caught there. The limited host user that
cannot read these files at all is the real defence: these rules are the early, explainable answer.
"""

from __future__ import annotations

import fnmatch

from .model import PathResolver, PolicyError

SECRET_PATTERNS: tuple[str, ...] = (
    "/etc/pve/priv/**",
    "/etc/pve/nodes/*/priv/**",
    "/var/lib/pve-cluster/**",  # config.db holds everything under /etc/pve, priv included
    "**/shadow*",  # /etc/shadow, /etc/shadow-, /var/backups/shadow.bak
    "**/gshadow*",
    "/etc/security/opasswd",
    "/var/log/btmp*",  # failed logins: users type their password into the user name prompt
    "/etc/sudoers",
    "/etc/sudoers.d/**",
    "/etc/ssh/*_key",
    "/etc/ssl/private/**",
    "/etc/corosync/authkey",
    "/etc/wireguard/**",
    "/etc/ceph/**/*keyring*",
    "/var/lib/ceph/**",
    "/etc/pve/**/*keyring*",
    "/root/**",
    "/home/*/.*",  # dot files and dot directories of every user (keys, tokens, histories, cloud credentials)
    "/home/*/.*/**",
    "/etc/iscsi/**",  # CHAP secrets
    "/etc/proxmox-backup/**",
    "/run/credentials/**",
    "/etc/credstore*/**",
    "/run/secrets/**",
    "**/.ssh/**",
    "**/*.key",
    "**/*_key",
    "**/id_rsa*",
    "**/id_dsa*",
    "**/id_ecdsa*",
    "**/id_ed25519*",
    "**/authkey*",
    "**/*_history",
    "**/.netrc",
    "**/.pgpass",
    "**/token.cfg",
    "**/*.pw",
    "**/*.secret",
    "**/sasl_passwd*",
    "**/token.shadow",
    "**/.git-credentials",
)
"""Files whose content must never leave the host. `*` is one path segment, `**` any number of segments."""

PSEUDO_ALLOWED: tuple[str, ...] = (
    "/proc/loadavg",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/uptime",
    "/proc/version",
    "/proc/mounts",
    "/proc/stat",
    "/proc/vmstat",
    "/proc/diskstats",
    "/proc/partitions",
    "/proc/swaps",
    "/proc/mdstat",
    "/proc/filesystems",
    "/proc/modules",
    "/proc/cmdline",
    "/proc/net/dev",
    "/proc/pressure",
    "/proc/pressure/*",
    "/proc/spl/kstat/zfs/arcstats",
    "/proc/sys/**",
    "/proc",
)
"""The only /proc entries that may be read: per-process entries (environ, cmdline, root, cwd, fd, mem) leak
secrets or escape the name rules (/proc/self/root/etc/shadow), and kcore is the kernel's memory."""

DENIED_TREES: tuple[tuple[str, str], ...] = (
    ("/dev/**", "device files (raw disks, memory, endless streams like /dev/zero)"),
    ("/sys/kernel/debug/**", "kernel debug interfaces"),
    ("/sys/kernel/tracing/**", "kernel tracing (trace_pipe blocks forever)"),
    ("/sys/firmware/**", "firmware tables and variables"),
)


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[skip:]) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def matches(pattern: str, path: str) -> bool:
    """Whether a normalised absolute path matches a pattern (segment globs, `**` = any depth)."""
    return _match(_segments(pattern), _segments(path))


def normalize_path(raw: str) -> str:
    """Collapse `//` and `/./` and a trailing slash; refuse relative paths and `..` (it would make the name
    rules meaningless). The returned form is used for matching only; the argv keeps what the caller wrote."""
    if not raw.startswith("/"):
        raise PolicyError(f"path {raw!r} must be absolute (commands run in an unspecified directory)")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PolicyError(f"path {raw!r} contains '..'")
    return "/" + "/".join(parts)


def path_problem(normalized: str) -> str | None:
    """Why reading this (normalised) path is refused, or None."""
    for pattern in SECRET_PATTERNS:
        if matches(pattern, normalized):
            return f"it matches the secret-file rule {pattern}"
    if matches("/proc/**", normalized) and not any(matches(p, normalized) for p in PSEUDO_ALLOWED):
        return "only a fixed list of /proc files may be read (no per-process entries, no kcore)"
    for pattern, what in DENIED_TREES:
        if matches(pattern, normalized):
            return f"it is under {pattern.removesuffix('/**')}: {what}"
    return None


def check_path(raw: str, resolve: PathResolver | None = None) -> str:
    """Validate a path argument; returns its normalised form. With a resolver (on the host) the file the
    path really names, symlinks followed, must pass the same rules."""
    normalized = normalize_path(raw)
    problem = path_problem(normalized)
    if problem is None and resolve is not None:
        real = resolve(normalized)
        if real != normalized:
            problem = path_problem(real)
            if problem is not None:
                problem = f"it resolves to {real} and {problem}"
    if problem is not None:
        raise PolicyError(f"path {raw!r} is refused: {problem}")
    return normalized


def check_device(raw: str) -> str:
    """A block device named for metadata tools (lsblk): /dev/NAME or /dev/disk/by-*/NAME, nothing else."""
    normalized = normalize_path(raw)
    parts = _segments(normalized)
    ok_name = all(part.replace("-", "").replace("_", "").replace(":", "").replace(".", "").isalnum() for part in parts)
    if not ok_name or parts[:1] != ["dev"] or not (len(parts) == 2 or (len(parts) == 4 and parts[1] == "disk")):
        raise PolicyError(f"device {raw!r} is refused: expected /dev/NAME or /dev/disk/by-*/NAME")
    return normalized
