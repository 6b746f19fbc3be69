# pyright: strict
"""What the OAuth resource server is configured with, and the checks of those settings (pure, no I/O).

The grant map says which scope (or role/group claim value) gives which rights: `GRANT=LEVEL` or
`GRANT=LEVEL/PROFILE`, comma-separated, LEVEL one of read, operate, exec, admin, PROFILE a command profile.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxmox_mcp_contracts.envelope import Scope

DEFAULT_GRANTS = "proxmox:read=read,proxmox:operate=operate,proxmox:exec=exec,proxmox:admin=admin"
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""The only algorithms a token may be signed with: public-key signatures. `none` and the HS* family never pass
(an HMAC "verified" with a published public key proves nothing)."""
WELL_KNOWN = "/.well-known/oauth-protected-resource"
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class GrantRule:
    """One entry of the grant map."""

    grant: str
    """A scope value, or a value of the roles claim."""
    scope: Scope
    profile: str | None = None
    """The command profile it gives (None: the default profile of its level)."""


@dataclass(frozen=True)
class OAuthConfig:
    issuer: str
    """The OpenID provider's issuer identifier, compared exactly with each token's `iss`."""
    resource: str
    """This MCP server's canonical URI: the audience every accepted token must name."""
    grants: tuple[GrantRule, ...]
    algorithms: tuple[str, ...] = ASYMMETRIC_ALGORITHMS
    leeway: float = 30.0
    """Seconds of clock skew allowed on exp, nbf and iat."""
    roles_claim: str | None = None
    """A claim (dotted path, e.g. realm_access.roles) whose string values are matched against the grant map too."""
    jwks_url: str | None = None
    """The provider's key set; None: found through OpenID discovery from the issuer."""
    jwks_cache_seconds: float = 3600.0
    jwks_min_refresh_seconds: float = 30.0
    """An unknown key id refetches the key set at most this often (no fetch storm from forged tokens)."""
    http_timeout: float = 5.0
    ca_file: str | None = None
    resource_name: str = "proxmox-mcp"

    @property
    def metadata_paths(self) -> tuple[str, ...]:
        """Where the protected resource metadata is served: the RFC 9728 path for the resource (well-known
        prefix + the resource's path), and the root form for clients that only look there."""
        path = urlsplit(self.resource).path.rstrip("/")
        return (WELL_KNOWN + path, WELL_KNOWN) if path else (WELL_KNOWN,)

    @property
    def metadata_url(self) -> str:
        """The metadata URL named in WWW-Authenticate (the RFC 9728 form for this resource)."""
        parts = urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{self.metadata_paths[0]}"

    def scopes_supported(self) -> list[str]:
        """The grant names, weakest level first (what a client may ask the provider for)."""
        ordered = sorted(self.grants, key=lambda rule: rule.scope.rank)
        return list(dict.fromkeys(rule.grant for rule in ordered))

    def scope_for(self, level: Scope) -> str:
        """The grant a client should ask for to reach level: the first rule of that level, else the weakest
        rule above it."""
        fitting = [rule for rule in self.grants if rule.scope.includes(level)]
        if not fitting:
            return self.grants[-1].grant
        return min(fitting, key=lambda rule: rule.scope.rank).grant


def parse_grants(text: str) -> tuple[GrantRule, ...]:
    """The grant map from its setting; ValueError names the entry that is wrong."""
    rules: list[GrantRule] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        grant, sep, rights = entry.partition("=")
        grant, rights = grant.strip(), rights.strip()
        if not sep or not grant or not rights or any(ch.isspace() or ch in '"\\' for ch in grant):
            raise ValueError(f"grant {entry!r}: expected GRANT=LEVEL or GRANT=LEVEL/PROFILE (no spaces or quotes)")
        level, _, profile = rights.partition("/")
        try:
            scope = Scope(level.strip())
        except ValueError:
            raise ValueError(f"grant {entry!r}: level must be one of read, operate, exec, admin") from None
        profile = profile.strip() or None
        if profile is not None and not scope.includes(Scope.EXEC):
            raise ValueError(f"grant {entry!r}: a command profile only matters for exec and admin")
        if profile == "admin" and scope is not Scope.ADMIN:
            raise ValueError(f"grant {entry!r}: the admin profile needs the admin level")
        if any(rule.grant == grant for rule in rules):
            raise ValueError(f"grant {grant!r} is mapped twice")
        rules.append(GrantRule(grant=grant, scope=scope, profile=profile))
    if not rules:
        raise ValueError("the grant map is empty: map at least one scope, e.g. proxmox:read=read")
    return tuple(rules)


def check_algorithms(names: list[str]) -> tuple[str, ...]:
    if not names:
        raise ValueError("name at least one signing algorithm")
    bad = [name for name in names if name not in ASYMMETRIC_ALGORITHMS]
    if bad:
        raise ValueError(f"{', '.join(bad)} not accepted; choose from {', '.join(ASYMMETRIC_ALGORITHMS)}")
    return tuple(dict.fromkeys(names))


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str, *, allow_path: bool = True) -> str:
    """An absolute https URL (http only to a loopback host) without query or fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{what} {url!r} must be an absolute https URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{what} {url!r} must use https (plain http only on loopback, for local tests)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{what} {url!r} may not carry a query, fragment or credentials")
    if not allow_path and parts.path not in ("", "/"):
        raise ValueError(f"{what} {url!r} may not have a path")
    return url
