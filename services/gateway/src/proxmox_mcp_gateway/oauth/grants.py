# pyright: strict
"""From a verified token's claims to our rights: the scope level and command profile its grants map to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.envelope import Scope

from proxmox_mcp_gateway.oauth.config import GrantRule
from proxmox_mcp_gateway.tokens import DEFAULT_PROFILE


@dataclass(frozen=True)
class Rights:
    scope: Scope
    profile: str
    grants: tuple[str, ...]
    """The token's grants that matched the map (for the audit record)."""


def token_grants(claims: Mapping[str, Any], roles_claim: str | None) -> set[str]:
    """Scope values (`scope`, space-separated, RFC 9068; or `scp`, a list) plus the roles claim's strings."""
    found: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        found.update(scope.split())
    found.update(_strings(claims.get("scp")))
    if roles_claim:
        found.update(_strings(_dotted(claims, roles_claim)))
    return found


def rights_for(grants: set[str], rules: tuple[GrantRule, ...]) -> Rights | None:
    """The strongest matching rule wins; among rules of the same level, the first one listed. None: nothing
    matched (the token gives no access here)."""
    matched = [rule for rule in rules if rule.grant in grants]
    if not matched:
        return None
    best = max(matched, key=lambda rule: rule.scope.rank)  # max keeps the first of equal ranks
    return Rights(scope=best.scope, profile=best.profile or DEFAULT_PROFILE[best.scope],
                  grants=tuple(rule.grant for rule in matched))


def _dotted(claims: Mapping[str, Any], path: str) -> object:
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = _get(value, part)  # pyright: ignore[reportUnknownArgumentType]
    return value


def _get(mapping: Mapping[Any, Any], key: str) -> object:
    return mapping.get(key)


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {item for item in value if isinstance(item, str)}  # pyright: ignore[reportUnknownVariableType]
    return set()
