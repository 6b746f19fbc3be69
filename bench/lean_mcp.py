"""The least an MCP client must do for one 2026-era tools/call over streamable HTTP: one keep-alive HTTP/1.1
connection, one stateless POST per call, a JSON answer. The benchmark uses it beside the official client to
show what the server costs without the client's own work on the same cores."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

PROTOCOL = "2026-07-28"


def _request(url: str, token: str, tool: str, arguments: dict[str, object]) -> bytes:
    parts = urlsplit(url)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments, "_meta": {
            "io.modelcontextprotocol/protocolVersion": PROTOCOL,
            "io.modelcontextprotocol/clientInfo": {"name": "lean-bench", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}}}}).encode()
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"MCP-Protocol-Version: {PROTOCOL}\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class LeanMcpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self._reader, self._writer, self._request = reader, writer, request

    async def call(self) -> None:
        """One tools/call; AssertionError unless the server answered 200 with a successful tool result."""
        self._writer.write(self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        answer = json.loads(await self._reader.readexactly(length))
        assert status == b"200" and "result" in answer and not answer["result"].get("isError"), answer


@contextlib.asynccontextmanager
async def lean_client(url: str, token: str, tool: str = "list_vms",
                      arguments: dict[str, object] | None = None) -> AsyncIterator[LeanMcpClient]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield LeanMcpClient(reader, writer, _request(url, token, tool, arguments or {}))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
