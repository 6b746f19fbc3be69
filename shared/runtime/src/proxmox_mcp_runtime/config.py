"""Load the cluster configuration: a TOML file (PMCP_CONFIG) or the original environment variable names."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

from proxmox_mcp_contracts.json_values import is_array
from proxmox_mcp_contracts.settings import ClusterConfig, ProxmoxConfig, cluster_from_legacy_env
from pydantic import BaseModel, SecretStr, ValidationError

from proxmox_mcp_runtime.redact import register_hosts, register_model_secrets
from proxmox_mcp_runtime.validation_errors import describe_validation_error

CONFIG_ENV = "PMCP_CONFIG"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says what to fix (never a secret value)."""


def load_config_file(path: Path) -> ProxmoxConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        config = ProxmoxConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {describe_validation_error(exc, whole='config')}") from None
    return _relative_to(config, path.parent)


def _relative_to(config: ProxmoxConfig, base: Path) -> ProxmoxConfig:
    """Relative file paths in a config file (keys, known_hosts, CA files) are relative to the file itself, so
    a config loaded as a systemd credential can name its sibling credentials (key_path = "ssh-key")."""
    clusters: list[ClusterConfig] = []
    for cluster in config.clusters:
        updates: dict[str, BaseModel] = {}
        for name in ("ssh", "api"):
            section: BaseModel = getattr(cluster, name)
            fixed = {field: base / value for field in type(section).model_fields
                     if isinstance(value := getattr(section, field), Path) and not value.is_absolute()}
            if fixed:
                updates[name] = section.model_copy(update=fixed)
        clusters.append(cluster.model_copy(update=updates) if updates else cluster)
    return config.model_copy(update={"clusters": clusters})


def load_proxmox_config(env: Mapping[str, str] | None = None, config_file: Path | None = None) -> ProxmoxConfig:
    """config_file (a command line's --config) wins, then PMCP_CONFIG; otherwise the original variables (SSH_HOST,
    PROXMOX_HOST, ...) of `env` (default: this process's environment; an env file is merged into it by its
    caller, see env_file).

    Every secret of the loaded configuration is registered with the redactor, so no log line, result or
    error of this process can carry it."""
    environ = os.environ if env is None else env
    config = _load({**environ, CONFIG_ENV: str(config_file)} if config_file is not None else environ)
    register_model_secrets(config)
    register_hosts([*(h.address for c in config.clusters for h in c.hosts), *(c.api.host for c in config.clusters)],
                   keep=[h.node for c in config.clusters for h in c.hosts])
    return config


def _load(merged: Mapping[str, str]) -> ProxmoxConfig:
    config_path = merged.get(CONFIG_ENV)
    if config_path:
        return load_config_file(Path(config_path))
    try:
        cluster = cluster_from_legacy_env(merged)
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"environment configuration is invalid: {exc}") from None
    if not cluster.hosts and not cluster.api.host:
        raise ConfigError(
            f"no cluster configured: set {CONFIG_ENV} to a TOML file, or SSH_HOST / PROXMOX_HOST (see README)"
        )
    return ProxmoxConfig(clusters=[cluster])


def dump_config_toml(config: ProxmoxConfig) -> str:
    """Write a config as TOML (secrets included: callers store it with mode 0600)."""
    lines: list[str] = []
    if config.default_cluster:
        lines.append(f"default_cluster = {_toml(config.default_cluster)}")
    for cluster in config.clusters:
        data = cluster.model_dump(mode="json", exclude_none=True)
        for key in ("ssh", "api"):
            section: BaseModel = getattr(cluster, key)
            for name in type(section).model_fields:
                value = getattr(section, name)
                if isinstance(value, SecretStr):
                    data[key][name] = value.get_secret_value()
        lines.append("\n[[clusters]]")
        lines.append(f"name = {_toml(data['name'])}")
        for host in data.get("hosts", []):
            lines.append("[[clusters.hosts]]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in host.items())
        for key in ("ssh", "api"):
            lines.append(f"[clusters.{key}]")
            lines.extend(f"{k} = {_toml(v)}" for k, v in data[key].items())
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if is_array(value):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
