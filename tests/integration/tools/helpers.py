"""The tools stack: NATS, two simulated clusters (alpha: quick tasks, the default; beta: slow tasks), both workers
serving both, and a gateway that knows both clusters; plus small helpers for calling tools and reading the audit."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.tokens import TokenStore

from tests.support.mcp_client import SimClient, assert_matches_output_schema
from tests.support.procs import Proc
from tests.support.services import GatewayProc
from tests.support.sim import SimInfo

FAST = {
    "PMCP_HEARTBEAT_INTERVAL": "0.2",
    "PMCP_API_TIMEOUT": "8",
    "PMCP_TASK_POLL_INTERVAL": "0.1",
    "PMCP_PROBE_INTERVAL": "0.5",
    "PMCP_PROBE_TIMEOUT": "1",
    "PMCP_COMMAND_GRACE": "2",
    "PMCP_RATE_LIMIT": "off",
}
ALPHA_TASK_SECONDS = 0.2
BETA_TASK_SECONDS = 1.5
"""beta's tasks run long enough for several progress notifications and a cancellation mid-wait."""


@dataclass
class ToolsStack:
    workdir: Path
    alpha: SimInfo
    beta: SimInfo
    gateway: GatewayProc
    state_dir: Path
    workers: list[Proc]
    nats_url: str
    config_path: Path

    @property
    def audit_file(self) -> Path:
        return self.state_dir / "audit.jsonl"

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_file.exists():
            return []
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]

    def records(self, request_tool: str, **match: Any) -> list[dict[str, Any]]:
        """The records of calls of a tool (they carry the arguments; a task's later events do not)."""
        return [r for r in self.audit() if r.get("tool") == request_tool and "arguments" in r
                and all(r.get(k) == v for k, v in match.items())]

    def token(self, scope: Scope, **kwargs: Any) -> str:
        name = kwargs.pop("name", None) or f"tools-{secrets.token_hex(4)}"
        return TokenStore(self.state_dir / "tokens.json").create(name=name, scope=scope, **kwargs).secret

    def sim(self, cluster: str) -> SimClient:
        return SimClient(_sim_dict(self.alpha if cluster == "alpha" else self.beta))

    def first_guest(self, cluster: str, kind: str, status: str) -> dict[str, Any]:
        with self.sim(cluster) as sim:
            return guests(sim, kind, status)[0]

    def guest_status(self, cluster: str, vmid: int) -> str:
        with self.sim(cluster) as sim:
            return sim.guest(vmid)["status"]

    def rest(self, token: str, name: str, arguments: dict[str, Any]) -> httpx2.Response:
        return httpx2.post(f"{self.gateway.base_url}/api/mcp/tools/call", timeout=30,
                           headers={"Authorization": f"Bearer {token}"}, json={"name": name, "arguments": arguments})


def _sim_dict(sim: SimInfo) -> dict[str, Any]:
    return {"api_url": sim.api_url, "cert_file": sim.cert_file, "admin_token": sim.admin_token}


async def call_ok(client: Client, name: str, args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A successful call whose structured content matches the tool's outputSchema and has a text block."""
    result = await client.call_tool(name, args, **kwargs)
    assert not result.is_error, result.content
    assert result.content and result.content[0].type == "text" and result.content[0].text
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert_matches_output_schema(result.structured_content, tools[name].output_schema)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any], **kwargs: Any) -> tuple[str, str]:
    """(code, text) of a call that must fail as a tool error."""
    result = await client.call_tool(name, args, **kwargs)
    assert result.is_error, result.structured_content
    assert isinstance(result.structured_content, dict)
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(result.structured_content["code"] + ":"), text
    return result.structured_content["code"], text


def guests(sim: SimClient, kind: str, status: str | None = None) -> list[dict[str, Any]]:
    return [g for g in sim.guests() if g["type"] == kind and not g.get("template")
            and (status is None or g["status"] == status)]


class Elicitor:
    """An elicitation callback that answers as told and remembers what it was asked."""

    def __init__(self, action: str = "accept", confirm: bool = True) -> None:
        self.action = action
        self.confirm = confirm
        self.asked: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestFormParams)
        assert params.requested_schema["properties"]["confirm"]["type"] == "boolean"
        self.asked.append(params.message)
        content = {"confirm": self.confirm} if self.action == "accept" else None
        return types.ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]
