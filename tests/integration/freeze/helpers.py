"""What the freeze tests share: the calls above read that a freeze must refuse (one of each kind), the reads that
must go on, the CLI and the admin endpoints, /health and the audit files."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from proxmox_mcp_contracts.errors import ErrorInfo
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind

from tests.support.services import GatewayProc

FAKE_UPID = "UPID:{node}:0000A1B2:0000C3D4:65000000:vzdump:{vmid}:root@pam:"


def mutating_calls(vm: dict[str, Any], ct: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One call of each kind above read, by tool: power, snapshot, commands of every kind (a harmless command of
    the readonly profile included), proxmox_api writes, and cancelling a Proxmox task (DELETE of its UPID)."""
    upid = FAKE_UPID.format(node=vm["node"], vmid=vm["vmid"])
    return [
        ("vm_action", {"vmid": vm["vmid"], "node": vm["node"], "action": "start"}),
        ("container_action", {"vmid": ct["vmid"], "node": ct["node"], "action": "start"}),
        ("create_snapshot", {"vmid": vm["vmid"], "node": vm["node"], "name": "frozen1"}),
        ("rollback_snapshot", {"vmid": vm["vmid"], "node": vm["node"], "name": "frozen1", "confirm": True}),
        ("execute_command", {"command": "uptime"}),
        ("guest_exec", {"vmid": vm["vmid"], "node": vm["node"], "command": "hostname"}),
        ("container_exec", {"vmid": ct["vmid"], "node": ct["node"], "command": "hostname"}),
        ("proxmox_api", {"method": "POST", "path": f"/nodes/{vm['node']}/qemu/{vm['vmid']}/status/start"}),
        ("proxmox_api", {"method": "DELETE", "path": f"/nodes/{vm['node']}/tasks/{upid}"}),
    ]


def reading_calls(vm: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("list_vms", {}),
        ("vm_status", {"vmid": vm["vmid"], "node": vm["node"]}),
        ("proxmox_api", {"method": "GET", "path": "/nodes"}),
        ("list_tasks", {}),
    ]


def direct_mutations(vm: dict[str, Any]) -> list[tuple[WorkerKind, SshOp | ApiOp, dict[str, Any]]]:
    """Requests above read sent straight to the workers' subjects, one per worker kind and more."""
    upid = FAKE_UPID.format(node=vm["node"], vmid=vm["vmid"])
    return [
        (WorkerKind.API, ApiOp.VM_ACTION, {"vmid": vm["vmid"], "node": vm["node"], "action": "start"}),
        (WorkerKind.API, ApiOp.PROXMOX_API, {"method": "DELETE", "path": f"/nodes/{vm['node']}/tasks/{upid}"}),
        (WorkerKind.SSH, SshOp.EXEC, {"command": "uptime"}),
    ]


def direct_reads(vm: dict[str, Any]) -> list[tuple[WorkerKind, SshOp | ApiOp, dict[str, Any]]]:
    return [
        (WorkerKind.API, ApiOp.LIST_VMS, {}),
        (WorkerKind.API, ApiOp.PROXMOX_API, {"path": "/nodes"}),
        (WorkerKind.SSH, SshOp.PROBE, {}),
    ]


def error_of(result: Any) -> dict[str, Any] | None:
    """The error object of a tool result, or None when it succeeded."""
    if not result.is_error:
        return None
    assert isinstance(result.structured_content, dict), result.content
    return result.structured_content


def is_frozen_refusal(error: dict[str, Any] | ErrorInfo | None) -> bool:
    if error is None:
        return False
    info = error if isinstance(error, ErrorInfo) else ErrorInfo.model_validate(error)
    return info.code.value == "permission_denied" and "the deployment is frozen" in info.message


def is_unknown_refusal(error: dict[str, Any] | ErrorInfo | None) -> bool:
    if error is None:
        return False
    info = error if isinstance(error, ErrorInfo) else ErrorInfo.model_validate(error)
    return info.code.value == "unavailable" and "the freeze switch cannot be read" in info.message


async def until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str,
                interval: float = 0.02) -> float:
    """Poll condition until it holds; the seconds it took. TimeoutError naming what did not happen."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what} did not happen within {within} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def vm_action_refused(client: Client, vm: dict[str, Any]) -> dict[str, Any] | None:
    result = await client.call_tool("vm_action", {"vmid": vm["vmid"], "node": vm["node"], "action": "start"})
    return error_of(result)


def admin_call(gateway: GatewayProc, action: str, reason: object, token: str | None = None) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token or gateway.token}"}
    return httpx2.post(f"{gateway.base_url}/api/admin/{action}", headers=headers, json={"reason": reason}, timeout=10)


def health_freeze(gateway: GatewayProc) -> dict[str, Any]:
    body = httpx2.get(f"{gateway.base_url}/health", timeout=5).json()
    return body["freeze"]


def freeze_cli(action: str, reason: str, env: dict[str, str], *, wait: float = 5.0) -> subprocess.CompletedProcess[str]:
    """`proxmox-mcp freeze|thaw --reason ...` as an operator runs it on the host."""
    import os

    argv = [sys.executable, "-m", "proxmox_mcp_cli.main", action, "--reason", reason, "--wait", str(wait),
            "--env-file", "/nonexistent/.env"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False)


def audit_records(*state_dirs: Path, event: str | None = None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for state_dir in state_dirs:
        path = state_dir / "audit.jsonl"
        if path.exists():
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if event is None or r.get("event") == event]
