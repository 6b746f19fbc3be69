"""Clients the tests use: the official MCP client (HTTP and stdio) and a direct simulator reader."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx2
import jsonschema
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


@contextlib.asynccontextmanager
async def http_client(url: str, token: str | None, mode: str = "auto",
                      verify: ssl.SSLContext | bool = True, **kwargs: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=60, verify=verify)
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
        yield client


@contextlib.asynccontextmanager
async def stdio_mcp_client(argv: list[str], env: dict[str, str], errlog: IO[str], cwd: Path | None = None,
                           mode: str = "auto") -> AsyncIterator[Client]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
    async with Client(stdio_client(params, errlog=errlog), mode=mode) as client:  # type: ignore[arg-type]
        yield client


def assert_matches_output_schema(structured: dict[str, Any] | None, schema: dict[str, Any] | None) -> None:
    assert structured is not None, "tool returned no structured content"
    assert schema is not None, "tool has no outputSchema"
    jsonschema.validate(structured, schema)


class SimClient:
    """Reads the simulator's state directly over HTTPS (admin token, certificate pinned as CA)."""

    def __init__(self, sim: dict[str, Any]) -> None:
        self.sim = sim
        context = ssl.create_default_context(cafile=sim["cert_file"])
        context.check_hostname = False
        self._client = httpx2.Client(base_url=sim["api_url"], verify=context, timeout=10,
                                    headers={"Authorization": sim["admin_token"]["header"]})

    def get(self, path: str, **params: Any) -> Any:
        response = self._client.get(path, params=params or None)
        response.raise_for_status()
        return response.json()["data"]

    def request(self, method: str, path: str, **params: Any) -> Any:
        """A write as the admin token (form-encoded like a Proxmox client); the answer's data."""
        response = self._client.request(method, path, data=params or None)
        response.raise_for_status()
        return response.json()["data"]

    def put(self, path: str, **data: Any) -> Any:
        """Change the simulator's state directly (test set-up that is not what a test checks)."""
        return self.request("PUT", path, **data)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def guests(self) -> list[dict[str, Any]]:
        return list(self.get("/cluster/resources", type="vm"))

    def guest(self, vmid: int) -> dict[str, Any]:
        return next(g for g in self.guests() if g["vmid"] == vmid)
