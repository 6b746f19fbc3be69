"""The direct HTTPS backend: the only module that touches proxmoxer.

We use proxmoxer's https backend parts (its session class, its API-token auth, its error type) rather than the
`ProxmoxAPI` facade, for two reasons the facade cannot meet:
- per-call timeouts: the facade reads one timeout fixed at construction, we need min(time left, ceiling);
- pinned TLS for passwords: proxmoxer's ticket login posts the password with a bare `requests.post`, outside
  the session and so outside the pinned adapter. Our ticket login goes through the pinned session instead.
Blocking requests run in this backend's own thread pool, so a slow Proxmox never blocks the event loop and
never starves other calls (asyncio's default pool has only a few threads on small machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_object
from proxmox_mcp_contracts.settings import ApiSettings
from proxmoxer.backends.https import (  # pyright: ignore[reportMissingTypeStubs] (proxmoxer ships no types)
    JsonSerializer,
    ProxmoxHTTPApiTokenAuth,
    ProxmoxHTTPAuthBase,
    ProxmoxHttpSession,
)
from urllib3.exceptions import NewConnectionError

from proxmox_mcp_api_worker.backend import Method, Params
from proxmox_mcp_api_worker.errors import PveHttpError, clean_message, to_failure
from proxmox_mcp_api_worker.metrics import observe_api_call
from proxmox_mcp_api_worker.tls import TlsTrust, fetch_certificate, make_adapter, tls_failure

log = logging.getLogger(__name__)

TICKET_RENEW_AGE = 3600.0
"""Proxmox tickets live two hours; renew after one, as proxmoxer does."""


class CredentialsMissing(ValueError):
    """Neither an API token nor a password is configured for the cluster."""


class _SessionAuth(ProxmoxHTTPAuthBase):
    """proxmoxer's session takes `verify` (our TLS trust) and the default timeout from the auth object."""

    def __init__(self, *, verify_ssl: bool | str, timeout: float) -> None:
        super().__init__()  # pyright: ignore[reportUnknownMemberType] (proxmoxer leaves cert/proxies untyped)
        self.verify_ssl: bool | str = verify_ssl
        self.timeout: float = timeout
        self.service = "PVE"


class _NoAuth(_SessionAuth):
    """For the ticket login itself."""


class TicketAuth(_SessionAuth):
    """User/password auth: a PVEAuthCookie ticket (and CSRF token for writes), renewed before it expires."""

    def __init__(self, user: str, password: str, *, verify_ssl: bool | str, timeout: float) -> None:
        super().__init__(verify_ssl=verify_ssl, timeout=timeout)
        self.user = user
        self._password = password
        self._lock = threading.Lock()
        self._ticket: str | None = None
        self._csrf: str | None = None
        self._born = 0.0
        self._stale = False

    @property
    def ticket(self) -> str | None:
        return self._ticket

    def ensure(self, login: Any, timeout: float) -> None:
        """Log in (through the given callable) when there is no ticket, it was refused, or it is due for renewal."""
        with self._lock:
            if self._ticket is not None and not self._stale and time.monotonic() - self._born < TICKET_RENEW_AGE:
                return
            self._ticket, self._csrf = login(self.user, self._password, timeout)
            self._born = time.monotonic()
            self._stale = False

    def invalidate(self, ticket: str | None) -> None:
        """Proxmox refused this ticket: the next request logs in again (other threads keep the old one until then,
        so a request under way never lacks a ticket)."""
        with self._lock:
            if ticket is not None and self._ticket == ticket:
                self._stale = True

    def __call__(self, req: Any) -> Any:
        if self._ticket is None:
            raise ServiceFailure(ErrorCode.INTERNAL, "no Proxmox ticket (login did not run)")
        req.headers["Cookie"] = f"PVEAuthCookie={self._ticket}"
        if req.method != "GET" and self._csrf:
            req.headers["CSRFPreventionToken"] = self._csrf
        return req


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class HttpsBackend:
    """PveBackend over HTTPS (proxmoxer session) to one API endpoint of a cluster."""

    def __init__(
        self,
        cluster: str,
        api: ApiSettings,
        host: str,
        *,
        port: int | None = None,
        threads: int = 32,
        mode: str = "direct",
    ) -> None:
        self.cluster = cluster
        self.host = host
        self.port = port or api.port
        self.ceiling = api.timeout
        self.trust = TlsTrust.from_settings(api)
        self._mode = mode
        self._base_url = f"https://{_bracketed(host)}:{self.port}/api2/json"
        self._session = ProxmoxHttpSession()
        self._session.trust_env = False  # no proxy or CA bundle from the environment: trust is configured
        self._session.headers["Connection"] = "keep-alive"
        self._session.headers["accept"] = JsonSerializer().get_accept_types()
        self._session.mount("https://", make_adapter(self.trust, threads))
        self._auth = self._make_auth(api)
        self._session.auth = self._auth
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"pmcp-api-{cluster}")
        self._closed = False

    def _make_auth(self, api: ApiSettings) -> ProxmoxHTTPAuthBase:
        if api.token_name and api.token_value is not None:
            user, token_name = api.user, api.token_name
            if "!" in token_name:  # the full token id "user@realm!name" is accepted as the name too
                user, token_name = token_name.split("!", 1)
            return ProxmoxHTTPApiTokenAuth(user, token_name, api.token_value.get_secret_value(),
                                           verify_ssl=self.trust.verify, timeout=self.ceiling, service="PVE")
        if api.password is not None:
            return TicketAuth(api.user, api.password.get_secret_value(), verify_ssl=self.trust.verify,
                              timeout=self.ceiling)
        raise CredentialsMissing(
            "no Proxmox API credentials: set api.token_name and api.token_value (PROXMOX_TOKEN_NAME, "
            "PROXMOX_TOKEN_VALUE) or api.password (PROXMOX_PASSWORD)"
        )

    # --- PveBackend -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def insecure_tls(self) -> bool:
        return self.trust.insecure

    @property
    def waits_for_tasks(self) -> bool:
        return False

    def retarget(self, host: str, port: int) -> None:
        """Send the next requests to host:port (the ssh-tunnel mode's new local forward); trust and auth stay."""
        self.host, self.port = host, port
        self._base_url = f"https://{_bracketed(host)}:{port}/api2/json"

    @property
    def auth_kind(self) -> str:
        return "ticket" if isinstance(self._auth, TicketAuth) else "token"

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        if self._closed:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, "the api-worker is shutting down", retryable=True)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._request_blocking, method, path, params, timeout)

    async def certificate(self, timeout: float) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fetch_certificate, self.host, self.port, timeout)
        except OSError:
            return None

    async def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self._session.close()

    # --- blocking part (runs in the pool) ---------------------------------------------------

    def _request_blocking(self, method: Method, path: str, params: Params | None, timeout: float) -> Any:
        if timeout <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "no time left before the call's deadline to ask Proxmox")
        for attempt in (1, 2):
            ticket = None
            if isinstance(self._auth, TicketAuth):
                self._auth.ensure(self._login, timeout)
                ticket = self._auth.ticket
            response = self._send(method, path, params, timeout)
            if response.status_code == 401 and isinstance(self._auth, TicketAuth) and attempt == 1:
                # The ticket expired or Proxmox restarted: a 401 means nothing ran, so one re-login is safe.
                self._auth.invalidate(ticket)
                continue
            return _data_or_raise(response, method, path)
        raise AssertionError("unreachable")

    def _send(self, method: Method, path: str, params: Params | None, timeout: float,
              auth: ProxmoxHTTPAuthBase | None = None) -> requests.Response:
        query = dict(params or {}) if method in ("GET", "DELETE") else None
        body = dict(params or {}) if method in ("POST", "PUT") else None
        started = time.perf_counter()
        status: int | None = None
        try:
            # proxmoxer's session.request has no annotations; it returns requests' Response.
            response = self._session.request(method, self._base_url + path, params=query, data=body,  # pyright: ignore[reportUnknownMemberType]
                                             timeout=(timeout, timeout), auth=auth)
            status = response.status_code
            return response
        except requests.exceptions.RequestException as exc:
            raise self._transport_failure(exc, method, path, timeout) from None
        except OSError as exc:  # e.g. the CA file went away after start-up
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"cannot set up TLS with {self.trust.describe} "
                                 f"({exc.strerror or type(exc).__name__})") from None
        finally:
            observe_api_call(self.cluster, method, status, time.perf_counter() - started)

    def _login(self, user: str, password: str, timeout: float) -> tuple[str, str]:
        """POST /access/ticket through the pinned session; returns (ticket, CSRF token)."""
        anonymous = _NoAuth(verify_ssl=self.trust.verify, timeout=timeout)
        response = self._send("POST", "/access/ticket", {"username": user, "password": password}, timeout,
                              auth=anonymous)
        if response.status_code in (401, 403):
            raise ServiceFailure(
                ErrorCode.UPSTREAM_ERROR,
                f"Proxmox rejected the worker's user/password login ({response.status_code}); check api.user "
                "(with its realm, e.g. root@pam) and api.password",
            )
        data = _data_or_raise(response, "POST", "/access/ticket")
        if not is_object(data) or "ticket" not in data or "CSRFPreventionToken" not in data:
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "Proxmox's login answer has no ticket")
        if data.get("NeedTFA"):
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, "the Proxmox user needs two-factor login; use an API "
                                 "token for the api-worker instead")
        return str(data["ticket"]), str(data["CSRFPreventionToken"])

    def _transport_failure(self, exc: requests.exceptions.RequestException, method: str, path: str,
                           timeout: float) -> ServiceFailure:
        where = f"the Proxmox API of cluster {self.cluster}"
        bound_by_deadline = timeout < self.ceiling
        log.warning("proxmox request failed", extra={"cluster": self.cluster, "method": method, "path": path,
                                                      "error_type": type(exc).__name__})
        if isinstance(exc, requests.exceptions.SSLError):
            return tls_failure(exc, self.trust)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            if bound_by_deadline:
                return ServiceFailure(ErrorCode.TIMEOUT, f"the call's deadline passed while connecting to {where}")
            return ServiceFailure(ErrorCode.UNAVAILABLE, f"could not connect to {where} within {timeout:g}s",
                                  retryable=True)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return ServiceFailure(
                ErrorCode.TIMEOUT,
                f"Proxmox did not answer {method} {path} within {timeout:g}s"
                + ("" if method == "GET" else "; the outcome is unknown, check before retrying"),
                retryable=method == "GET",
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            if _nothing_sent(exc):
                return ServiceFailure(ErrorCode.UNAVAILABLE, f"cannot connect to {where} (connection refused or "
                                      "host unreachable)", retryable=True)
            return ServiceFailure(
                ErrorCode.UNAVAILABLE,
                f"the connection to {where} broke during {method} {path}"
                + ("" if method == "GET" else "; the outcome is unknown, check before retrying"),
                retryable=method == "GET",
            )
        return ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"request to {where} failed ({type(exc).__name__})")


def _nothing_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection never opened (refused, unreachable, DNS): no request reached Proxmox."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError)


def _data_or_raise(response: requests.Response, method: str, path: str) -> Any:
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    if response.status_code >= 400:
        raise to_failure(_http_error(response, body), method=method, path=path)
    if not is_object(body) or "data" not in body:
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"Proxmox answered {method} {path} with something that is "
                             f"not an API reply (HTTP {response.status_code})")
    return body["data"]


def _http_error(response: requests.Response, body: Any) -> PveHttpError:
    # Real PVE puts the error text in the reason phrase ("500 CT 100 already running"); some answers carry it
    # in the body as well. The body's `errors` lists per-parameter reasons of a 400.
    message = response.reason or ""
    generic = not message or message.lower() in {"internal server error", "bad request", "forbidden", "unauthorized"}
    if generic and is_object(body) and isinstance(body.get("message"), str) and body["message"].strip():
        message = body["message"]
    errors: dict[str, Any] = body["errors"] if is_object(body) and is_object(body.get("errors")) else {}
    return PveHttpError(status=response.status_code, message=clean_message(message), errors=errors or {})
