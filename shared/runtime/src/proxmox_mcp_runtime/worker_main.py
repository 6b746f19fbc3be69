"""What both workers do at start: read their settings and the cluster config, serve metrics, run, exit cleanly."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_contracts.subjects import WorkerKind
from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxmox_mcp_runtime import event_loop
from proxmox_mcp_runtime.command_policy import PROFILES_ENV, ProfileSpec, load_configured_profiles
from proxmox_mcp_runtime.config import CONFIG_ENV, ConfigError, load_proxmox_config
from proxmox_mcp_runtime.control.guard import ControlTiming
from proxmox_mcp_runtime.control.worker_gate import WorkerFreezeGate
from proxmox_mcp_runtime.env_file import with_env_file
from proxmox_mcp_runtime.event_loop import EventLoopError
from proxmox_mcp_runtime.logs import configure_logging
from proxmox_mcp_runtime.metrics.serve import MetricsConfigError, serve_metrics_from_env
from proxmox_mcp_runtime.settings_errors import describe_settings_error
from proxmox_mcp_runtime.ssh.liveness import LivenessPolicy

log = logging.getLogger(__name__)


class WorkerBaseSettings(BaseSettings):
    """Settings every worker has (environment only; secrets come from the cluster config, never argv)."""

    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", populate_by_name=True)

    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    config_path: Path | None = Field(
        default=None, validation_alias=CONFIG_ENV,
        description="TOML cluster config; without it the original SSH_*/PROXMOX_* variables describe one cluster",
    )
    env_file: Path = Field(default=Path(".env"), validation_alias="PMCP_ENV_FILE")
    drain_timeout: float = Field(default=30.0, gt=0, validation_alias="PMCP_DRAIN_TIMEOUT")
    ssh_liveness_interval: float = Field(
        default=5.0, ge=0, validation_alias="PMCP_SSH_LIVENESS_INTERVAL",
        description="Seconds between probes that want an answer from a host while a command runs on it (0: off)",
    )
    ssh_liveness_misses: int = Field(
        default=3, ge=1, le=100, validation_alias="PMCP_SSH_LIVENESS_MISSES",
        description="Unanswered probes in a row after which the host counts as gone: the command fails "
        "(unavailable) and the connection is dropped",
    )

    def ssh_liveness(self) -> LivenessPolicy:
        return LivenessPolicy(interval=self.ssh_liveness_interval, misses=self.ssh_liveness_misses)

    state: Literal["local", "jetstream"] = Field(
        default="local", validation_alias="PMCP_STATE",
        description="Where the freeze switch is read: jetstream (the PMCP_CONTROL bucket) or local (the gateway "
        "relays it on NATS); the same value as the gateways'",
    )
    state_replicas: int = Field(default=3, ge=1, le=5, validation_alias="PMCP_STATE_REPLICAS")
    control_interval: float = Field(default=0.5, gt=0, le=60, validation_alias="PMCP_CONTROL_INTERVAL")
    control_stale_after: float | None = Field(
        default=None, gt=0, le=600, validation_alias="PMCP_CONTROL_STALE_AFTER",
        description="Seconds without a confirmation of the freeze switch after which everything above read is "
        "refused (default: 2, or 10 with PMCP_STATE=jetstream, longer than a leader election)",
    )
    control_timeout: float = Field(default=1.0, gt=0, le=60, validation_alias="PMCP_CONTROL_TIMEOUT")

    @model_validator(mode="after")
    def _control_timing(self) -> WorkerBaseSettings:
        self.control_timing()  # stale_after must be longer than the interval: refused at start, variable named
        return self

    def control_timing(self) -> ControlTiming:
        return ControlTiming.configured(self.state, interval=self.control_interval,
                                        stale_after=self.control_stale_after, timeout=self.control_timeout)

    def freeze_gate(self, kind: WorkerKind) -> WorkerFreezeGate:
        """The freeze switch as this worker follows it (started with the worker's NATS connection)."""
        return WorkerFreezeGate(kind, self.state, replicas=self.state_replicas, timing=self.control_timing())

    command_profiles: Path | None = Field(
        default=None, validation_alias=PROFILES_ENV,
        description="Extra command profiles (TOML, or .json): the same file the gateway is given",
    )
    _extra_profiles: dict[str, ProfileSpec] = PrivateAttr(default_factory=dict[str, ProfileSpec])

    @model_validator(mode="after")
    def _load_command_profiles(self) -> WorkerBaseSettings:
        # Read once, at start: a bad file stops the worker (exit 2, variable named) instead of failing each call.
        self._extra_profiles = load_configured_profiles(self.command_profiles)
        return self

    @property
    def extra_profiles(self) -> dict[str, ProfileSpec]:
        """The profiles of PMCP_COMMAND_PROFILES, beside the built-in ones (empty when it is unset)."""
        return self._extra_profiles


SettingsT = TypeVar("SettingsT", bound=WorkerBaseSettings)


def load_worker(
    settings_type: type[SettingsT], env: Mapping[str, str] | None = None
) -> tuple[ProxmoxConfig, SettingsT]:
    settings = settings_type()
    environ = dict(os.environ if env is None else env)
    if settings.config_path is not None:
        environ[CONFIG_ENV] = str(settings.config_path)
    return load_proxmox_config(with_env_file(settings.env_file, environ)), settings


def _problem(exc: Exception, settings_type: type[BaseSettings]) -> str:
    if isinstance(exc, ValidationError):
        return describe_settings_error(exc, settings_type)
    return str(exc)


def worker_main(
    service: str,
    version: str,
    settings_type: type[SettingsT],
    run: Callable[[ProxmoxConfig, SettingsT], Coroutine[Any, Any, None]],
) -> None:
    """JSON logs, settings + config (exit 2 with the problem named), metrics server, run until SIGTERM."""
    configure_logging(service)
    try:
        config, settings = load_worker(settings_type)
        server = serve_metrics_from_env(service, version)
    except (ConfigError, MetricsConfigError, ValidationError) as exc:
        log.error(f"cannot start the {service}", extra={"problem": _problem(exc, settings_type)})
        sys.exit(2)
    try:
        event_loop.run(run(config, settings))
    except (ConfigError, EventLoopError) as exc:
        log.error(f"cannot start the {service}", extra={"problem": str(exc)})
        sys.exit(2)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.close()
