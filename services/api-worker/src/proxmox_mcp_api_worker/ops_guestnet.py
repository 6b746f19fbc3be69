"""A guest's network interfaces and IP addresses: a VM's through its QEMU guest agent (network-get-interfaces,
the agent's answer wrapped in `result`), a container's from the host (`/nodes/{node}/lxc/{vmid}/interfaces`).

Three failures are told apart, each with its own message and `details.reason`: the guest is not running
(conflict), the VM has no guest agent configured (conflict), the agent does not answer (unavailable, retryable:
it may still be starting)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal

from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_api_worker.operations import GUEST_LABEL, Budget, ClusterOperations, Guest
from proxmox_mcp_api_worker.values import as_int, as_str, seg

GUEST_NOT_RUNNING = "guest_not_running"
AGENT_NOT_CONFIGURED = "agent_not_configured"
AGENT_NOT_RESPONDING = "agent_not_responding"

# PVE::QemuServer::Agent: "No QEMU guest agent configured", "VM 100 is not running", "QEMU guest agent is not
# running"; a hung agent: "VM 100 qmp command 'guest-network-get-interfaces' failed - got timeout".
_NOT_CONFIGURED = re.compile(r"no qemu guest agent configured", re.IGNORECASE)
_AGENT_SILENT = re.compile(r"guest agent is not running|qmp command '?guest-[\w-]+'? failed|guest-ping failed",
                           re.IGNORECASE)
_NOT_RUNNING = re.compile(r"\b(vm|ct) \d+ (is )?not running|container is not running", re.IGNORECASE)


def not_running(guest: Guest) -> ServiceFailure:
    label = GUEST_LABEL[guest.type]
    return ServiceFailure(ErrorCode.CONFLICT, f"{label} {guest.vmid} is not running: its network addresses can "
                          "only be read while it runs", details={"vmid": guest.vmid, "reason": GUEST_NOT_RUNNING})


def agent_failure(exc: ServiceFailure, guest: Guest) -> ServiceFailure:
    """Proxmox's answer to an agent command, as one of the three failures (or unchanged)."""
    message = exc.info.message
    if _NOT_CONFIGURED.search(message):
        return ServiceFailure(ErrorCode.CONFLICT, f"VM {guest.vmid} has no QEMU guest agent configured: enable it "
                              "(VM options: QEMU Guest Agent, i.e. agent=1) and run qemu-guest-agent inside the VM",
                              details={"vmid": guest.vmid, "reason": AGENT_NOT_CONFIGURED, "proxmox": message})
    if _AGENT_SILENT.search(message):
        return ServiceFailure(ErrorCode.UNAVAILABLE, f"the QEMU guest agent of VM {guest.vmid} does not answer: it "
                              "is not installed or not started inside the VM (or the VM is still booting)",
                              retryable=True,
                              details={"vmid": guest.vmid, "reason": AGENT_NOT_RESPONDING, "proxmox": message})
    if _NOT_RUNNING.search(message):
        return not_running(guest)
    return exc


Family = Literal["ipv4", "ipv6"]


def _family(kind: Any, address: str) -> Family | None:
    text = str(kind or "").lower()
    if text in ("ipv4", "inet"):
        return "ipv4"
    if text in ("ipv6", "inet6"):
        return "ipv6"
    try:
        return "ipv4" if ipaddress.ip_address(address).version == 4 else "ipv6"
    except ValueError:
        return None


def _address(raw: Mapping[str, Any]) -> b.GuestIpAddress | None:
    address = as_str(raw.get("ip-address"))
    family = _family(raw.get("ip-address-type"), address or "")
    if not address or family is None:
        return None
    return b.GuestIpAddress(address=address, prefix=as_int(raw.get("prefix")), family=family)


def _cidr(text: Any, family: Family) -> b.GuestIpAddress | None:
    if not isinstance(text, str) or not text:
        return None
    address, _, prefix = text.partition("/")
    return b.GuestIpAddress(address=address, prefix=as_int(prefix) if prefix else None, family=family)


def interface(entry: Mapping[str, Any]) -> b.GuestInterface:
    raw = entry.get("ip-addresses")
    addresses = [a for a in (_address(item) for item in raw if is_object(item))
                 if a is not None] if is_array(raw) else []
    if not addresses:  # older container answers: inet / inet6 as CIDR strings
        addresses = [a for a in (_cidr(entry.get("inet"), "ipv4"), _cidr(entry.get("inet6"), "ipv6")) if a]
    stats = entry.get("statistics")
    stats = stats if is_object(stats) else {}
    return b.GuestInterface(
        name=str(entry.get("name")), mac=as_str(entry.get("hardware-address") or entry.get("hwaddr")),
        addresses=addresses, rx_bytes=as_int(stats.get("rx-bytes")), tx_bytes=as_int(stats.get("tx-bytes")),
    )


def _global(address: b.GuestIpAddress) -> bool:
    try:
        ip = ipaddress.ip_address(address.address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local)


def result(guest: Guest, entries: list[Any], source: Literal["guest-agent", "container"]) -> b.GuestNetworkResult:
    interfaces = sorted((interface(e) for e in entries if is_object(e) and e.get("name")),
                        key=lambda i: i.name)
    addresses = [a for i in interfaces for a in i.addresses if _global(a)]
    return b.GuestNetworkResult(
        vmid=guest.vmid, node=guest.node, type=guest.type, source=source, interfaces=interfaces,
        ipv4=[a.address for a in addresses if a.family == "ipv4"],
        ipv6=[a.address for a in addresses if a.family == "ipv6"],
    )


async def guest_network(ops: ClusterOperations, args: b.GuestNetworkArgs, budget: Budget) -> b.GuestNetworkResult:
    guest = await ops.locate(args.vmid, args.node, budget, args.type)
    base = f"/nodes/{seg(guest.node)}/{guest.type}/{guest.vmid}"
    if guest.type == "lxc":
        try:
            data = await ops.call(budget, "GET", f"{base}/interfaces")
        except ServiceFailure as exc:
            raise (not_running(guest) if _NOT_RUNNING.search(exc.info.message) else exc) from None
        if data is None:  # Proxmox answers nothing for a container that is not running
            raise not_running(guest)
        if not is_array(data):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox's interfaces of CT {guest.vmid} are not a list")
        return result(guest, data, "container")
    try:
        data = await ops.call(budget, "GET", f"{base}/agent/network-get-interfaces")
    except ServiceFailure as exc:
        raise agent_failure(exc, guest) from None
    entries = data.get("result") if is_object(data) else None
    if not is_array(entries):
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"the guest agent's answer for VM {guest.vmid} holds no "
                             "interface list")
    return result(guest, entries, "guest-agent")
