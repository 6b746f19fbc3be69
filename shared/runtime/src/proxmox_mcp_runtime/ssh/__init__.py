"""The one SSH connection module of proxmox-mcp (ssh-worker, and the api-worker's ssh-tunnel/pvesh modes)."""

from proxmox_mcp_runtime.ssh.command import CommandOutput, command_line
from proxmox_mcp_runtime.ssh.forward import LocalForward
from proxmox_mcp_runtime.ssh.keys import check_key_permissions, load_private_key
from proxmox_mcp_runtime.ssh.pool import PoolStats, SshEvent, SshPool
from proxmox_mcp_runtime.ssh.trust import HostKeyVerifier, normalize_fingerprint

__all__ = [
    "CommandOutput",
    "HostKeyVerifier",
    "LocalForward",
    "PoolStats",
    "SshEvent",
    "SshPool",
    "check_key_permissions",
    "command_line",
    "load_private_key",
    "normalize_fingerprint",
]
