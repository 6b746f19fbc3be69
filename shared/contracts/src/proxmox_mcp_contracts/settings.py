"""Configuration models shared by the gateway, the workers and the CLI. Pure: callers do the reading."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from proxmox_mcp_contracts.subjects import validate_cluster_name

ApiMode = Literal["direct", "ssh-tunnel", "pvesh"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SshSettings(_Model):
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    key_path: Path | None = None
    key_passphrase: SecretStr | None = None
    password: SecretStr | None = None
    known_hosts: Path | None = None
    host_key_fingerprints: list[str] = Field(
        default_factory=list, description="Pinned host keys as 'SHA256:...' (ssh-keygen -l format)"
    )
    accept_unknown_host_keys: bool = Field(default=False, description="Demo only: trust any host key")
    connect_timeout: float = Field(default=10.0, gt=0)
    keepalive_interval: int = Field(default=15, ge=0)
    max_output_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_command_timeout: int = Field(default=300, ge=1)
    remote_timeout: bool = Field(
        default=True,
        description="Also run commands under the host's `timeout` (exec timeout --signal=TERM --kill-after=K N "
        "argv) so they end even if the SSH signal request is ignored; turn off for hosts without GNU timeout",
    )


class ApiSettings(_Model):
    mode: ApiMode = "direct"
    host: str | None = Field(default=None, description="API host (default: the first SSH host's address)")
    port: int = Field(default=8006, ge=1, le=65535)
    user: str = "root@pam"
    token_name: str | None = None
    token_value: SecretStr | None = None
    password: SecretStr | None = None
    verify_ssl: bool = True
    ca_file: Path | None = None
    fingerprint: str | None = Field(default=None, description="Pinned certificate SHA-256 (hex, colons optional)")
    timeout: float = Field(default=5.0, gt=0)


class HostConfig(_Model):
    node: str = Field(description="Proxmox node name that tools use")
    address: str = Field(description="Address or DNS name to reach it by SSH")
    port: int | None = Field(default=None, ge=1, le=65535, description="SSH port (default: ssh.port)")


class ClusterConfig(_Model):
    name: str = "default"
    hosts: list[HostConfig] = Field(default_factory=list[HostConfig])
    ssh: SshSettings = Field(default_factory=SshSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_cluster_name(value)

    @model_validator(mode="after")
    def _unique_nodes(self) -> ClusterConfig:
        names = [h.node for h in self.hosts]
        if len(names) != len(set(names)):
            raise ValueError(f"cluster {self.name!r} lists a node twice")
        return self

    @property
    def default_host(self) -> HostConfig | None:
        return self.hosts[0] if self.hosts else None

    def host_for(self, node: str | None) -> HostConfig | None:
        if node is None:
            return self.default_host
        return next((h for h in self.hosts if h.node == node or h.address == node), None)

    def api_host(self) -> str | None:
        if self.api.host:
            return self.api.host
        host = self.default_host
        return host.address if host else None


class ProxmoxConfig(_Model):
    clusters: list[ClusterConfig] = Field(default_factory=list[ClusterConfig])
    default_cluster: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ProxmoxConfig:
        names = [c.name for c in self.clusters]
        if len(names) != len(set(names)):
            raise ValueError("cluster names must be unique")
        if self.default_cluster is not None and self.default_cluster not in names:
            raise ValueError(f"default_cluster {self.default_cluster!r} is not a configured cluster")
        return self

    @property
    def default_name(self) -> str:
        if self.default_cluster:
            return self.default_cluster
        return self.clusters[0].name if self.clusters else "default"

    def cluster(self, name: str | None) -> ClusterConfig | None:
        wanted = name or self.default_name
        return next((c for c in self.clusters if c.name == wanted), None)


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def cluster_from_legacy_env(env: Mapping[str, str]) -> ClusterConfig:
    """Build the single cluster the original checklist's environment variables describe.

    SSH_HOST, SSH_USER, SSH_PORT, SSH_KEY_PATH, SSH_KEY_PASSPHRASE, SSH_PASSWORD, PROXMOX_HOST,
    PROXMOX_USER, PROXMOX_TOKEN_NAME, PROXMOX_TOKEN_VALUE, PROXMOX_PASSWORD, PROXMOX_VERIFY_SSL; plus
    optional SSH_NODE (the host's node name), SSH_KNOWN_HOSTS, SSH_HOST_KEY_FINGERPRINT,
    PROXMOX_PORT, PROXMOX_CA_FILE, PROXMOX_FINGERPRINT, PROXMOX_API_MODE.
    """

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    ssh_host = get("SSH_HOST")
    ssh = SshSettings(
        user=get("SSH_USER") or "root",
        port=int(get("SSH_PORT") or 22),
        key_path=Path(p) if (p := get("SSH_KEY_PATH")) else None,
        key_passphrase=SecretStr(v) if (v := get("SSH_KEY_PASSPHRASE")) else None,
        password=SecretStr(v) if (v := get("SSH_PASSWORD")) else None,
        known_hosts=Path(p) if (p := get("SSH_KNOWN_HOSTS")) else None,
        host_key_fingerprints=[f.strip() for f in (get("SSH_HOST_KEY_FINGERPRINT") or "").split(",") if f.strip()],
    )
    verify = get("PROXMOX_VERIFY_SSL")
    api = ApiSettings(
        mode=get("PROXMOX_API_MODE") or "direct",  # type: ignore[arg-type]
        host=get("PROXMOX_HOST"),
        port=int(get("PROXMOX_PORT") or 8006),
        user=get("PROXMOX_USER") or "root@pam",
        token_name=get("PROXMOX_TOKEN_NAME"),
        token_value=SecretStr(v) if (v := get("PROXMOX_TOKEN_VALUE")) else None,
        password=SecretStr(v) if (v := get("PROXMOX_PASSWORD")) else None,
        verify_ssl=True if verify is None else _flag(verify, "PROXMOX_VERIFY_SSL"),
        ca_file=Path(p) if (p := get("PROXMOX_CA_FILE")) else None,
        fingerprint=get("PROXMOX_FINGERPRINT"),
    )
    hosts = [HostConfig(node=get("SSH_NODE") or ssh_host, address=ssh_host)] if ssh_host else []
    return ClusterConfig(name="default", hosts=hosts, ssh=ssh, api=api)
