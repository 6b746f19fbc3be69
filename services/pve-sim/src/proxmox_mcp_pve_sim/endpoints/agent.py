"""QEMU guest agent endpoints: exec / exec-status and a few read-only queries."""

from __future__ import annotations

import time
from typing import Any

from proxmox_mcp_contracts.json_values import is_array

from proxmox_mcp_pve_sim.agent import assert_agent_available, process_status, start_process
from proxmox_mcp_pve_sim.api import Call
from proxmox_mcp_pve_sim.endpoints.common import find_guest
from proxmox_mcp_pve_sim.errors import failed, param_error
from proxmox_mcp_pve_sim.model import Guest


def _available(call: Call) -> Guest:
    guest = find_guest(call, "qemu")
    assert_agent_available(guest)
    return guest


def agent_index(call: Call) -> list[dict[str, str]]:
    find_guest(call, "qemu")
    return [
        {"name": name}
        for name in ("exec", "exec-status", "get-host-name", "get-osinfo", "info", "network-get-interfaces", "ping")
    ]


def agent_exec(call: Call) -> dict[str, int]:
    guest = _available(call)
    command = call["command"]
    argv = [str(part) for part in (command if is_array(command) else [command])]
    if not argv or not argv[0]:
        raise param_error({"command": "command must not be empty"})
    process = start_process(call.sim, guest, argv, str(call.get("input-data", "")))
    return {"pid": process.pid}


def agent_exec_status(call: Call) -> dict[str, Any]:
    guest = _available(call)
    process = call.sim.agent_processes.get(guest.vmid, {}).get(call["pid"])
    if process is None:
        raise failed(f"Agent error: Invalid parameter 'pid': no child process with PID {call['pid']}")
    return process_status(process)


def agent_ping(call: Call) -> dict[str, Any]:
    _available(call)
    return {"result": {}}


def agent_host_name(call: Call) -> dict[str, Any]:
    return {"result": {"host-name": _available(call).name}}


def agent_osinfo(call: Call) -> dict[str, Any]:
    _available(call)
    return {
        "result": {
            "id": "debian",
            "name": "Debian GNU/Linux",
            "pretty-name": "Debian GNU/Linux 12 (bookworm)",
            "version": "12 (bookworm)",
            "version-id": "12",
            "kernel-release": "6.1.0-26-amd64",
            "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.112-1 (2024-09-30)",
            "machine": "x86_64",
        }
    }


def agent_info(call: Call) -> dict[str, Any]:
    _available(call)
    commands = [
        "guest-exec",
        "guest-exec-status",
        "guest-get-host-name",
        "guest-get-osinfo",
        "guest-info",
        "guest-network-get-interfaces",
        "guest-ping",
    ]
    return {
        "result": {
            "version": "7.2.11",
            "supported_commands": [{"name": name, "enabled": True, "success-response": True} for name in commands],
        }
    }


def agent_interfaces(call: Call) -> dict[str, Any]:
    guest = _available(call)
    mac = next(
        (
            p.split("=", 1)[1]
            for p in guest.config.get("net0", "").split(",")
            if "=" in p and p.split("=", 1)[0] in ("virtio", "e1000", "macaddr")
        ),
        "BC:24:11:00:00:00",
    )
    ip = f"192.168.100.{100 + guest.vmid % 100}"
    return {
        "result": [
            {
                "name": "lo",
                "hardware-address": "00:00:00:00:00:00",
                "ip-addresses": [{"ip-address": "127.0.0.1", "ip-address-type": "ipv4", "prefix": 8}],
            },
            {
                "name": "eth0",
                "hardware-address": mac.lower(),
                "ip-addresses": [{"ip-address": ip, "ip-address-type": "ipv4", "prefix": 24}],
                "statistics": {
                    "rx-bytes": guest.uptime * 1843,
                    "tx-bytes": guest.uptime * 977,
                    "rx-packets": 0,
                    "tx-packets": 0,
                    "rx-errs": 0,
                    "tx-errs": 0,
                    "rx-dropped": 0,
                    "tx-dropped": 0,
                },
            },
        ],
        "timestamp": int(time.time()),
    }
