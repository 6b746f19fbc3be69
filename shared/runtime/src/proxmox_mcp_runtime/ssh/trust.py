"""Host key trust: known_hosts entries and pinned SHA256 fingerprints. Unknown and changed keys are refused."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import paramiko
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import SshSettings

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
# Host key algorithms paramiko negotiates for each key type found in known_hosts.
_ALGORITHMS_FOR_TYPE = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


class HostKeyRefused(ServiceFailure):
    """The presented host key is not trusted; connecting further would risk talking to an impostor."""

    def __init__(self, message: str, *, changed: bool) -> None:
        super().__init__(ErrorCode.PERMISSION_DENIED, message, retryable=False)
        self.changed = changed


def normalize_fingerprint(value: str) -> str:
    """'SHA256:abc=' / 'abc' → 'SHA256:abc' (the ssh-keygen -l form, without base64 padding)."""
    text = value.strip()
    if text.upper().startswith("SHA256:"):
        text = text[len("SHA256:") :]
    return "SHA256:" + text.rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare for port 22, '[host]:port' otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class HostKeyVerifier:
    """Decides whether a server's host key is the one we expect for (address, port)."""

    known_hosts_files: tuple[Path, ...]
    pinned: frozenset[str]
    accept_unknown: bool

    @classmethod
    def from_settings(cls, settings: SshSettings) -> HostKeyVerifier:
        if settings.known_hosts is not None:
            files: tuple[Path, ...] = (settings.known_hosts.expanduser(),)
        else:
            files = (DEFAULT_KNOWN_HOSTS.expanduser(),)
        return cls(
            known_hosts_files=files,
            pinned=frozenset(normalize_fingerprint(f) for f in settings.host_key_fingerprints if f.strip()),
            accept_unknown=settings.accept_unknown_host_keys,
        )

    def known_keys(self, address: str, port: int) -> dict[str, paramiko.PKey]:
        """Key type → key for this host from the known_hosts files (hashed entries included)."""
        found: dict[str, paramiko.PKey] = {}
        name = known_hosts_name(address, port)
        for path in self.known_hosts_files:
            if not path.is_file():
                continue
            host_keys = paramiko.HostKeys()
            try:
                host_keys.load(str(path))
            except (OSError, paramiko.SSHException, ValueError) as exc:
                log.warning("cannot read known_hosts file", extra={"error_type": type(exc).__name__})
                continue
            entries = host_keys.lookup(name)
            if entries:
                found.update({key_type: entries[key_type] for key_type in entries})
        return found

    def preferred_algorithms(self, address: str, port: int, offered: tuple[str, ...]) -> list[str] | None:
        """Host key algorithms reordered so the server presents a key type we know (None: keep paramiko's)."""
        known_types = list(self.known_keys(address, port))
        if not known_types:
            return None
        first: list[str] = []
        for key_type in known_types:
            for algorithm in _ALGORITHMS_FOR_TYPE.get(key_type, (key_type,)):
                if algorithm in offered and algorithm not in first:
                    first.append(algorithm)
        return first + [a for a in offered if a not in first]

    def verify(self, node: str, address: str, port: int, key: paramiko.PKey) -> None:
        """Return when key is trusted; raise HostKeyRefused otherwise (naming its fingerprint, never the key)."""
        presented = key.fingerprint
        known = self.known_keys(address, port)
        if presented in self.pinned:
            return
        same_type = known.get(key.get_name())
        if same_type is not None and same_type == key:
            return
        if self.pinned or known:
            raise HostKeyRefused(
                f"host key for {node} does not match the pinned key (presented {key.get_name()} {presented}); "
                "if the host was reinstalled, verify the new key out of band and update known_hosts or "
                "host_key_fingerprints",
                changed=True,
            )
        if self.accept_unknown:
            log.warning(
                "accepting an unknown SSH host key (accept_unknown_host_keys is on: demo only)",
                extra={"node": node, "fingerprint": presented},
            )
            return
        raise HostKeyRefused(
            f"host key for {node} is unknown (presented {key.get_name()} {presented}); add it to the known_hosts "
            "file or pin it in host_key_fingerprints after checking it on the host (ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub)",
            changed=False,
        )
