"""Gateway settings: one pydantic-settings class, env prefix PMCP_, passed in explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from proxmox_mcp_contracts.envelope import Scope
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PMCP_", env_ignore_empty=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL", "PMCP_NATS_URL"))
    token: SecretStr | None = Field(default=None, description="A static bearer token (demo / single user)")
    token_file: Path | None = Field(default=None, description="File holding the static bearer token")
    token_scope: Scope = Scope.ADMIN
    token_profile: str = "readonly"
    stdio_scope: Scope = Scope.EXEC
    stdio_profile: str = "readonly"
    default_cluster: str = "default"
    api_timeout: float = Field(default=30.0, gt=0)
    max_command_timeout: int = Field(default=300, ge=1)
    command_grace: float = Field(default=5.0, ge=0)
    task_poll_interval: float = Field(default=0.5, gt=0)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    probe_interval: float = Field(default=10.0, gt=0)
    probe_timeout: float = Field(default=5.0, gt=0)
    allowed_hosts: CommaList = Field(default_factory=list, description="Extra Host header values for /mcp")
    allowed_origins: CommaList = Field(default_factory=list, description="Extra Origin values for /mcp")

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def bearer_secret(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return None
