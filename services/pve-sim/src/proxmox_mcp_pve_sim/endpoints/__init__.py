"""API endpoint modules; importing this package registers every route."""

from proxmox_mcp_pve_sim.endpoints import access, agent, cluster, guests, nodes, snapshots, tasks

__all__ = ["access", "agent", "cluster", "guests", "nodes", "snapshots", "tasks"]
