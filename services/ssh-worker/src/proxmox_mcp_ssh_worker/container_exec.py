"""container_exec: a command inside an LXC container, as `pct exec VMID -- argv...` over SSH on its node.

Only the inner command comes from the caller, and it goes through the command policy (the caller's profile)
exactly like execute_command; the `pct exec VMID --` prefix is built here from a validated integer vmid, and the
`--` ends pct's own options, so nothing the caller writes can become a pct option or a host command.

Where the container is: `pvesh get /cluster/resources --type vm` on the given node's host (or the cluster's
first host when node is omitted) tells its node, type and state, so a VM id, a stopped container or a wrong node
give a clear error before anything runs. This needs root SSH access to Proxmox VE nodes (pvesh, pct); a host
behind the forced-command dispatcher refuses `pct exec` (no built-in profile allows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig
from proxmox_mcp_runtime.ssh import SshPool

LOOKUP_TIMEOUT = 15
"""Seconds for the pvesh lookup of the container (capped by the call's time left)."""
LOOKUP_MAX_OUTPUT = 16 * 1024 * 1024


@dataclass(frozen=True)
class Container:
    vmid: int
    node: str
    status: str


def pct_exec_argv(vmid: int, inner: list[str]) -> list[str]:
    if not inner:
        raise ServiceFailure(ErrorCode.POLICY_DENIED, "command refused by policy: nothing to run")
    return ["pct", "exec", str(int(vmid)), "--", *inner]


def _lookup_failure(host: HostConfig, exit_code: int | None, stderr: bytes) -> ServiceFailure:
    text = " ".join(stderr.decode("utf-8", errors="replace").split())[-300:]
    if exit_code == 127 or "command not found" in text:
        return ServiceFailure(ErrorCode.UNAVAILABLE, f"pvesh is not available on node {host.node}; container_exec "
                              "needs root SSH access to a Proxmox VE node")
    return ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"could not look up the container on node {host.node}: "
                          f"{text or f'pvesh exited with {exit_code}'}")


async def locate_container(pool: SshPool, cluster: ClusterConfig, host: HostConfig, vmid: int, node: str | None,
                           timeout: float) -> Container:
    """The container's node and state from the cluster's resource list (run on `host`)."""
    argv = ["pvesh", "get", "/cluster/resources", "--type=vm", "--output-format", "json"]
    output = await pool.run(host, argv, timeout=timeout, max_output=LOOKUP_MAX_OUTPUT)
    if output.exit_code != 0:
        raise _lookup_failure(host, output.exit_code, output.stderr)
    try:
        resources: Any = json.loads(output.stdout)
    except ValueError:
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "pvesh's resource list is not JSON") from None
    entry = next((e for e in resources if is_object(e) and str(e.get("vmid")) == str(vmid)), None) \
        if is_array(resources) else None
    if entry is None:
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"CT {vmid} not found in cluster {cluster.name} (no VM or "
                             "container has this id)", details={"vmid": vmid})
    if entry.get("type") != "lxc":
        raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{vmid} is a QEMU VM, not an LXC container; use "
                             "guest_exec (guest agent) for VMs", details={"vmid": vmid, "type": entry.get("type")})
    actual = str(entry.get("node"))
    if node is not None and node != actual:
        raise ServiceFailure(ErrorCode.NOT_FOUND, f"CT {vmid} is not on node {node}; it is on node {actual}",
                             details={"vmid": vmid, "node": actual})
    status = str(entry.get("status") or "unknown")
    if status != "running":
        raise ServiceFailure(ErrorCode.CONFLICT, f"CT {vmid} is not running (status: {status}); start it first",
                             details={"vmid": vmid, "status": status})
    return Container(vmid=vmid, node=actual, status=status)
