"""Programs and subcommands that no profile runs unless it opts in explicitly. Standard library only.

A rule for one of these is honoured only when the rule says `dangerous = true` AND its profile says
`allow_dangerous = true`: adding `rm` or `bash` to a profile by accident does not make it runnable.
"""

from __future__ import annotations

_GROUPS: dict[str, tuple[str, str]] = {
    "wrapper": (
        "runs another program (the policy would check the wrapper, not what it runs)",
        "env sudo su doas pkexec runuser nice nohup timeout xargs busybox toybox stdbuf setsid chroot nsenter "
        "unshare watch script ionice taskset strace ltrace gdb time command exec eval builtin flock chrt "
        "systemd-run run-parts parallel expect unbuffer sg newgrp capsh setpriv firejail bwrap numactl "
        "cgexec prlimit faketime catchsegv valgrind",
    ),
    "interpreter": (
        "is an interpreter or shell that runs code given as arguments or read from files",
        "sh bash dash zsh ksh mksh csh tcsh fish ash rbash python python2 python3 perl ruby php node nodejs lua "
        "luajit tclsh wish awk gawk mawk nawk sed jq yq bc dc m4 make cmake gcc cc tcc ld rustc go java groovy "
        "osascript pwsh",
    ),
    "decoder": (
        "decodes or transforms payloads (a way to smuggle or exfiltrate data)",
        "base64 base32 basenc xxd od hexdump openssl gpg uudecode uuencode gzip gunzip zcat bzip2 xz unxz zstd "
        "tar cpio zip unzip 7z",
    ),
    "network": (
        "opens network connections (exfiltration or downloads)",
        "curl wget nc ncat netcat socat telnet ssh scp sftp rsync ftp tftp",
    ),
    "editor": (
        "is interactive or can run shell commands (editors, pagers)",
        "vi vim nvim view ex ed nano emacs less more most pager man info screen tmux",
    ),
    "destroyer": (
        "destroys or overwrites data (disk wipers, file removal, partitioning)",
        "dd rm rmdir shred wipe wipefs mkfs mke2fs mkswap mkdosfs mkntfs mkisofs sgdisk sfdisk fdisk gdisk cfdisk "
        "parted partprobe blkdiscard hdparm sdparm nvme pvremove vgremove lvremove pvcreate vgcreate lvcreate "
        "cryptsetup truncate fallocate badblocks zerofree dmsetup losetup mdadm",
    ),
    "shell": (
        "is a shell keyword or builtin: the host shell would interpret it instead of running a program",
        "if then else elif fi case esac for select while until do done function coproc source alias unalias "
        "export unset set trap ulimit umask cd pushd popd declare typeset local readonly shopt enable hash "
        "wait fg bg jobs disown logout return break continue shift",
    ),
    "failed_logins": (
        "prints failed-login records, which hold passwords typed into the user name prompt",
        "lastb",
    ),
    "keyring": ("reads and writes Ceph keyrings", "ceph-authtool"),
    "system": (
        "changes the system state (power, users, permissions, kernel, firewall)",
        "reboot shutdown poweroff halt init telinit kill killall pkill chmod chown chgrp chattr setfacl mount "
        "umount swapon swapoff useradd userdel usermod passwd chpasswd visudo crontab at batch insmod rmmod "
        "modprobe sysctl iptables ip6tables nft ebtables tee cp mv ln install",
    ),
}

NEVER_PROGRAMS: dict[str, str] = {}
for _reason, _names in _GROUPS.values():
    for _name in _names.split():
        NEVER_PROGRAMS[_name] = _reason

NEVER_PREFIXES: dict[str, str] = {
    "mkfs.": _GROUPS["destroyer"][0],
    "mkswap": _GROUPS["destroyer"][0],
    "python": _GROUPS["interpreter"][0],
    "perl": _GROUPS["interpreter"][0],
    "ruby": _GROUPS["interpreter"][0],
    "php": _GROUPS["interpreter"][0],
    "lua": _GROUPS["interpreter"][0],
    "pip": "installs and runs code",
}

NEVER_SUBCOMMANDS: dict[tuple[str, ...], str] = {
    ("zpool", "destroy"): "destroys a ZFS pool",
    ("zpool", "labelclear"): "wipes ZFS labels from a disk",
    ("zpool", "create"): "formats disks into a pool",
    ("zpool", "add"): "adds disks to a pool irreversibly",
    ("zpool", "replace"): "overwrites a disk",
    ("zpool", "export"): "takes a pool offline",
    ("zfs", "destroy"): "destroys datasets and snapshots",
    ("zfs", "rollback"): "discards data newer than a snapshot",
    ("ceph", "osd", "purge"): "destroys a Ceph OSD",
    ("ceph", "auth"): "prints and changes Ceph keys",
    ("ceph", "config-key"): "reads and writes Ceph's secret store (dashboard, mirror and SSH credentials)",
    ("ceph", "tell"): "runs commands inside Ceph daemons",
    ("ceph", "daemon"): "runs admin-socket commands of Ceph daemons",
    ("ceph-volume", "lvm", "zap"): "wipes a disk",
    ("pveceph", "osd", "destroy"): "destroys a Ceph OSD",
    ("pveceph", "purge"): "destroys the Ceph setup",
    ("pvecm", "delnode"): "removes a node from the cluster",
    ("pvecm", "expected"): "overrides quorum",
    ("qm", "guest", "exec"): "runs commands inside the guest",
    ("qm", "guest", "passwd"): "changes a password inside the guest",
    ("qm", "terminal"): "opens an interactive console",
    ("qm", "monitor"): "opens the QEMU monitor",
    ("pct", "exec"): "runs commands inside the container",
    ("pct", "enter"): "opens a shell in the container",
    ("pct", "console"): "opens an interactive console",
    ("pct", "push"): "writes files into the container",
    ("pct", "pull"): "copies files out of the container",
    ("systemctl", "edit"): "opens an editor",
    ("systemctl", "poweroff"): "powers the host off",
    ("systemctl", "reboot"): "reboots the host",
    ("systemctl", "halt"): "halts the host",
    ("systemctl", "kexec"): "replaces the running kernel",
    ("systemctl", "mask"): "disables units",
    ("systemctl", "isolate"): "changes the system target",
    ("systemctl", "set-environment"): "changes the service environment",
    ("apt", "install"): "installs packages",
    ("apt", "remove"): "removes packages",
    ("apt", "purge"): "removes packages",
}
"""Matched against the leading words of the argv (program included), whatever rule matched."""


def never_reason(argv: list[str]) -> str | None:
    """Why argv is on the never-list, or None."""
    program = argv[0]
    if program in NEVER_PROGRAMS:
        return f"{program} {NEVER_PROGRAMS[program]}"
    for prefix, reason in NEVER_PREFIXES.items():
        if program.startswith(prefix):
            return f"{program} {reason}"
    # subcommand words with options skipped: `systemctl --no-pager reboot` is still `systemctl reboot`
    words_only = [program, *(arg for arg in argv[1:] if not arg.startswith("-"))]
    for words, reason in NEVER_SUBCOMMANDS.items():
        if tuple(words_only[: len(words)]) == words:
            return f"{' '.join(words)} {reason}"
    return None
