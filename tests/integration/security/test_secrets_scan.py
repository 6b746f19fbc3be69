"""This run's secrets (tokens, key passphrase, passwords, API token, tickets) appear in no output anywhere.

Runs last in the package (file order), so every log of every earlier security test is scanned too.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

import httpx2
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.security.conftest import SecureStack
from tests.integration.security.test_audit_and_redaction import scanned_files
from tests.support.mcp_client import http_client

TICKET = re.compile(r"PVE:[^\s:\"']+:[0-9A-F]{8}::")


async def test_no_secret_of_this_run_shows_up_in_logs_audit_or_tool_outputs(stack: SecureStack) -> None:
    run_password = stack.secrets.add("a password set through the API", "pw-" + secrets.token_urlsafe(18))
    stack.secrets.add("simulated root password", stack.sim.root_password)
    admin = stack.token(Scope.ADMIN)
    executor = stack.token(Scope.EXEC, profile="operator")
    outputs: list[Any] = []
    async with http_client(stack.gateway.url, admin) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_vms", {}),
            ("node_status", {}),
            ("proxmox_api", {"method": "POST", "path": "/access/ticket",
                             "data": {"username": "root@pam", "password": stack.sim.root_password}}),
            ("proxmox_api", {"method": "PUT", "path": "/access/password",
                             "data": {"userid": "root@pam", "password": run_password}}),
            ("proxmox_api", {"method": "GET", "path": "/access/users/root@pam/token/doesnotexist"}),
            ("execute_command", {"command": f"cat {stack.notes_file}"}),
            ("execute_command", {"command": "cat /etc/pve/priv/token.cfg"}),
            ("vm_action", {"vmid": 100, "action": "start", "wait": True}),
        ]
        for name, args in calls:
            result = await client.call_tool(name, args)
            outputs.append(result.model_dump(mode="json"))
    async with http_client(stack.gateway.url, executor) as client:
        result = await client.call_tool("execute_command", {"command": f"cat {stack.notes_file}"})
        outputs.append(result.model_dump(mode="json"))
    for wrong in (admin[:-3] + "AAA", "Bearer " + admin, run_password):
        response = httpx2.post(f"{stack.gateway.base_url}/api/mcp/tools/call", timeout=30,
                               json={"name": "list_vms"}, headers={"Authorization": f"Bearer {wrong}"})
        outputs.append(response.text)
    rest = httpx2.post(f"{stack.gateway.base_url}/api/mcp/tools/call", timeout=30,
                       headers={"Authorization": f"Bearer {admin}"},
                       json={"name": "proxmox_api", "arguments": {"method": "POST", "path": "/access/ticket", "data": {
                           "username": "root@pam", "password": stack.sim.root_password}}})
    outputs.append(rest.text)
    ticket_answer = json.dumps(outputs[2])
    assert "ticket" in ticket_answer and not TICKET.search(ticket_answer), ticket_answer

    leaks: list[str] = []
    tool_text = json.dumps(outputs)
    files = {path: path.read_text(errors="replace") for path in scanned_files(stack.workdir)}
    for name, value in stack.secrets.values.items():
        if value in tool_text:
            leaks.append(f"{name} in a tool output")
        leaks.extend(f"{name} in {path.relative_to(stack.workdir)}" for path, text in files.items() if value in text)
    for path, text in files.items():
        if TICKET.search(text) or "PRIVATE KEY-----" in text:
            leaks.append(f"a ticket or private key in {path.relative_to(stack.workdir)}")

    assert len(stack.secrets.values) >= 8
    assert not leaks, leaks
