"""Every variable the README documents for `up`, `demo` and `stdio` works from the env file (`--env-file`) as from
the environment, and the environment wins: checked on the settings each of their processes is built with (the
gateway's settings, the cluster config the workers get, the log level and the event loop). The effects cheap to
see for real (the bearer token, the port, the cluster, NATS_URL) are also checked on started stacks, in
tests/integration/e2e/test_env_file.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_cli.gateway_settings import http_gateway_settings, with_stack
from proxmox_mcp_cli.main import build_parser, http_options
from proxmox_mcp_contracts.settings import ClusterConfig, ProxmoxConfig
from proxmox_mcp_gateway.settings import GatewaySettings
from proxmox_mcp_runtime.config import dump_config_toml, load_proxmox_config
from proxmox_mcp_runtime.env_file import load_env_file
from proxmox_mcp_runtime.event_loop import loop_choice
from proxmox_mcp_runtime.worker_main import WorkerBaseSettings
from pydantic import SecretStr

from tests.support.readme import stack_variables

HTTP = ("up", "demo")
CLUSTER = ("up", "stdio")
ALL = ("up", "demo", "stdio")


@dataclass
class Built:
    """What a stack command builds its processes from."""

    gateway: GatewaySettings
    cluster: ClusterConfig | None
    """The cluster the workers get (None for the demo: the simulator's)."""
    log_level: str | None
    loop: str
    worker: WorkerBaseSettings
    """What each worker the stack starts reads from the environment it inherits."""


@dataclass(frozen=True)
class Case:
    commands: tuple[str, ...]
    file: str
    env: str
    observe: Callable[[Built], Any]
    from_file: Any
    from_env: Any


def cluster(built: Built) -> ClusterConfig:
    assert built.cluster is not None
    return built.cluster


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


CASES: dict[str, Case] = {
    "SSH_HOST": Case(CLUSTER, "198.51.100.11", "198.51.100.12", lambda b: cluster(b).hosts[0].address,
                     "198.51.100.11", "198.51.100.12"),
    "SSH_PORT": Case(CLUSTER, "2201", "2202", lambda b: cluster(b).ssh.port, 2201, 2202),
    "SSH_USER": Case(CLUSTER, "pmcp-file", "pmcp-env", lambda b: cluster(b).ssh.user, "pmcp-file", "pmcp-env"),
    "SSH_NODE": Case(CLUSTER, "node-file", "node-env", lambda b: cluster(b).hosts[0].node, "node-file", "node-env"),
    "SSH_KEY_PATH": Case(CLUSTER, "/keys/file", "/keys/env", lambda b: cluster(b).ssh.key_path,
                         Path("/keys/file"), Path("/keys/env")),
    "SSH_KEY_PASSPHRASE": Case(CLUSTER, "phrase-file-7f3a", "phrase-env-7f3a",
                               lambda b: secret(cluster(b).ssh.key_passphrase), "phrase-file-7f3a", "phrase-env-7f3a"),
    "SSH_PASSWORD": Case(CLUSTER, "sshpw-file-7f3a", "sshpw-env-7f3a", lambda b: secret(cluster(b).ssh.password),
                         "sshpw-file-7f3a", "sshpw-env-7f3a"),
    "SSH_KNOWN_HOSTS": Case(CLUSTER, "/kh/file", "/kh/env", lambda b: cluster(b).ssh.known_hosts,
                            Path("/kh/file"), Path("/kh/env")),
    "SSH_HOST_KEY_FINGERPRINT": Case(CLUSTER, "SHA256:file", "SHA256:env",
                                     lambda b: cluster(b).ssh.host_key_fingerprints, ["SHA256:file"], ["SHA256:env"]),
    "PROXMOX_HOST": Case(CLUSTER, "198.51.100.21", "198.51.100.22", lambda b: cluster(b).api.host,
                         "198.51.100.21", "198.51.100.22"),
    "PROXMOX_PORT": Case(CLUSTER, "8016", "8026", lambda b: cluster(b).api.port, 8016, 8026),
    "PROXMOX_USER": Case(CLUSTER, "file@pve", "env@pve", lambda b: cluster(b).api.user, "file@pve", "env@pve"),
    "PROXMOX_TOKEN_NAME": Case(CLUSTER, "tfile", "tenv", lambda b: cluster(b).api.token_name, "tfile", "tenv"),
    "PROXMOX_TOKEN_VALUE": Case(CLUSTER, "tv-file-7f3a", "tv-env-7f3a", lambda b: secret(cluster(b).api.token_value),
                                "tv-file-7f3a", "tv-env-7f3a"),
    "PROXMOX_PASSWORD": Case(CLUSTER, "pvepw-file-7f3a", "pvepw-env-7f3a", lambda b: secret(cluster(b).api.password),
                             "pvepw-file-7f3a", "pvepw-env-7f3a"),
    "PROXMOX_CA_FILE": Case(CLUSTER, "/ca/file.pem", "/ca/env.pem", lambda b: cluster(b).api.ca_file,
                            Path("/ca/file.pem"), Path("/ca/env.pem")),
    "PROXMOX_FINGERPRINT": Case(CLUSTER, "AA:01", "BB:02", lambda b: cluster(b).api.fingerprint, "AA:01", "BB:02"),
    "PROXMOX_VERIFY_SSL": Case(CLUSTER, "false", "true", lambda b: cluster(b).api.verify_ssl, False, True),
    "PMCP_CONFIG": Case(CLUSTER, "{tmp}/file.toml", "{tmp}/env.toml",
                        lambda b: (cluster(b).name, b.gateway.cluster_names().known),
                        ("fromfile", ("fromfile",)), ("fromenv", ("fromenv",))),
    "NATS_URL": Case(("stdio",), "nats://198.51.100.31:4222", "nats://198.51.100.32:4222",
                     lambda b: b.gateway.nats_url, "nats://198.51.100.31:4222", "nats://198.51.100.32:4222"),
    "LOG_LEVEL": Case(HTTP, "DEBUG", "WARNING", lambda b: b.log_level, "DEBUG", "WARNING"),
    "PMCP_EVENT_LOOP": Case(ALL, "asyncio", "uvloop", lambda b: b.loop, "asyncio", "uvloop"),
    "PMCP_TOKEN": Case(HTTP, "token-file-7f3a", "token-env-7f3a", lambda b: b.gateway.bearer_secret(),
                       "token-file-7f3a", "token-env-7f3a"),
    "PMCP_TOKEN_FILE": Case(HTTP, "{tmp}/file-token", "{tmp}/env-token", lambda b: b.gateway.bearer_secret(),
                            "secret-in-file-token", "secret-in-env-token"),
    "PMCP_HOST": Case(HTTP, "127.0.0.2", "127.0.0.3", lambda b: b.gateway.host, "127.0.0.2", "127.0.0.3"),
    "PMCP_PORT": Case(HTTP, "18081", "18082", lambda b: b.gateway.port, 18081, 18082),
    "PMCP_TOKEN_SCOPE": Case(HTTP, "read", "operate", lambda b: b.gateway.token_scope.value, "read", "operate"),
    "PMCP_STDIO_SCOPE": Case(("stdio",), "read", "admin", lambda b: b.gateway.stdio_scope.value, "read", "admin"),
    "PMCP_ALLOWED_HOSTS": Case(HTTP, "file.example", "env.example", lambda b: b.gateway.allowed_hosts,
                               ["file.example"], ["env.example"]),
    "PMCP_ALLOWED_ORIGINS": Case(HTTP, "https://file.example", "https://env.example",
                                 lambda b: b.gateway.allowed_origins, ["https://file.example"], ["https://env.example"]),
    "PMCP_API_TIMEOUT": Case(ALL, "7", "9", lambda b: b.gateway.api_timeout, 7.0, 9.0),
    "PMCP_MAX_COMMAND_TIMEOUT": Case(ALL, "70", "90", lambda b: b.gateway.max_command_timeout, 70, 90),
    "PMCP_TASK_POLL_INTERVAL": Case(ALL, "0.7", "0.9", lambda b: b.gateway.task_poll_interval, 0.7, 0.9),
    "PMCP_HEARTBEAT_INTERVAL": Case(ALL, "1.7", "1.9", lambda b: b.gateway.heartbeat_interval, 1.7, 1.9),
    "PMCP_PROBE_INTERVAL": Case(ALL, "17", "19", lambda b: b.gateway.probe_interval, 17.0, 19.0),
    "PMCP_RATE_LIMIT": Case(ALL, "70/m", "90/s", lambda b: b.gateway.rate_limit, "70/m", "90/s"),
    "PMCP_TOOL_PROFILE": Case(ALL, "minimal", "standard", lambda b: len(b.gateway.exposed_tools()), 6, 22),
    "PMCP_TOOLS": Case(ALL, "list_vms", "vm_status,node_status", lambda b: b.gateway.exposed_tools(),
                       {"list_vms"}, {"vm_status", "node_status"}),
    "PMCP_CLUSTERS": Case(ALL, "default,east", "default,west", lambda b: b.gateway.cluster_names().known,
                          ("default", "east"), ("default", "west")),
    "PMCP_DEFAULT_CLUSTER": Case(ALL, "east", "west", lambda b: b.gateway.default_cluster, "east", "west"),
    "PMCP_CONFIRM_DESTRUCTIVE": Case(ALL, "false", "true", lambda b: b.gateway.confirm_destructive, False, True),
    "PMCP_CONFIRM_TIMEOUT": Case(ALL, "70", "90", lambda b: b.gateway.confirm_timeout, 70.0, 90.0),
    "PMCP_SSH_LIVENESS_INTERVAL": Case(ALL, "7", "9", lambda b: b.worker.ssh_liveness_interval, 7.0, 9.0),
    "PMCP_SSH_LIVENESS_MISSES": Case(ALL, "4", "6", lambda b: b.worker.ssh_liveness_misses, 4, 6),
    "PMCP_REQUEST_STATE_KEY_FILE": Case(ALL, "{tmp}/file.key", "{tmp}/env.key",
                                        lambda b: b.gateway.request_state_key_file, "{tmp}/file.key", "{tmp}/env.key"),
    "PMCP_TASK_TTL": Case(ALL, "700", "900", lambda b: b.gateway.task_ttl, 700.0, 900.0),
    "PMCP_IDEMPOTENCY_TTL": Case(ALL, "70", "90", lambda b: b.gateway.idempotency_ttl, 70.0, 90.0),
    "PMCP_IDEMPOTENCY_WAIT": Case(ALL, "7", "9", lambda b: b.gateway.idempotency_wait, 7.0, 9.0),
    "PMCP_CONFORMANCE_FIXTURES": Case(ALL, "true", "false", lambda b: b.gateway.conformance_fixtures, True, False),
}
BASE_CLUSTER = {"SSH_HOST": "198.51.100.1", "PROXMOX_HOST": "198.51.100.2"}
"""Enough for `up` and `stdio` to have a cluster whatever variable a case leaves out."""


@pytest.fixture
def environ(tmp_path: Path) -> Iterator[None]:
    """This process's environment without any of the stack variables, restored afterwards (the env file is loaded
    into the real environment, as `proxmox-mcp` does)."""
    saved = dict(os.environ)
    for name in [*stack_variables(), *(key for key in os.environ if key.startswith("PMCP_"))]:
        os.environ.pop(name, None)
    for name in ("file", "env"):
        (tmp_path / f"{name}-token").write_text(f"secret-in-{name}-token\n")
        (tmp_path / f"{name}.toml").write_text(f'[[clusters]]\nname = "from{name}"\n')
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build(command: str, env_file: Path, tmp_path: Path) -> Built:
    """What `proxmox-mcp <command> --env-file F` builds its processes from, through the CLI's own functions."""
    args = build_parser().parse_args([command, "--env-file", str(env_file)])
    load_env_file(args.env_file)  # main's first step
    stack_config = tmp_path / "stack.toml"
    if command == "stdio":
        settings = GatewaySettings()
        config = load_proxmox_config()
        stack_config.write_text(dump_config_toml(config))
        gateway = settings if os.environ.get("NATS_URL") else with_stack(
            settings, nats_url="nats://127.0.0.1:1", config_path=stack_config)
        return Built(gateway, config.clusters[0], None, loop_choice(), WorkerBaseSettings())
    options = http_options(args)
    config = (load_proxmox_config(config_file=args.config) if command == "up"
              else ProxmoxConfig(clusters=[ClusterConfig(name="default")]))
    stack_config.write_text(dump_config_toml(config))
    gateway = with_stack(http_gateway_settings(options.host, options.port, options.token),
                         nats_url="nats://127.0.0.1:1", config_path=stack_config,
                         state_dir=tmp_path / "demo-state" if command == "demo" else None)
    return Built(gateway, config.clusters[0] if command == "up" else None, options.log_level, loop_choice(),
                 WorkerBaseSettings())


def expanded(expected: Any, tmp_path: Path) -> Any:
    """A path expected under this test's directory, named "{tmp}/..." in the table."""
    if isinstance(expected, str) and expected.startswith("{tmp}/"):
        return Path(expected.format(tmp=tmp_path))
    return expected


PAIRS = [(name, command) for name in sorted(CASES) for command in CASES[name].commands]


def test_every_variable_the_readme_documents_for_the_stacks_is_checked_here() -> None:
    assert set(CASES) == stack_variables()


@pytest.mark.parametrize("name, command", PAIRS, ids=[f"{command}-{name}" for name, command in PAIRS])
def test_a_variable_in_the_env_file_reaches_the_settings_the_stack_is_built_with(
    environ: None, tmp_path: Path, name: str, command: str
) -> None:
    case = CASES[name]
    os.environ.update({key: value for key, value in BASE_CLUSTER.items() if key != name})
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"{name}={case.file.format(tmp=tmp_path)}\n")
    assert case.observe(build(command, env_file, tmp_path)) == expanded(case.from_file, tmp_path)


@pytest.mark.parametrize("name, command", PAIRS, ids=[f"{command}-{name}" for name, command in PAIRS])
def test_the_environment_wins_over_the_env_file(environ: None, tmp_path: Path, name: str, command: str) -> None:
    case = CASES[name]
    os.environ.update({key: value for key, value in BASE_CLUSTER.items() if key != name})
    os.environ[name] = case.env.format(tmp=tmp_path)
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"{name}={case.file.format(tmp=tmp_path)}\n")
    assert case.observe(build(command, env_file, tmp_path)) == expanded(case.from_env, tmp_path)
