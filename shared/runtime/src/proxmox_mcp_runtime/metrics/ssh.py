"""The SSH pool's metrics (the ssh-worker's pool, and the api-worker's in the ssh-tunnel and pvesh modes)."""

from __future__ import annotations

from proxmox_mcp_runtime.metrics.labels import OK, BoundedLabel, ClosedLabel, cluster_label
from proxmox_mcp_runtime.metrics.registry import FAST_BUCKETS, counter, gauge, histogram

SSH_POOL_CONNECTIONS = gauge("proxmox_mcp_ssh_pool_connections", "Open pooled SSH connections.", ["cluster"])
SSH_CONNECTS = counter("proxmox_mcp_ssh_connects", "SSH connection attempts, by outcome (ok, auth_failed, "
                       "host_key_mismatch, unreachable, timeout, error).", ["cluster", "outcome"])
SSH_RECONNECTS = counter("proxmox_mcp_ssh_reconnects", "Pooled SSH connections replaced after their transport died.",
                         ["cluster"])
SSH_CONNECT_DURATION = histogram("proxmox_mcp_ssh_connect_duration_seconds",
                                 "Time to connect and authenticate one SSH connection.", ["cluster"], FAST_BUCKETS)
SSH_COMMANDS = counter("proxmox_mcp_ssh_commands", "Remote commands run, by result (ok, nonzero, timeout, denied, "
                       "error).", ["cluster", "result"])
SSH_OUTPUT_TRUNCATED = counter("proxmox_mcp_ssh_output_truncated", "Command outputs cut at the output cap.",
                               ["cluster"])

_connect_outcome = BoundedLabel(r"[a-z][a-z0-9_]{0,31}", 12)
_command_result = ClosedLabel(("ok", "nonzero", "timeout", "denied", "error"))


def declare_ssh_cluster(cluster: str) -> None:
    """Export a cluster's pool size and its rarely moving counters at 0 from the start: a series that appears
    only with its first increment hides that increment from rate() and shows as "no data"."""
    name = cluster_label(cluster)
    SSH_POOL_CONNECTIONS.labels(name)
    SSH_RECONNECTS.labels(name)
    SSH_OUTPUT_TRUNCATED.labels(name)


def set_ssh_pool_size(cluster: str, connections: int) -> None:
    SSH_POOL_CONNECTIONS.labels(cluster_label(cluster)).set(connections)


def observe_ssh_connect(cluster: str, outcome: str, seconds: float, *, reconnect: bool = False) -> None:
    """outcome: ok, auth_failed, host_key_mismatch, unreachable, timeout, error."""
    name = cluster_label(cluster)
    SSH_CONNECTS.labels(name, _connect_outcome(outcome)).inc()
    if outcome == OK:
        SSH_CONNECT_DURATION.labels(name).observe(max(seconds, 0.0))
        if reconnect:
            SSH_RECONNECTS.labels(name).inc()


def observe_ssh_command(cluster: str, result: str, *, truncated: bool = False) -> None:
    """result: ok (exit 0), nonzero, timeout, denied, error."""
    name = cluster_label(cluster)
    SSH_COMMANDS.labels(name, _command_result(result)).inc()
    if truncated:
        SSH_OUTPUT_TRUNCATED.labels(name).inc()
