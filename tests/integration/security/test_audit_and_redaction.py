"""Audit durability (kill -9 right after a reply) and redaction of secrets in results, logs and the audit log."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx2
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.security.conftest import SecureStack
from tests.support.mcp_client import http_client


def test_a_record_survives_kill_9_right_after_the_reply(stack: SecureStack) -> None:
    gateway = stack.start_gateway("kill9")
    audit = stack.workdir / "kill9" / "audit.jsonl"
    vmid = 100
    with httpx2.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {gateway.token}"},
                       timeout=30) as client:
        # wait until this gateway sees the workers, then one call that changes something
        from tests.support.services import wait_ready

        wait_ready(gateway)
        response = client.post("/api/mcp/tools/call", json={"name": "vm_action",
                                                            "arguments": {"vmid": vmid, "action": "start"}})
        os.kill(gateway.proc.pid, signal.SIGKILL)
    assert response.status_code in (200, 409), response.text
    gateway.proc.popen.wait(timeout=10)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    done = [r for r in records if r["event"] == "tool_call" and r["tool"] == "vm_action"]
    assert done, records
    assert done[-1]["token_id"] == "static" and done[-1]["transport"] == "rest"
    assert done[-1]["arguments"] == {"vmid": vmid, "action": "start"}
    if response.status_code == 200:
        assert done[-1]["result"] == "ok" and done[-1]["upid"] == response.json()["structuredContent"]["upid"]
    started = [r for r in records if r["event"] == "tool_call_started" and r["request_id"] == done[-1]["request_id"]]
    assert started


async def test_private_keys_and_pve_tokens_in_command_output_are_redacted_everywhere(stack: SecureStack) -> None:
    token = stack.token(Scope.EXEC)
    async with http_client(stack.gateway.url, token) as client:
        result = await client.call_tool("execute_command", {"command": f"cat {stack.notes_file}"})
    assert not result.is_error, result.content
    text = result.content[0].text  # type: ignore[union-attr]
    structured = json.dumps(result.structured_content)
    key_lines = [line for line in stack.notes_key.splitlines() if line and not line.startswith("-----")]
    for output in (text, structured):
        assert "migration notes" in output and "end of notes" in output and "[REDACTED]" in output
        assert stack.notes_pve_secret not in output
        assert not any(line in output for line in key_lines)
        assert "PRIVATE KEY-----" not in output
    for path in [*stack.workdir.rglob("*.log"), *stack.state_dir.glob("audit.jsonl*")]:
        content = path.read_text(errors="replace")
        assert stack.notes_pve_secret not in content, path
        assert not any(line in content for line in key_lines), path


def scanned_files(workdir: Path) -> list[Path]:
    """Everything the stack writes as output: every process log and every audit log (not the inputs: the
    cluster config, key files and the simulator's credential handoff are where secrets are supposed to be)."""
    return sorted({*workdir.rglob("*.log"), *workdir.rglob("audit.jsonl*")})
