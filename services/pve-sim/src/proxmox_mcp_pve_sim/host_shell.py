"""The shell of a node (the SSH face): a guest's commands plus the Proxmox CLI."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from proxmox_mcp_pve_sim import health_commands as health
from proxmox_mcp_pve_sim import pve_cli
from proxmox_mcp_pve_sim.guest_shell import GUEST_COMMANDS
from proxmox_mcp_pve_sim.shell import Command, ShellEnv
from proxmox_mcp_pve_sim.sim import Sim

HOST_COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        **GUEST_COMMANDS,
        "pvesh": pve_cli.pvesh,
        "qm": pve_cli.qm,
        "pct": pve_cli.pct,
        "pveversion": pve_cli.pveversion,
        "corosync-quorumtool": health.corosync_quorumtool,
    }
)


def host_shell(sim: Sim, node: str) -> ShellEnv:
    return ShellEnv(sim=sim, node=node, commands=HOST_COMMANDS)
