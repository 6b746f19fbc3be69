"""What a Proxmox node keeps across a reboot, kept in the state directory: the API token secrets, the root
password and the ticket signing key (secrets.json, mode 0600), and the ports it chose (ports.json).

So a simulator restarted with the same state directory still accepts the tokens its clients were given and
listens where they were told to connect, as a real node does; without a state directory every start is new.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

SECRETS_FILE = "secrets.json"
PORTS_FILE = "ports.json"


@dataclass(frozen=True)
class SimSecrets:
    root_password: str
    admin_token_secret: str
    readonly_token_secret: str
    ticket_key: bytes

    @classmethod
    def generate(cls) -> SimSecrets:
        return cls(
            root_password=secrets.token_urlsafe(18),
            admin_token_secret=str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)),
            readonly_token_secret=str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)),
            ticket_key=secrets.token_bytes(32),
        )


def _write_private(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data: Any = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return cast(dict[str, Any], data) if isinstance(data, dict) else None


def load_or_create_secrets(state_dir: Path) -> SimSecrets:
    """The secrets saved in `state_dir`, or new ones saved there (a damaged file is replaced)."""
    path = state_dir / SECRETS_FILE
    saved = _read(path)
    if saved is not None:
        try:
            return SimSecrets(
                root_password=str(saved["root_password"]),
                admin_token_secret=str(saved["admin_token_secret"]),
                readonly_token_secret=str(saved["readonly_token_secret"]),
                ticket_key=bytes.fromhex(str(saved["ticket_key"])),
            )
        except (KeyError, ValueError):
            pass
    fresh = SimSecrets.generate()
    _write_private(path, {
        "root_password": fresh.root_password,
        "admin_token_secret": fresh.admin_token_secret,
        "readonly_token_secret": fresh.readonly_token_secret,
        "ticket_key": fresh.ticket_key.hex(),
    })
    return fresh


def saved_ports(state_dir: Path) -> dict[str, int]:
    """Ports chosen at an earlier start: `api` and `ssh:<node>`."""
    saved = _read(state_dir / PORTS_FILE) or {}
    return {str(k): int(v) for k, v in saved.items() if isinstance(v, int) and 0 < v < 65536}


def save_ports(state_dir: Path, ports: dict[str, int]) -> None:
    _write_private(state_dir / PORTS_FILE, dict(ports))
