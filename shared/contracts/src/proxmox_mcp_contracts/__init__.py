"""Contracts between the proxmox-mcp gateway and workers. Pure data, no I/O."""

__version__ = "0.1.0"
