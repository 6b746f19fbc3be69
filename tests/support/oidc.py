"""A real OpenID provider for the OAuth tests: node-oidc-provider (OpenID Certified) from npm, run by
oidc_provider.mjs beside this file on a loopback port, issuing JWT access tokens through the client-credentials
grant."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from tests.support.npm_tools import npm_install
from tests.support.procs import Proc, find_binary, start_process, wait_until

PACKAGE = "oidc-provider@9.13.3"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


@dataclass(frozen=True)
class OidcClient:
    client_id: str
    client_secret: str
    scope: str
    """The scopes this client may be granted."""
    ttl: int = 600
    """Lifetime of its access tokens, seconds."""


@dataclass
class OidcProvider:
    proc: Proc
    issuer: str
    port: int
    config_path: Path
    workdir: Path
    clients: dict[str, OidcClient] = field(default_factory=dict[str, OidcClient])

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    def token_response(self, client_id: str, resource: str, scope: str | None = None) -> httpx2.Response:
        client = self.clients[client_id]
        form = {"grant_type": "client_credentials", "resource": resource, **({"scope": scope} if scope else {})}
        return httpx2.post(self.token_endpoint, data=form, auth=(client.client_id, client.client_secret), timeout=10)

    def token(self, client_id: str, resource: str, scope: str | None = None) -> str:
        """An access token from the provider (a JWT), or AssertionError with the provider's answer."""
        response = self.token_response(client_id, resource, scope)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def jwks(self) -> dict[str, object]:
        return httpx2.get(f"{self.issuer}/jwks", timeout=10).json()

    def stop(self) -> None:
        self.proc.stop()

    def restart(self) -> OidcProvider:
        """The same issuer (same port) with new signing keys: a key rotation."""
        self.stop()
        return _run(self.workdir, self.config_path, self.clients, name=f"{self.proc.name}-r")


def start_oidc_provider(workdir: Path, *, resource: str, other_resource: str, clients: list[OidcClient],
                        scopes: list[str], port: int = 0, name: str = "oidc-provider") -> OidcProvider:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"port": port, "resource": resource, "other_resource": other_resource, "scopes": scopes,
              "alg": "ES256", "clients": [c.__dict__ for c in clients]}
    config_path = workdir / f"{name}.json"
    config_path.write_text(json.dumps(config))
    return _run(workdir, config_path, {c.client_id: c for c in clients}, name=name)


def _run(workdir: Path, config_path: Path, clients: dict[str, OidcClient], *, name: str) -> OidcProvider:
    node = find_binary("node")
    prefix = npm_install([PACKAGE], "oidc-provider")
    # The script imports oidc-provider, which Node resolves from the script's own folder: run it from the prefix.
    script = prefix / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    ready = workdir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    proc = start_process(name, [node, str(script), str(config_path)], workdir, stdout_path=ready)
    wait_until(lambda: ready.exists() and ready.read_text().endswith("\n"), timeout=30,
               what=f"{name} to listen", proc=proc, interval=0.05)
    started = json.loads(ready.read_text().splitlines()[0])
    if json.loads(config_path.read_text())["port"] == 0:  # a restart keeps this port (and so the issuer)
        config = json.loads(config_path.read_text())
        config_path.write_text(json.dumps({**config, "port": started["port"]}))
    return OidcProvider(proc=proc, issuer=started["issuer"], port=started["port"], config_path=config_path,
                        workdir=workdir, clients=clients)
