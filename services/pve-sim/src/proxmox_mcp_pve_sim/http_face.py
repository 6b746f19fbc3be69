"""The HTTPS face: a small HTTP/1.1 server shaped like pve-http-server.

Its own server (not an ASGI stack) because Proxmox puts the error message in the HTTP reason
phrase, which ASGI cannot express. Keep-alive, Content-Length bodies only (chunked requests get
501, as on a node), gzip for large answers, `Server: pve-api-daemon/3.0`, connection closed after
an error status.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import ssl
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote

from proxmox_mcp_contracts.json_values import is_object

from proxmox_mcp_pve_sim.access import Caller
from proxmox_mcp_pve_sim.control import handle_control
from proxmox_mcp_pve_sim.dispatch import dispatch
from proxmox_mcp_pve_sim.errors import ApiError
from proxmox_mcp_pve_sim.http_response import Response
from proxmox_mcp_pve_sim.sim import Sim

log = logging.getLogger("pve-sim.http")

MAX_HEADER_BYTES = 8 * 1024
MAX_BODY_BYTES = 64 * 1024
IDLE_TIMEOUT = 30.0
BASE = "/api2/"
KNOWN_METHODS = ("GET", "POST", "PUT", "DELETE")
ANONYMOUS = Caller("")


def json_response(status: int, payload: Any, message: str | None = None) -> Response:
    reason = (message or "").split("\n", 1)[0] or None
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), reason)


def api_error_response(error: ApiError) -> Response:
    payload: dict[str, Any] = {"data": None, "message": error.message + "\n"}
    if error.errors:
        payload["errors"] = error.errors
    return json_response(error.status, payload, error.message)


def auth_failure(message: str) -> Response:
    """What the auth handler answers: 401, reason = message, empty data."""
    return json_response(401, {"data": None}, message)


class Request:
    __slots__ = ("body", "headers", "method", "path", "query", "version")

    def __init__(self, method: str, path: str, query: str, version: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.body = body


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpFace:
    def __init__(self, sim: Sim, *, auth_fail_delay: float = 0.0) -> None:
        self.sim = sim
        self.auth_fail_delay = auth_fail_delay
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self, sock: Any, ssl_context: ssl.SSLContext) -> asyncio.Server:
        return await asyncio.start_server(
            self._on_connection, sock=sock, ssl=ssl_context, limit=MAX_HEADER_BYTES + 1024, ssl_handshake_timeout=10
        )

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except asyncio.CancelledError:
            writer.transport.abort()  # shutting down: do not wait for the client's TLS close
            raise
        finally:
            if task is not None:
                self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 1)

    async def close_connections(self) -> None:
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(BaseException):
                await task

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await asyncio.wait_for(self._read_request(reader), IDLE_TIMEOUT)
            except BadRequest as exc:
                await self._send(
                    writer, json_response(exc.status, {"data": None}, exc.message), "HTTP/1.1", gzip_ok=False
                )
                return
            if request is None:
                return
            if self.sim.api_node is None and unquote(request.path).startswith(BASE):
                writer.transport.abort()  # every node is down: the API is gone, like a dead host's
                return
            response = await self.respond(request)
            keep_alive = not response.close and _wants_keep_alive(request)
            response.close = not keep_alive
            accepts_gzip = "gzip" in request.headers.get("accept-encoding", "")
            await self._send(writer, response, request.version, gzip_ok=accepts_gzip)
            if not keep_alive:
                return

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise BadRequest(400, "bad request") from None
            return None
        except asyncio.LimitOverrunError:
            raise BadRequest(400, "http header too large") from None
        lines = head.decode("latin-1").split("\r\n")
        while lines and lines[0] == "":
            lines.pop(0)
        parts = lines[0].split(" ") if lines else []
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise BadRequest(400, "bad request")
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise BadRequest(506, f"http protocol version {version[5:]} not supported")
        headers: dict[str, str] = {}
        header_lines = [line for line in lines[1:] if line]
        if len(header_lines) >= 64:
            raise BadRequest(400, "too many http header lines (> 64)")
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise BadRequest(506, "unable to parse request header")
            key = name.lower()
            value = value.strip()
            joiner = "; " if key == "cookie" else ", "
            headers[key] = f"{headers[key]}{joiner}{value}" if key in headers else value
        body = b""
        transfer_encoding = headers.get("transfer-encoding")
        if transfer_encoding:
            if transfer_encoding.lower() == "chunked":
                raise BadRequest(501, "chunked transfer encoding not supported")
            raise BadRequest(501, f"Unknown transfer encoding '{transfer_encoding}'")
        length_text = headers.get("content-length", "0") or "0"
        if not length_text.isdigit():
            raise BadRequest(400, "bad request")
        length = int(length_text)
        if length:
            if method not in ("POST", "PUT"):
                raise BadRequest(501, f"Unexpected content for method '{method}'")
            if length > MAX_BODY_BYTES:
                raise BadRequest(501, "for data too large")
            body = await reader.readexactly(length)
        path, _, query = target.partition("?")
        return Request(method, path, query, version, headers, body)

    async def _send(self, writer: asyncio.StreamWriter, response: Response, version: str, *, gzip_ok: bool) -> None:
        body = response.body
        extra = ""
        if gzip_ok and len(body) > 1024:
            body = gzip.compress(body, compresslevel=5)
            extra = "Content-Encoding: gzip\r\n"
        date = formatdate(usegmt=True)
        reason = response.reason.encode("latin-1", "replace").decode("latin-1").replace("\r", " ").replace("\n", " ")
        head = (
            f"{version if version in ('HTTP/1.0', 'HTTP/1.1') else 'HTTP/1.1'} {response.status} {reason}\r\n"
            f"Cache-Control: max-age=0\r\nConnection: {'close' if response.close else 'Keep-Alive'}\r\n"
            f"Date: {date}\r\nPragma: no-cache\r\nServer: pve-api-daemon/3.0\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: {response.content_type}\r\n{extra}"
            f"Expires: {date}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()

    async def respond(self, request: Request) -> Response:
        if request.method not in KNOWN_METHODS:
            return Response(501, b"", f"method '{request.method}' not available")
        path = unquote(request.path)
        if path.startswith("/_sim/") or path == "/_sim":
            return await handle_control(self.sim, request.method, path, request.headers, request.body)
        if not path.startswith(BASE):
            if path in ("/", "/index.html") and request.method == "GET":
                return Response(
                    200,
                    b"<!DOCTYPE html><title>pve-sim</title><p>pve-sim: a simulated Proxmox VE",
                    content_type="text/html;charset=UTF-8",
                )
            return json_response(501, {"data": None}, "no such uri")
        fmt, _, rel = path[len(BASE) :].partition("/")
        rel = "/" + rel.strip("/")
        while "//" in rel:
            rel = rel.replace("//", "/")
        if fmt != "json":
            return json_response(501, {"data": None}, f"no such uri (format '{fmt}' is not supported by pve-sim)")
        caller = self._authenticate(request, rel)
        if isinstance(caller, Response):
            if self.auth_fail_delay:
                await asyncio.sleep(self.auth_fail_delay)
            return caller
        try:
            params = _parameters(request)
        except ApiError as exc:
            return api_error_response(exc)
        self.sim.requests[f"{request.method} {rel}"] += 1
        result = await dispatch(self.sim, caller, request.method, rel, params)
        if result.status == 200:
            payload: dict[str, Any] = {"data": result.data}
            if result.total is not None:
                payload["total"] = result.total
            return json_response(200, payload)
        if result.status == 401 and self.auth_fail_delay:
            await asyncio.sleep(self.auth_fail_delay)
        return api_error_response(ApiError(result.status, result.message or "", result.errors))

    def _authenticate(self, request: Request, rel: str) -> Caller | Response:
        access = self.sim.access
        headers = request.headers
        ticket = _cookie(headers.get("cookie", ""), "PVEAuthCookie")
        authorization = headers.get("authorization", "")
        if not ticket and authorization.startswith("PVEAuthCookie="):
            ticket = authorization.split("=", 1)[1].strip()
        open_call = (rel == "/access/domains" and request.method == "GET") or (
            rel == "/access/ticket" and request.method in ("GET", "POST")
        )
        if ticket:
            userid = access.verify_ticket(unquote(ticket))
            if userid is None:
                return ANONYMOUS if open_call else auth_failure("invalid PVE ticket")
            if (
                request.method != "GET"
                and not open_call
                and not access.verify_csrf(headers.get("csrfpreventiontoken"), userid)
            ):
                return auth_failure("Permission denied - invalid csrf token")
            return Caller(userid)
        if authorization.startswith("PVEAPIToken"):
            try:
                return access.caller_for_token(authorization)
            except ApiError as exc:
                return ANONYMOUS if open_call else auth_failure(exc.message)
        return ANONYMOUS if open_call else auth_failure("No ticket")


def _wants_keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if "close" in connection:
        return False
    return request.version == "HTTP/1.1" or "keep-alive" in connection


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _merge(target: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    for key, value in pairs:
        if key in target:
            existing = target[key]
            target[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            target[key] = value


def _parameters(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    _merge(params, parse_qsl(request.query, keep_blank_values=True, errors="replace"))
    if not request.body:
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            decoded = json.loads(request.body)
        except ValueError:
            raise ApiError(400, "Parameter verification failed.", {"_root": "unable to parse JSON body"}) from None
        if not is_object(decoded):
            raise ApiError(400, "Parameter verification failed.", {"_root": "JSON body must be an object"})
        params.update(decoded)
        return params
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise ApiError(506, f"upload 'Content-Type '{content_type}' not implemented")
    body_params: dict[str, Any] = {}
    _merge(body_params, parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace"))
    params.update(body_params)
    return params
