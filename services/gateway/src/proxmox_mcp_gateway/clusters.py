"""The cluster names the gateway accepts: from PMCP_CLUSTERS, else the names in the cluster config file
(PMCP_CONFIG; only names are kept, nothing else of the file), else just the default cluster."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.subjects import validate_cluster_name


class ClusterConfigError(ValueError):
    """The cluster names cannot be determined; the message says why (never a value from the file)."""


@dataclass(frozen=True)
class ClusterNames:
    default: str
    known: tuple[str, ...]

    @classmethod
    def of(cls, default: str, names: Iterable[str] = ()) -> ClusterNames:
        listed = list(dict.fromkeys(name.strip() for name in names if name.strip()))
        for name in (*listed, default):
            try:
                validate_cluster_name(name)
            except ValueError as exc:
                raise ClusterConfigError(str(exc)) from None
        if listed and default not in listed:
            raise ClusterConfigError(f"default cluster {default!r} is not among the configured clusters "
                                     f"({', '.join(listed)})")
        return cls(default=default, known=tuple(listed) or (default,))

    def resolve(self, name: str | None) -> str:
        """The cluster a call goes to; invalid_argument naming the known ones for anything else."""
        if name is None:
            return self.default
        if name not in self.known:
            shown = name if len(name) <= 63 else name[:60] + "..."
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT,
                                 f"unknown cluster {shown!r}; known clusters: {', '.join(self.known)} "
                                 f"(default {self.default})", details={"known_clusters": list(self.known)})
        return name


def names_from_config_file(path: Path) -> tuple[list[str], str | None]:
    """([cluster names], default_cluster) of a cluster config TOML; the rest of the file is dropped at once."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterConfigError(f"PMCP_CONFIG: {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ClusterConfigError(f"PMCP_CONFIG {path}: cannot read it as TOML ({type(exc).__name__})") from None
    clusters = data.get("clusters")
    default = data.get("default_cluster")
    names = [c.get("name", "default") for c in clusters if is_object(c)] if is_array(clusters) else []
    del data, clusters
    if not all(isinstance(name, str) for name in names) or (default is not None and not isinstance(default, str)):
        raise ClusterConfigError(f"PMCP_CONFIG {path}: cluster names must be strings")
    return names, default
