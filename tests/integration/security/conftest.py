"""One secured stack for the security tests: NATS, the simulator, a real sshd, both workers, and a gateway
with the token store, audit log, allowlist, trusted proxy and tiny rate windows configured."""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from proxmox_mcp_cli.stack import config_for_sim
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.settings import HostConfig, SshSettings
from proxmox_mcp_gateway.tokens import TokenStore
from proxmox_mcp_runtime.config import dump_config_toml
from pydantic import SecretStr

from tests.support.nats import NatsServer, start_nats
from tests.support.procs import Proc
from tests.support.services import GatewayProc, start_gateway, start_worker, wait_ready, write_private
from tests.support.sim import SimInfo, start_sim
from tests.support.sshd import TEST_HOME, SshdServer, start_sshd

FAST = {
    "PMCP_HEARTBEAT_INTERVAL": "0.2",
    "PMCP_API_TIMEOUT": "5",
    "PMCP_TASK_POLL_INTERVAL": "0.05",
    "PMCP_PROBE_INTERVAL": "0.5",
    "PMCP_PROBE_TIMEOUT": "1",
    "PMCP_COMMAND_GRACE": "2",
}
PROXY = "127.0.0.2"
"""The trusted proxy's address: tests connect from it (any 127/8 address is loopback) to play Caddy."""
OUTSIDER = "127.0.0.3"
"""A loopback address outside the gateway's allowlist."""
EDGE = {
    "PMCP_ALLOWED_CIDRS": f"127.0.0.1/32,{PROXY}/32,10.0.0.0/8",
    "PMCP_TRUSTED_PROXIES": PROXY,
    "PMCP_RATE_LIMIT": "20/20s",
    "PMCP_TOOL_RATE_LIMITS": "node_status=2/6s",
    "PMCP_MAX_CONCURRENT_PER_TOKEN": "2",
}


def sim_dict(sim: SimInfo) -> dict[str, Any]:
    return {f.name: getattr(sim, f.name) for f in dataclasses.fields(sim) if f.name != "proc"}


@dataclass
class RunSecrets:
    """Every secret this run creates; the scan test looks for each of them in every output."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> str:
        self.values[name] = value
        return value


@dataclass
class SecureStack:
    workdir: Path
    nats: NatsServer
    sim: SimInfo
    sshd: SshdServer
    config_path: Path
    gateway: GatewayProc
    state_dir: Path
    procs: list[Proc]
    secrets: RunSecrets
    notes_file: Path
    notes_key: str
    notes_pve_secret: str

    @property
    def tokens_file(self) -> Path:
        return self.state_dir / "tokens.json"

    @property
    def audit_file(self) -> Path:
        return self.state_dir / "audit.jsonl"

    def token(self, scope: Scope, **kwargs: Any) -> str:
        """A fresh store token (each test its own, so rate buckets never collide)."""
        name = kwargs.pop("name", None) or f"t-{secrets.token_hex(4)}"
        new = TokenStore(self.tokens_file).create(name=name, scope=scope, **kwargs)
        return self.secrets.add(f"token {name}", new.secret)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`proxmox-mcp token ...` as an operator would run it, against this gateway's store."""
        return subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "token", "--store", str(self.tokens_file),
                               *args], capture_output=True, text=True, timeout=60, check=False)

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_file.exists():
            return []
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]

    def start_gateway(self, name: str, env: dict[str, str] | None = None) -> GatewayProc:
        """Another gateway on the same NATS and workers: its own audit log under name, the shared token store."""
        state = self.workdir / name
        state.mkdir(exist_ok=True)
        gateway = start_gateway(self.nats.url, state, env={**FAST, "PMCP_STATE_DIR": str(state),
                                                            "PMCP_TOKENS_FILE": str(self.tokens_file), **(env or {})})
        self.procs.append(gateway.proc)
        self.secrets.add(f"static token {name}", gateway.token)
        self.secrets.add(f"audit key {name}", (state / "audit.key").read_text().strip())
        return gateway


def _write_notes(run: RunSecrets, key_source: Path) -> tuple[Path, str, str]:
    """A file the readonly profile may cat, holding a private key and a Proxmox API token (both of this run)."""
    key = key_source.read_text()
    pve_secret = run.add("pve token in notes", str(uuid.uuid4()))
    path = TEST_HOME / f"pmcp-notes-{secrets.token_hex(6)}.txt"
    path.write_text(f"migration notes\n{key}api: PVEAPIToken=backup@pve!nightly={pve_secret}\nend of notes\n")
    path.chmod(0o644)
    return path, key, pve_secret


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    workdir = tmp_path_factory.mktemp("security")
    run = RunSecrets()
    procs: list[Proc] = []
    sshd: SshdServer | None = None
    notes: Path | None = None
    try:
        nats = start_nats(workdir / "nats")
        procs.append(nats.proc)
        sim = start_sim(workdir / "sim", task_duration=0.6)
        procs.append(sim.proc)
        sshd = start_sshd(workdir / "sshd")
        run.add("ssh key passphrase", sshd.passphrase)
        run.add("ssh password", sshd.password)
        run.add("pve api token", sim.admin_token["secret"])
        notes, notes_key, notes_pve = _write_notes(run, sshd.ed25519_key)
        run.add("private key body", "".join(notes_key.strip().splitlines()[1:3]))
        config = config_for_sim(sim_dict(sim))
        cluster = config.clusters[0]
        node = cluster.hosts[0].node
        ssh = SshSettings(user=sshd.user, port=sshd.port, key_path=sshd.encrypted_key,
                          key_passphrase=SecretStr(sshd.passphrase), password=SecretStr(sshd.password),
                          host_key_fingerprints=[sshd.host_key_fingerprint], connect_timeout=5)
        hosts = [HostConfig(node=node, address="127.0.0.1", port=sshd.port)]
        config = config.model_copy(update={"clusters": [cluster.model_copy(update={"ssh": ssh, "hosts": hosts})]})
        config_path = write_private(workdir / "clusters.toml", dump_config_toml(config))
        procs.extend(start_worker(kind, nats.url, config_path, workdir, env=FAST)
                     for kind in ("ssh-worker", "api-worker"))
        state = workdir / "state"
        state.mkdir()
        gateway = start_gateway(nats.url, workdir, env={**FAST, **EDGE, "PMCP_STATE_DIR": str(state)})
        procs.append(gateway.proc)
        run.add("static gateway token", gateway.token)
        run.add("audit key", (state / "audit.key").read_text().strip())  # generated at the gateway's start
        wait_ready(gateway)
        yield SecureStack(workdir=workdir, nats=nats, sim=sim, sshd=sshd, config_path=config_path, gateway=gateway,
                          state_dir=state, procs=procs, secrets=run, notes_file=notes, notes_key=notes_key,
                          notes_pve_secret=notes_pve)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if sshd is not None:
            sshd.close()
        if notes is not None:
            notes.unlink(missing_ok=True)
