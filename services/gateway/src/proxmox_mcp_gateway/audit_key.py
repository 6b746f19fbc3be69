"""The audit key file (PMCP_AUDIT_KEY_FILE): the secret the audit chain is sealed with, held by the gateway only.

Generated at the gateway's first start (64 hex characters, mode 0600) when the file is missing; an operator's
own file works too (at least 32 bytes; surrounding white space is ignored). `proxmox-mcp audit verify` reads the
same file and never creates one. The key itself never reaches a log line or an error message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from proxmox_mcp_gateway.audit_chain import AuditKey

log = logging.getLogger(__name__)

MIN_KEY_BYTES = 32


class AuditKeyError(ValueError):
    """The key file cannot be used; the message names the file and the fix (never the key)."""


def load_audit_key(path: Path) -> AuditKey:
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        raise AuditKeyError(f"audit key file {path} does not exist") from None
    except OSError as exc:
        raise AuditKeyError(f"audit key file {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(secret) < MIN_KEY_BYTES:
        raise AuditKeyError(f"audit key file {path} holds {len(secret)} bytes; a key needs at least "
                            f"{MIN_KEY_BYTES} (remove the file to have the gateway generate one)")
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("the audit key file is readable by other users: chmod 600 it", extra={"path": str(path)})
    return AuditKey(secret)


def load_or_create_audit_key(path: Path) -> AuditKey:
    """The key in `path`; a new one written there (0600, fsync'd) when the file does not exist."""
    if not path.exists():
        try:
            _create(path)
        except FileExistsError:
            pass  # another gateway process created it first: use theirs
        except OSError as exc:
            raise AuditKeyError(f"audit key file {path} does not exist and cannot be created "
                                f"({exc.strerror or type(exc).__name__})") from None
        else:
            log.info("generated the audit key", extra={"path": str(path)})
    return load_audit_key(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)  # fails with FileExistsError instead of replacing a key another process wrote
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
