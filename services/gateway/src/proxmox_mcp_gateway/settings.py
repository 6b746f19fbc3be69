"""Gateway settings: one pydantic-settings class, env prefix PMCP_, passed in explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_runtime.control import ControlTiming
from proxmox_mcp_runtime.networks import parse_networks
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from proxmox_mcp_gateway.audit_chain_writer import default_anchor_path
from proxmox_mcp_gateway.catalog import PROFILE_NAMES, exposed_tools
from proxmox_mcp_gateway.clusters import ClusterNames, names_from_config_file
from proxmox_mcp_gateway.idempotency import MAX_IDEMPOTENCY_TTL
from proxmox_mcp_gateway.limits import RateSpec, parse_tool_rates
from proxmox_mcp_gateway.oauth.config import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_GRANTS,
    check_algorithms,
    check_url,
    parse_grants,
)
from proxmox_mcp_gateway.task_records import MAX_TASK_TTL
from proxmox_mcp_gateway.tokens import default_state_dir

CommaList = Annotated[list[str], NoDecode]

DEFAULT_TOOL_RATES = "execute_command=600/m,vm_action=600/m,proxmox_api=1200/m"
DEFAULT_SHARED_DRAIN = 3.0
"""Seconds of drain behind a load balancer: the Caddyfile asks /health/ready every second."""


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

    # --- security (issue 5) ---
    state_dir: Path = Field(default_factory=default_state_dir,
                            description="Token store and audit log live here unless set one by one")
    tokens_file: Path | None = Field(default=None, description="Token store (default: STATE_DIR/tokens.json)")
    read_only: bool = Field(default=False, description="Only read-scope tools for every caller")
    allowed_cidrs: CommaList = Field(default_factory=list,
                                     description="Client networks allowed (empty: any); /health stays open")
    trusted_proxies: CommaList = Field(default_factory=list,
                                       description="Peers whose X-Forwarded-For is believed (Caddy)")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest request body (413 above)")
    rate_limit: str = Field(default="6000/m", description="Calls per token: N/PERIOD (burst N) or off")
    tool_rate_limits: str = Field(default=DEFAULT_TOOL_RATES,
                                  description="Per token and tool: TOOL=N/PERIOD,... (off to disable one)")
    max_concurrent_per_token: int = Field(default=32, ge=0, description="Calls in flight per token (0: no cap)")
    audit_file: Path | None = Field(default=None, description="Audit JSONL (default: STATE_DIR/audit.jsonl)")
    audit_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096, description="Rotate the audit log past this")
    audit_backups: int = Field(default=5, ge=0, le=1000)
    audit_key_file: Path | None = Field(default=None, description="Secret (>= 32 bytes) sealing the audit chain "
                                        "(default: STATE_DIR/audit.key, generated with mode 0600 when missing)")
    audit_anchor_file: Path | None = Field(default=None, description="Where the audit chain's start and head are "
                                           "anchored (default: the audit file's path + .anchor)")
    audit_anchor_interval: float = Field(default=1.0, gt=0, le=3600, description="Seconds after a record before "
                                         "the anchor names it (the window of cut-off records verify cannot see)")
    audit_anchor_records: int = Field(default=1000, ge=1, description="Records after which the anchor is "
                                      "written at once")
    command_profiles: Path | None = Field(default=None,
                                          description="TOML (or .json) with [profiles.NAME] command profiles "
                                          "beside the built-in ones; give both workers the same file")


    # --- tools, clusters, confirmation (issue 7) ---
    tool_profile: str = Field(default="full", description=f"Tools offered: {', '.join(PROFILE_NAMES)}")
    tools: CommaList = Field(default_factory=list, description="Explicit comma list of tools (wins over the "
                             "profile)")
    clusters: CommaList = Field(default_factory=list, description="Cluster names calls may name (default: the "
                                "names in PMCP_CONFIG, else only the default cluster)")
    config: Path | None = Field(default=None, description="Cluster config TOML: the gateway reads cluster names "
                                "from it, nothing else")
    confirm_destructive: bool = Field(default=True, description="Destructive calls need the user's confirmation")
    confirm_timeout: float = Field(default=120.0, gt=0, description="Seconds a user has to answer a confirmation")
    state: Literal["local", "jetstream"] = Field(
        default="local", description="Where state shared by gateway replicas lives: local (one gateway: "
        "STATE_DIR files) or jetstream (KV buckets and streams on the NATS cluster)")
    state_replicas: int = Field(default=3, ge=1, le=5, description="JetStream replicas of the shared state")
    state_timeout: float = Field(default=10.0, gt=0, le=120, description="Seconds a write to the shared state "
                                 "(audit record, rate count, concurrency slot) may take, retried through a JetStream "
                                 "leader election, before the call fails closed")
    slot_ttl: int = Field(default=30, ge=3, le=3600, description="Seconds a concurrency slot on JetStream lives "
                          "unless its gateway renews it (every third of it): how long a dead gateway's calls still "
                          "count against the cap")
    control_interval: float = Field(default=0.5, gt=0, le=60, description="Seconds between confirmations of the "
                                    "freeze switch (and, in local mode, between its broadcasts to the workers)")
    control_stale_after: float | None = Field(
        default=None, gt=0, le=600, description="Seconds without a confirmation of the freeze switch after which "
        "every call above read is refused (default: 2, or 10 with PMCP_STATE=jetstream, longer than a leader "
        "election)")
    control_timeout: float = Field(default=1.0, gt=0, le=60, description="Seconds one read of the freeze switch "
                                   "may take")
    drain_delay: float | None = Field(
        default=None, ge=0, le=300, description="Seconds between SIGTERM and the server's stop, while "
        "/health/ready answers 503 so a load balancer stops sending calls here and calls that still arrive are "
        "served (default: 3 with PMCP_STATE=jetstream, where gateways sit behind one, else 0)")
    request_state_key_file: Path | None = Field(
        default=None, description="Secret (>= 32 bytes) sealing the 2026-era input_required state; share it "
        "between gateway replicas (default: a key of this process)")

    # --- OAuth 2.1 resource server (issue 15): off unless an issuer is set ---
    oauth_issuer: str | None = Field(default=None, description="The OpenID provider whose access tokens are "
                                     "accepted (its issuer URL, exactly as in its tokens' iss)")
    oauth_resource: str | None = Field(default=None, description="This server's canonical MCP URL, e.g. "
                                       "https://mcp.example.com/mcp: the audience tokens must be issued for")
    oauth_grants: str = Field(default=DEFAULT_GRANTS, description="Scope or role -> rights: GRANT=LEVEL or "
                              "GRANT=LEVEL/PROFILE, comma-separated")
    oauth_roles_claim: str | None = Field(default=None, description="A claim (dotted path, e.g. groups or "
                                          "realm_access.roles) whose values count as grants too")
    oauth_algorithms: CommaList = Field(default_factory=lambda: list(ASYMMETRIC_ALGORITHMS),
                                        description="Signing algorithms accepted (public-key ones only)")
    oauth_leeway: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat (s)")
    oauth_jwks_url: str | None = Field(default=None, description="The provider's key set (default: from its "
                                       "OpenID discovery document)")
    oauth_jwks_cache_seconds: float = Field(default=3600.0, gt=0, description="Refetch the keys this often")
    oauth_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0, description="An unknown key id refetches "
                                                  "the keys at most this often")
    oauth_http_timeout: float = Field(default=5.0, gt=0, description="Timeout of discovery and key fetches (s)")
    oauth_ca_file: Path | None = Field(default=None, description="CA bundle for the provider's TLS certificate "
                                       "(default: the system's)")

    @field_validator("oauth_issuer", "oauth_resource", "oauth_jwks_url")
    @classmethod
    def _oauth_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, "URL")

    @field_validator("oauth_grants")
    @classmethod
    def _oauth_grants(cls, value: str) -> str:
        parse_grants(value)
        return value

    @field_validator("oauth_algorithms")
    @classmethod
    def _oauth_algorithms(cls, value: list[str]) -> list[str]:
        return list(check_algorithms(value))

    @model_validator(mode="after")
    def _control_timing(self) -> GatewaySettings:
        self.control_timing()
        return self

    def control_timing(self) -> ControlTiming:
        return ControlTiming.configured(self.state, interval=self.control_interval,
                                        stale_after=self.control_stale_after, timeout=self.control_timeout)

    @model_validator(mode="after")
    def _oauth_complete(self) -> GatewaySettings:
        if self.oauth_issuer is not None and self.oauth_resource is None:
            raise ValueError("PMCP_OAUTH_ISSUER is set, so PMCP_OAUTH_RESOURCE must name this server's canonical "
                             "MCP URL (the audience of its tokens)")
        return self
    # --- tasks, idempotency keys (issue 14) ---
    task_ttl: float = Field(default=3600.0, ge=10, le=MAX_TASK_TTL, description="Seconds a task record of the "
                            "2026 tasks extension stays readable with tasks/get after it was created")
    idempotency_ttl: float = Field(default=600.0, ge=10, le=MAX_IDEMPOTENCY_TTL, description="Seconds an "
                                   "idempotency key is remembered (its first call's result replayed)")
    idempotency_wait: float = Field(default=60.0, gt=0, description="Seconds a call with a key waits for an "
                                    "earlier call with the same key that is still running")
    conformance_fixtures: bool = Field(default=False, description="TEST ONLY: adds the MCP conformance suite's "
                                       "fixture tools (greet, slow_compute, ...); never in a deployment")

    @field_validator("allowed_hosts", "allowed_origins", "allowed_cidrs", "trusted_proxies", "tools", "clusters",
                     "oauth_algorithms", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_cidrs", "trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        exposed_tools("full", value)
        return value

    @field_validator("tool_profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        exposed_tools(value)
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        RateSpec.parse(value)
        return value

    @field_validator("tool_rate_limits")
    @classmethod
    def _tool_rates(cls, value: str) -> str:
        parse_tool_rates(value)
        return value

    def bearer_secret(self) -> str | None:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return None

    def drain_seconds(self) -> float:
        """PMCP_DRAIN_DELAY, or what suits the deployment: behind a load balancer (shared state) a few health
        checks' worth, alone nothing (no one would send the calls elsewhere)."""
        if self.drain_delay is not None:
            return self.drain_delay
        return DEFAULT_SHARED_DRAIN if self.state == "jetstream" else 0.0

    def tokens_path(self) -> Path:
        return self.tokens_file or self.state_dir / "tokens.json"

    def audit_path(self) -> Path:
        return self.audit_file or self.state_dir / "audit.jsonl"

    def audit_key_path(self) -> Path:
        return self.audit_key_file or self.state_dir / "audit.key"

    def audit_anchor_path(self) -> Path:
        return self.audit_anchor_file or default_anchor_path(self.audit_path())

    def exposed_tools(self) -> frozenset[str]:
        return exposed_tools(self.tool_profile, self.tools)

    def cluster_names(self) -> ClusterNames:
        """PMCP_CLUSTERS, else the names in PMCP_CONFIG, else only the default cluster. The default cluster is
        PMCP_DEFAULT_CLUSTER when set, else the config file's default_cluster, else its first cluster."""
        names: list[str] = list(self.clusters)
        file_default: str | None = None
        if not names and self.config is not None:
            names, file_default = names_from_config_file(self.config)
        default = self.default_cluster
        if "default_cluster" not in self.model_fields_set:
            default = file_default or (names[0] if names else default)
        return ClusterNames.of(default, names)
