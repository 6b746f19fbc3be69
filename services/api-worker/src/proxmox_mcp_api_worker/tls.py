"""TLS trust for the Proxmox API: a pinned certificate fingerprint, else a CA file, else the system CAs;
no verification only when explicitly configured (PROXMOX_VERIFY_SSL=false).

The pin is enforced by urllib3 itself (`assert_fingerprint`) during every new TLS handshake, before a request
(and so before any credential) is written to the connection.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ApiSettings
from requests.adapters import HTTPAdapter

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_GOT = re.compile(r'got "([0-9a-fA-F]+)"')


def normalize_fingerprint(value: str) -> str:
    """'AB:CD:…' / 'sha256:abcd…' / 'SHA256 Fingerprint=AB:…' → 64 lowercase hex digits (SHA-256 only)."""
    text = value.strip().lower()
    text = text.split("=", 1)[1] if "=" in text else text
    text = text.removeprefix("sha256").lstrip(":").replace(":", "").replace(" ", "")
    if not _HEX64.match(text):
        raise ValueError(
            "the API certificate fingerprint must be a SHA-256 digest (64 hex digits, colons optional), e.g. the "
            "output of `openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256`"
        )
    return text


def pretty_fingerprint(hex_digest: str) -> str:
    return ":".join(hex_digest[i : i + 2] for i in range(0, len(hex_digest), 2)).upper()


@dataclass(frozen=True)
class TlsTrust:
    verify: bool | str
    """What requests gets as `verify`: False under a pin (the pin is the check), a CA file path, or True."""
    fingerprint: str | None
    """Pinned SHA-256 (64 lowercase hex digits)."""
    insecure: bool
    describe: str

    @classmethod
    def from_settings(cls, api: ApiSettings) -> TlsTrust:
        if api.fingerprint:
            pin = normalize_fingerprint(api.fingerprint)
            return cls(verify=False, fingerprint=pin, insecure=False, describe="the pinned certificate fingerprint")
        if api.ca_file is not None:
            path = api.ca_file.expanduser()
            if not path.is_file():
                raise ValueError(f"the API CA file {path} does not exist")
            return cls(verify=str(path), fingerprint=None, insecure=False, describe=f"the CA file {path}")
        if not api.verify_ssl:
            return cls(verify=False, fingerprint=None, insecure=True, describe="nothing (verification is off)")
        return cls(verify=True, fingerprint=None, insecure=False, describe="the system CA certificates")


class PinnedFingerprintAdapter(HTTPAdapter):
    """Accepts a server only when its certificate's SHA-256 is the pinned one (chain and name not checked)."""

    def __init__(self, fingerprint: str, **kwargs: Any) -> None:
        self._fingerprint = fingerprint
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, assert_fingerprint=self._fingerprint, **pool_kwargs)

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: bool | str = True,
             cert: Any = None, proxies: Any = None) -> Any:
        # A self-signed Proxmox certificate fails any chain check: the pin replaces it, never adds to it.
        return super().send(request, stream=stream, timeout=timeout, verify=False, cert=cert, proxies=proxies)


def make_adapter(trust: TlsTrust, pool_size: int) -> HTTPAdapter:
    if trust.fingerprint is not None:
        return PinnedFingerprintAdapter(trust.fingerprint, pool_connections=1, pool_maxsize=pool_size)
    return HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)


def tls_failure(exc: BaseException, trust: TlsTrust) -> ServiceFailure:
    """A failed handshake as a precise, non-retryable error that says how to fix the trust settings."""
    text = " ".join(str(exc).split())
    if "Fingerprints did not match" in text and trust.fingerprint is not None:
        got = _GOT.search(text)
        seen = pretty_fingerprint(got.group(1).lower()) if got else "a different certificate"
        return ServiceFailure(
            ErrorCode.PERMISSION_DENIED,
            f"certificate fingerprint mismatch: expected {pretty_fingerprint(trust.fingerprint)}, got {seen}; "
            "if the Proxmox certificate was renewed, check it on the host (pvenode cert info) and pin the new one, "
            "otherwise someone may be intercepting the connection",
            details={"expected": pretty_fingerprint(trust.fingerprint), "got": seen},
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text or "Hostname mismatch" in text:
        reason = _verify_reason(text)
        return ServiceFailure(
            ErrorCode.PERMISSION_DENIED,
            f"the Proxmox API certificate is not trusted by {trust.describe} ({reason}); pin its fingerprint "
            "(api.fingerprint / PROXMOX_FINGERPRINT) or set the CA file (api.ca_file / PROXMOX_CA_FILE)",
        )
    return ServiceFailure(ErrorCode.UNAVAILABLE, "TLS handshake with the Proxmox API failed; is this port the "
                          "Proxmox API (https, 8006)?", retryable=True)


def _verify_reason(text: str) -> str:
    for marker in ("Hostname mismatch", "self-signed certificate", "unable to get local issuer certificate",
                   "certificate has expired", "certificate verify failed"):
        if marker in text:
            start = text.index(marker)
            return text[start:].split(")")[0].split("(_ssl")[0].strip(" ,'\"")
    return "certificate verify failed"


def fetch_certificate(host: str, port: int, timeout: float) -> bytes | None:
    """The certificate the server presents (no trust decision, nothing sent): for expiry metrics only."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host if not _is_ip(host) else None) as tls:
        return tls.getpeercert(binary_form=True)


def certificate_not_after(der: bytes) -> float:
    """notAfter (Unix time) of a DER certificate, e.g. from fetch_certificate()."""
    from cryptography import x509  # on first use: nothing else in the worker loads cryptography.x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
    except OSError:
        return False
    return True
