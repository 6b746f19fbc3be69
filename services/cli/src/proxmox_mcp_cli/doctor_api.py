"""The doctor's Proxmox API checks: port, TLS trust (pin / CA / insecure), certificate expiry, API version,
token validity and the privileges the configured tools need. Credentials are only sent over a connection
whose certificate passed the configured check."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from proxmox_mcp_api_worker.tls import certificate_not_after
from proxmox_mcp_contracts.json_values import is_object
from proxmox_mcp_contracts.settings import ApiSettings

from proxmox_mcp_cli.doctor_report import Report

Connector = Callable[[], socket.socket]
"""Opens a TCP connection to the API (directly, or through the SSH tunnel)."""

ORIGINAL_TOOLS = ("execute_command", "list_vms", "vm_status", "vm_action", "node_status", "proxmox_api")
TOOL_PRIVILEGES: dict[str, tuple[tuple[str, str], ...]] = {
    "list_vms": (("/vms", "VM.Audit"),),
    "vm_status": (("/vms", "VM.Audit"),),
    "vm_action": (("/vms", "VM.PowerMgmt"),),
    "node_status": (("/nodes", "Sys.Audit"),),
}
ROLE_WITH = {"VM.Audit": "PVEAuditor", "Sys.Audit": "PVEAuditor", "VM.PowerMgmt": "PVEVMUser"}
EXPIRY_WARNING_DAYS = 21


class ApiCheckFailed(Exception):
    """A check failed and was reported; the checks after it cannot run."""


def normalize_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").lower().removeprefix("sha256")


def pretty_fingerprint(hex_digest: str) -> str:
    return ":".join(hex_digest[i:i + 2] for i in range(0, len(hex_digest), 2)).upper()


@dataclass
class ApiTrust:
    context: ssl.SSLContext
    pin: str | None
    server_name: str
    describe: str


def trust_for(api: ApiSettings, server_name: str) -> ApiTrust:
    """The same rule the api-worker follows: a pinned fingerprint, else a CA file, else system CAs; or none."""
    if api.fingerprint:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust comes from the pin, checked on every connection
        return ApiTrust(context, normalize_fingerprint(api.fingerprint), server_name, "pinned fingerprint")
    if api.ca_file is not None:
        return ApiTrust(ssl.create_default_context(cafile=str(api.ca_file.expanduser())), None, server_name,
                        f"CA file {api.ca_file}")
    if not api.verify_ssl:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return ApiTrust(context, None, server_name, "nothing (PROXMOX_VERIFY_SSL=false)")
    return ApiTrust(ssl.create_default_context(), None, server_name, "the system's CA certificates")


class ApiProbe:
    """Opens a fresh verified TLS connection per request, so a pin mismatch can never leak the token."""

    def __init__(self, connect: Connector, trust: ApiTrust, timeout: float) -> None:
        self.connect = connect
        self.trust = trust
        self.timeout = timeout

    def handshake(self) -> tuple[ssl.SSLSocket, bytes]:
        raw = self.connect()
        raw.settimeout(self.timeout)
        try:
            tls = self.trust.context.wrap_socket(raw, server_hostname=self.trust.server_name)
        except BaseException:
            raw.close()
            raise
        der = tls.getpeercert(binary_form=True) or b""
        return tls, der

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: dict[str, str] | None = None) -> tuple[int, Any]:
        tls, der = self.handshake()
        if self.trust.pin and hashlib.sha256(der).hexdigest() != self.trust.pin:
            tls.close()
            raise ssl.SSLError("certificate fingerprint does not match the pin")
        connection = http.client.HTTPConnection(self.trust.server_name, timeout=self.timeout)
        connection.sock = tls
        try:
            payload = urllib.parse.urlencode(body).encode() if body else None
            all_headers = {"Accept": "application/json", **(headers or {})}
            if payload is not None:
                all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            connection.request(method, "/api2/json" + path, body=payload, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            data = json.loads(raw).get("data") if raw else None
        except (ValueError, AttributeError):
            data = None
        return response.status, data


def check_tls(report: Report, probe: ApiProbe, api: ApiSettings) -> None:
    trust = probe.trust
    try:
        tls, der = probe.handshake()
        tls.close()
    except ssl.SSLCertVerificationError as exc:
        report.fail("api.tls", f"the certificate is not trusted by {trust.describe}: {exc.verify_message}",
                    _pin_fix(probe))
        raise ApiCheckFailed from None
    except (ssl.SSLError, OSError) as exc:
        report.fail("api.tls", f"TLS handshake failed ({type(exc).__name__}: {exc})",
                    "is this port the Proxmox API (https on 8006)? check pveproxy on the host")
        raise ApiCheckFailed from None
    actual = hashlib.sha256(der).hexdigest()
    days = (certificate_not_after(der) - time.time()) / 86400 if der else None
    expiry = "" if days is None else f"; expires in {days:.0f} days"
    if trust.pin is not None and actual != trust.pin:
        report.fail("api.tls", f"the certificate's fingerprint {pretty_fingerprint(actual)} is not the pinned one",
                    "if the certificate was renewed, verify it on the host (pvenode cert info) and pin the new one: "
                    f"PROXMOX_FINGERPRINT={pretty_fingerprint(actual)}; otherwise someone may be intercepting")
        raise ApiCheckFailed
    if not api.verify_ssl and trust.pin is None and api.ca_file is None:
        report.warn("api.tls", f"TLS is not verified (PROXMOX_VERIFY_SSL=false){expiry}",
                    f"pin the certificate instead: PROXMOX_FINGERPRINT={pretty_fingerprint(actual)}")
    else:
        report.ok("api.tls", f"certificate trusted by {trust.describe}{expiry}")
    if days is not None and days < EXPIRY_WARNING_DAYS:
        report.warn("api.certificate", f"the API certificate expires in {days:.0f} days",
                    "renew it (pvenode acme cert order / pvecm updatecerts) and update the pinned fingerprint")


def _pin_fix(probe: ApiProbe) -> str:
    try:
        insecure = ApiProbe(probe.connect, trust_for(ApiSettings(verify_ssl=False), probe.trust.server_name),
                            probe.timeout)
        tls, der = insecure.handshake()
        tls.close()
        pin = pretty_fingerprint(hashlib.sha256(der).hexdigest())
    except (ssl.SSLError, OSError):
        pin = "<sha256 of /etc/pve/local/pve-ssl.pem>"
    return (f"Proxmox uses a self-signed certificate: after checking it on the host (pvenode cert info), pin it "
            f"with PROXMOX_FINGERPRINT={pin} (api.fingerprint), or set PROXMOX_CA_FILE to /etc/pve/pve-root-ca.pem")


def auth_headers(report: Report, probe: ApiProbe, api: ApiSettings) -> dict[str, str]:
    if api.token_name and api.token_value is not None:
        return {"Authorization": f"PVEAPIToken={api.user}!{api.token_name}={api.token_value.get_secret_value()}"}
    if api.password is not None:
        status, data = probe.request("POST", "/access/ticket",
                                     body={"username": api.user, "password": api.password.get_secret_value()})
        if status != 200 or not isinstance(data, dict) or "ticket" not in data:
            report.fail("api.auth", f"login as {api.user} with the password failed (HTTP {status})",
                        "check PROXMOX_USER (with its realm, e.g. root@pam) and PROXMOX_PASSWORD")
            raise ApiCheckFailed
        return {"Cookie": f"PVEAuthCookie={data['ticket']}"}
    report.fail("api.auth", "no API credentials configured",
                "create a token (pveum user token add USER mcp --privsep 1) and set PROXMOX_TOKEN_NAME and "
                "PROXMOX_TOKEN_VALUE, or set PROXMOX_PASSWORD")
    raise ApiCheckFailed


def check_version_and_auth(report: Report, probe: ApiProbe, api: ApiSettings) -> dict[str, str]:
    headers = auth_headers(report, probe, api)
    who = f"token {api.user}!{api.token_name}" if "Authorization" in headers else f"user {api.user}"
    try:
        status, data = probe.request("GET", "/version", headers)
    except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
        report.fail("api.version", f"GET /version failed ({type(exc).__name__})", "see the TLS check above")
        raise ApiCheckFailed from None
    if status == 401:
        report.fail("api.auth", f"the API rejected {who} (401)",
                    f"check that the token exists and is not expired: pveum user token list {api.user}; the "
                    "value is the secret shown once at creation (PROXMOX_TOKEN_VALUE)")
        raise ApiCheckFailed
    if status != 200 or not is_object(data):
        report.fail("api.version", f"GET /version answered HTTP {status}", "check pveproxy's log on the host")
        raise ApiCheckFailed
    report.ok("api.auth", f"{who} accepted")
    report.ok("api.version", f"Proxmox VE {data.get('version', '?')} (release {data.get('release', '?')})")
    return headers


def check_privileges(report: Report, probe: ApiProbe, api: ApiSettings, headers: dict[str, str],
                     tools: list[str]) -> None:
    needed: dict[tuple[str, str], list[str]] = {}
    for tool in tools:
        for requirement in TOOL_PRIVILEGES.get(tool, ()):
            needed.setdefault(requirement, []).append(tool)
    if not needed:
        report.skip("api.privileges", "the configured tools need no specific privileges")
        return
    held: dict[str, set[str]] = {}
    for path in sorted({path for path, _ in needed}):
        query = urllib.parse.urlencode({"path": path})
        try:
            status, data = probe.request("GET", f"/access/permissions?{query}", headers)
        except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
            report.skip("api.privileges", f"cannot read the permissions ({type(exc).__name__})")
            return
        if status != 200 or not is_object(data):
            report.skip("api.privileges", f"cannot read the permissions (GET /access/permissions: HTTP {status})")
            return
        held[path] = {priv for entry in data.values() if is_object(entry)
                      for priv, granted in entry.items() if granted}
    missing = [(path, priv, users) for (path, priv), users in sorted(needed.items()) if priv not in held[path]]
    if not missing:
        granted = ", ".join(f"{priv} on {path}" for path, priv in sorted(needed))
        report.ok("api.privileges", f"has {granted}")
        return
    subject = f"--tokens '{api.user}!{api.token_name}'" if "Authorization" in headers else f"--users '{api.user}'"
    lacks = "; ".join(f"{priv} on {path} (needed by {', '.join(users)})" for path, priv, users in missing)
    fixes = sorted({f"pveum acl modify {path} {subject} --roles {ROLE_WITH.get(priv, 'PVEVMAdmin')}"
                    for path, priv, _ in missing})
    note = " (a privilege-separated token also needs its user to hold them)" if "Authorization" in headers else ""
    report.fail("api.privileges", f"the {'token' if 'Authorization' in headers else 'user'} lacks {lacks}",
                "; ".join(fixes) + note)


def check_api(report: Report, api: ApiSettings, connect: Connector, server_name: str, tools: list[str],
              timeout: float) -> None:
    """TLS, version and auth, privileges: each step only when the one before passed."""
    probe = ApiProbe(connect, trust_for(api, server_name), timeout)
    try:
        check_tls(report, probe, api)
        headers = check_version_and_auth(report, probe, api)
        check_privileges(report, probe, api, headers, tools)
    except ApiCheckFailed:
        return
