"""`up`, `demo` and `stdio` take their variables from `--env-file` as from the environment, and the environment
wins, seen on started stacks: the bearer token (200 or 401), the port, the tool profile, the cluster the workers
reach, the NATS that stdio uses. tests/unit/cli/test_main.py checks every README variable on the
settings the stacks are built with."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from proxmox_mcp_gateway.catalog import exposed_tools

from tests.support.mcp_client import http_client, stdio_mcp_client
from tests.support.nats import NatsServer
from tests.support.procs import Proc, free_port, start_process, wait_until
from tests.support.readme import stack_variables
from tests.support.sim import SimInfo, start_sim

CLI = [sys.executable, "-m", "proxmox_mcp_cli.main"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    info = start_sim(tmp_path_factory.mktemp("env-file-sim"), nodes=1, guests=3)
    try:
        yield info
    finally:
        info.proc.stop()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacks below inherit this process's environment: none of the variables under test may come from it."""
    for name in stack_variables():
        monkeypatch.delenv(name, raising=False)


def cluster_variables(sim: SimInfo) -> dict[str, str]:
    """The original variables that point both workers at the simulator (SSH and API, keys and certificate pinned)."""
    token = sim.admin_token
    return {
        "SSH_HOST": sim.host, "SSH_PORT": str(sim.ssh_node_ports.get(sim.nodes[0], sim.ssh_port)),
        "SSH_USER": sim.ssh_user, "SSH_NODE": sim.nodes[0], "SSH_KEY_PATH": sim.ssh_private_key,
        "SSH_HOST_KEY_FINGERPRINT": sim.ssh_host_key_fingerprint,
        "PROXMOX_HOST": sim.host, "PROXMOX_PORT": str(sim.api_port), "PROXMOX_USER": token["user"],
        "PROXMOX_TOKEN_NAME": token["token_id"], "PROXMOX_TOKEN_VALUE": token["secret"],
        "PROXMOX_FINGERPRINT": sim.fingerprint,
    }


def write_env_file(path: Path, variables: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    return path


def start_stack(command: str, workdir: Path, env_file: Path, env: dict[str, str],
                *extra: str) -> tuple[Proc, dict[str, Any]]:
    """`proxmox-mcp <command> --env-file F` with no --host, --port or --token; its info file once it is ready."""
    info_file = workdir / f"{command}.json"
    proc = start_process(command, [*CLI, command, "--env-file", str(env_file), "--info-file", str(info_file), *extra],
                         workdir, env=env, cwd=workdir)
    try:
        wait_until(info_file.exists, timeout=90, what=f"`{command}` to report ready", proc=proc, interval=0.1)
        return proc, json.loads(info_file.read_text())
    except BaseException:
        proc.stop()
        raise


def rest_status(info: dict[str, Any], token: str) -> int:
    base = info["mcp_url"].removesuffix("/mcp")
    return httpx2.post(f"{base}/api/mcp/tools/list", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                       json={}).status_code


async def served(info: dict[str, Any], token: str) -> tuple[set[str], int, str]:
    """(tools offered, guests listed, the node's hostname over SSH) as a client with `token` sees them."""
    async with http_client(info["mcp_url"], token) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        vms = await client.call_tool("list_vms", {})
        assert not vms.is_error, vms.content
        hostname = await client.call_tool("execute_command", {"command": "hostname"})
        assert not hostname.is_error, hostname.content
    return tools, vms.structured_content["count"], hostname.structured_content["stdout"].strip()  # type: ignore[index]


async def test_up_takes_the_token_port_tools_and_cluster_from_the_env_file(sim: SimInfo, tmp_path: Path) -> None:
    port = free_port()
    env_file = write_env_file(tmp_path / "stack.env", {
        **cluster_variables(sim), "PMCP_TOKEN": "token-from-the-file", "PMCP_PORT": str(port),
        "PMCP_TOOL_PROFILE": "minimal", "PMCP_STATE_DIR": str(tmp_path / "state"),
    })
    proc, info = start_stack("up", tmp_path, env_file, {})
    try:
        assert rest_status(info, "token-from-the-file") == 200
        assert rest_status(info, "some-other-token") == 401
        assert info["mcp_url"] == f"http://127.0.0.1:{port}/mcp"
        tools, guests, hostname = await served(info, "token-from-the-file")
        assert tools == exposed_tools("minimal") and guests == 3 and hostname == sim.nodes[0]
    finally:
        proc.stop()


async def test_up_takes_the_environment_over_the_env_file(sim: SimInfo, tmp_path: Path) -> None:
    file_port, env_port = free_port(), free_port()
    closed = str(free_port())
    right = cluster_variables(sim)
    env_file = write_env_file(tmp_path / "stack.env", {
        **right, "SSH_PORT": closed, "PROXMOX_PORT": closed, "PMCP_TOKEN": "token-from-the-file",
        "PMCP_PORT": str(file_port), "PMCP_TOOL_PROFILE": "minimal",
    })
    env = {"SSH_PORT": right["SSH_PORT"], "PROXMOX_PORT": right["PROXMOX_PORT"], "PMCP_TOKEN": "token-from-the-env",
           "PMCP_PORT": str(env_port), "PMCP_TOOL_PROFILE": "standard", "PMCP_STATE_DIR": str(tmp_path / "state")}
    proc, info = start_stack("up", tmp_path, env_file, env)
    try:
        assert info["mcp_url"] == f"http://127.0.0.1:{env_port}/mcp"
        assert rest_status(info, "token-from-the-env") == 200
        assert rest_status(info, "token-from-the-file") == 401
        tools, guests, hostname = await served(info, "token-from-the-env")
        assert tools == exposed_tools("standard") and guests == 3 and hostname == sim.nodes[0]
    finally:
        proc.stop()


def test_the_demo_takes_its_token_and_tools_from_the_env_file(tmp_path: Path) -> None:
    env_file = write_env_file(tmp_path / "demo.env", {"PMCP_TOKEN": "demo-token-from-the-file",
                                                      "PMCP_TOOL_PROFILE": "minimal"})
    proc, info = start_stack("demo", tmp_path, env_file, {}, "--port", "0")
    try:
        assert rest_status(info, "demo-token-from-the-file") == 200
        assert rest_status(info, "some-other-token") == 401
        base = info["mcp_url"].removesuffix("/mcp")
        listed = httpx2.get(f"{base}/api/mcp", headers={"Authorization": "Bearer demo-token-from-the-file"},
                            timeout=30).json()["tools"]
        assert set(listed) == exposed_tools("minimal")
    finally:
        proc.stop()


@pytest.mark.parametrize("where", ["file", "environment over file"])
async def test_stdio_uses_the_nats_url_of_the_env_file_unless_the_environment_names_one(
    nats_server: NatsServer, tmp_path: Path, where: str
) -> None:
    # No cluster is configured: only with NATS_URL does stdio serve (the workers there); otherwise it would start
    # an embedded stack, which refuses to start without a cluster.
    env_file = write_env_file(tmp_path / "stdio.env", {
        "NATS_URL": nats_server.url if where == "file" else "nats://127.0.0.1:1", "PMCP_STDIO_SCOPE": "read",
    })
    env = {"PMCP_STATE_DIR": str(tmp_path / "state"), **({"NATS_URL": nats_server.url} if where != "file" else {})}
    with (tmp_path / "stdio.err").open("w") as errlog:
        async with stdio_mcp_client([*CLI, "stdio", "--env-file", str(env_file)], env, errlog, cwd=tmp_path) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            answer = await client.call_tool("list_vms", {})
    assert "list_vms" in tools and "execute_command" not in tools  # PMCP_STDIO_SCOPE=read, also from the file
    assert answer.is_error and "no proxmox-mcp-api-worker is serving" in str(answer.content)
