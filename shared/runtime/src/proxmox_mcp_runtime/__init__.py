"""Runtime pieces that more than one proxmox-mcp service runs (worker scaffolding, SSH pool, logging)."""
