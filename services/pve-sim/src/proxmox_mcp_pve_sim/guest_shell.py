"""The shell inside a guest (guest agent `exec`, `pct exec`): every emulated command but the Proxmox CLI."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from proxmox_mcp_pve_sim import flow_commands as flow
from proxmox_mcp_pve_sim import health_commands as health
from proxmox_mcp_pve_sim import host_commands as system
from proxmox_mcp_pve_sim import text_commands as text
from proxmox_mcp_pve_sim.model import Guest
from proxmox_mcp_pve_sim.shell import Command, ShellEnv
from proxmox_mcp_pve_sim.sim import Sim

GUEST_COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        # system
        "echo": system.echo,
        "true": system.true_,
        ":": system.true_,
        "false": system.false_,
        "hostname": system.hostname,
        "whoami": system.whoami,
        "id": system.id_,
        "pwd": system.pwd,
        "uptime": system.uptime,
        "uname": system.uname,
        "df": system.df,
        "free": system.free,
        "nproc": system.nproc,
        "vmstat": health.vmstat,
        "timedatectl": health.timedatectl,
        "date": system.date,
        "cat": system.cat,
        "ls": system.ls,
        "journalctl": system.journalctl,
        "systemctl": system.systemctl,
        "ps": system.ps,
        "ip": system.ip,
        # text filters
        "seq": text.seq,
        "head": text.head_tail,
        "tail": text.head_tail,
        "grep": text.grep,
        "egrep": text.grep,
        "wc": text.wc,
        "sort": text.sort,
        "uniq": text.uniq,
        # commands that run commands or wait
        "sleep": flow.sleep,
        "timeout": flow.timeout,
        "sh": flow.sh,
        "bash": flow.sh,
        "dash": flow.sh,
        "exec": flow.exec_,
        "nice": flow.exec_,
        "nohup": flow.exec_,
        "env": flow.env_,
        "which": flow.which,
        "command": flow.which,
    }
)


def guest_shell(sim: Sim, guest: Guest) -> ShellEnv:
    return ShellEnv(sim=sim, node=guest.node, commands=GUEST_COMMANDS, guest=guest)
