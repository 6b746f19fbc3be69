"""The gateway as an OAuth 2.1 resource server, against a real OpenID provider (node-oidc-provider) started here:
client-credentials tokens through the official MCP client, every way a token can be wrong refused with the
right status and WWW-Authenticate, RFC 9728 metadata, our own tokens beside it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.auth import TokenStorage
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from proxmox_mcp_contracts.envelope import Scope

from tests.integration.security.conftest import FAST, SecureStack
from tests.support.mcp_client import http_client
from tests.support.oidc import OidcClient, OidcProvider, start_oidc_provider
from tests.support.procs import free_port
from tests.support.services import GatewayProc, start_gateway, wait_ready

pytestmark = [pytest.mark.npm]

SCOPES = ["proxmox:read", "proxmox:operate", "proxmox:exec", "proxmox:admin", "weather:read"]
AGENT = OidcClient("ci-agent", "agent-secret-" + base64.urlsafe_b64encode(time.time_ns().to_bytes(8)).decode(),
                   "proxmox:read proxmox:operate weather:read")
SHORT = OidcClient("short-lived", "short-secret-0123456789abcdef", "proxmox:read", ttl=1)
OTHER_RESOURCE = "http://127.0.0.1:1/elsewhere"


@dataclass
class OAuthStack:
    stack: SecureStack
    provider: OidcProvider
    rogue: OidcProvider
    gateway: GatewayProc

    @property
    def resource(self) -> str:
        return self.gateway.url

    @property
    def metadata_url(self) -> str:
        return self.gateway.base_url + "/.well-known/oauth-protected-resource/mcp"

    @property
    def audit_file(self) -> Path:
        return self.stack.workdir / "oauth" / "gateway" / "audit.jsonl"

    def audit(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]

    def post(self, token: str | None, path: str = "/api/mcp/tools/call") -> httpx2.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx2.post(self.gateway.base_url + path, json={"name": "list_vms", "arguments": {}},
                           headers=headers, timeout=30)


@pytest.fixture(scope="module")
def oauth(stack: SecureStack) -> Iterator[OAuthStack]:
    workdir = stack.workdir / "oauth"
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    provider = rogue = None
    started: OAuthStack | None = None
    try:
        provider = start_oidc_provider(workdir, resource=resource, other_resource=OTHER_RESOURCE,
                                       clients=[AGENT, SHORT], scopes=SCOPES)
        rogue = start_oidc_provider(workdir, resource=resource, other_resource=OTHER_RESOURCE, clients=[AGENT],
                                    scopes=SCOPES, name="rogue-provider")
        state = workdir / "gateway"
        state.mkdir()
        env = {**FAST, "PMCP_STATE_DIR": str(state), "PMCP_TOKENS_FILE": str(stack.tokens_file),
               "PMCP_OAUTH_ISSUER": provider.issuer, "PMCP_OAUTH_RESOURCE": resource, "PMCP_OAUTH_LEEWAY": "0",
               "PMCP_OAUTH_JWKS_MIN_REFRESH_SECONDS": "0.2"}
        gateway = start_gateway(stack.nats.url, state, env=env, port=port)
        stack.procs.append(gateway.proc)
        stack.secrets.add("oauth gateway static token", gateway.token)
        stack.secrets.add("oidc client secret", AGENT.client_secret)
        wait_ready(gateway)
        started = OAuthStack(stack=stack, provider=provider, rogue=rogue, gateway=gateway)
        yield started
    finally:
        # the rotation test replaces the provider with its restarted self
        for oidc in (provider, rogue, started.provider if started is not None else None):
            if oidc is not None:
                oidc.stop()


def challenge(response: httpx2.Response) -> dict[str, str]:
    """The parameters of a Bearer WWW-Authenticate header."""
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    params: dict[str, str] = {}
    for part in value.removeprefix("Bearer ").split(", "):
        name, _, quoted = part.partition("=")
        params[name] = quoted.strip('"')
    return params


def assert_invalid_token(oauth: OAuthStack, response: httpx2.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    params = challenge(response)
    assert params["error"] == "invalid_token" and words in params["error_description"], params
    assert params["resource_metadata"] == oauth.metadata_url
    assert response.json()["error"]["code"] == "unauthenticated"


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def test_the_metadata_endpoint_answers_per_rfc_9728(oauth: OAuthStack) -> None:
    for url in (oauth.metadata_url, oauth.gateway.base_url + "/.well-known/oauth-protected-resource"):
        response = httpx2.get(url, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        document = response.json()
        # RFC 9728 §3.3: resource is the URL the well-known path was inserted into; §2: the other fields.
        assert document["resource"] == oauth.resource
        assert document["authorization_servers"] == [oauth.provider.issuer]
        assert document["scopes_supported"] == ["proxmox:read", "proxmox:operate", "proxmox:exec", "proxmox:admin"]
        assert document["bearer_methods_supported"] == ["header"]
        assert document["resource_name"] == "proxmox-mcp"
    assert httpx2.post(oauth.metadata_url, timeout=10).status_code == 405


def test_a_request_without_a_token_is_told_where_the_metadata_is_and_which_scope_to_ask(oauth: OAuthStack) -> None:
    for path in ("/mcp", "/api/mcp/tools/call"):
        response = oauth.post(None, path)
        assert response.status_code == 401
        params = challenge(response)
        assert params == {"realm": "proxmox-mcp", "scope": "proxmox:read", "resource_metadata": oauth.metadata_url}
    assert httpx2.get(oauth.metadata_url, timeout=10).json()["resource"] == oauth.resource


async def test_the_official_client_gets_a_token_by_client_credentials_and_calls_a_read_tool(
        oauth: OAuthStack) -> None:
    auth = ClientCredentialsOAuthProvider(server_url=oauth.gateway.url, storage=MemoryStorage(),
                                          client_id=AGENT.client_id, client_secret=AGENT.client_secret,
                                          issuer=oauth.provider.issuer)
    async with httpx2.AsyncClient(auth=auth, timeout=60) as http, \
            Client(streamable_http_client(oauth.gateway.url, http_client=http)) as client:  # type: ignore[arg-type]
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "list_vms" in names and "execute_command" not in names  # proxmox:read only: the 401 asked for it
        result = await client.call_tool("list_vms", {})
        assert not result.is_error, result.content
        assert result.structured_content is not None and result.structured_content["vms"]
    token = (await auth.context.storage.get_tokens())
    assert token is not None and token.scope == "proxmox:read"
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["aud"] == oauth.resource and claims["iss"] == oauth.provider.issuer
    record = [r for r in oauth.audit() if r["event"] == "tool_call"][-1]
    assert record["tool"] == "list_vms" and record["token_id"] == f"oauth:{AGENT.client_id}"
    assert record["oauth"] == {"sub": AGENT.client_id, "client_id": AGENT.client_id, "iss": oauth.provider.issuer,
                               "grants": ["proxmox:read"]}
    audit_text = oauth.audit_file.read_text()
    assert token.access_token not in audit_text and AGENT.client_secret not in audit_text


async def test_an_operate_grant_maps_to_the_operate_scope(oauth: OAuthStack) -> None:
    token = oauth.provider.token(AGENT.client_id, oauth.resource, "proxmox:read proxmox:operate")
    async with http_client(oauth.gateway.url, token) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "vm_action" in names and "execute_command" not in names


def test_a_call_to_a_tool_above_the_tokens_scope_gets_403_naming_the_scope_it_needs(oauth: OAuthStack) -> None:
    token = oauth.provider.token(AGENT.client_id, oauth.resource, "proxmox:read")
    response = httpx2.post(oauth.gateway.base_url + "/api/mcp/tools/call", headers={"Authorization": f"Bearer {token}"},
                           json={"name": "vm_action", "arguments": {"vmid": 99999, "action": "start"}}, timeout=30)
    assert response.status_code == 403, response.text
    params = challenge(response)
    assert params["error"] == "insufficient_scope" and params["scope"] == "proxmox:operate"
    assert params["resource_metadata"] == oauth.metadata_url
    assert oauth.audit()[-1]["event"] == "http_rejected"


async def test_the_official_client_steps_up_to_the_scope_a_tool_needs(oauth: OAuthStack) -> None:
    auth = ClientCredentialsOAuthProvider(server_url=oauth.gateway.url, storage=MemoryStorage(),
                                          client_id=AGENT.client_id, client_secret=AGENT.client_secret,
                                          issuer=oauth.provider.issuer)
    async with httpx2.AsyncClient(auth=auth, timeout=60) as http, \
            Client(streamable_http_client(oauth.gateway.url, http_client=http)) as client:  # type: ignore[arg-type]
        assert "vm_action" not in {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("vm_action", {"vmid": 99999, "action": "start"})
    # past the scope check on the re-issued token: the refusal now is about the guest, not the scope
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["code"] == "not_found", result.structured_content
    token = await auth.context.storage.get_tokens()
    assert token is not None and set((token.scope or "").split()) == {"proxmox:read", "proxmox:operate"}


def test_a_token_for_another_resource_is_refused(oauth: OAuthStack) -> None:
    token = oauth.provider.token(AGENT.client_id, OTHER_RESOURCE, "proxmox:read")
    assert_invalid_token(oauth, oauth.post(token), "issued for another resource")


def test_an_expired_token_is_refused(oauth: OAuthStack) -> None:
    token = oauth.provider.token(SHORT.client_id, oauth.resource, "proxmox:read")
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    deadline = time.monotonic() + 10
    while time.time() < expires + 0.05 and time.monotonic() < deadline:  # the provider's shortest lifetime: 1 s
        time.sleep(0.05)
    response = oauth.post(token)
    assert_invalid_token(oauth, response, "expired")
    assert response.json()["error"]["details"]["reason"] == "expired"


def test_a_token_from_another_issuer_is_refused(oauth: OAuthStack) -> None:
    token = oauth.rogue.token(AGENT.client_id, oauth.resource, "proxmox:read")
    assert_invalid_token(oauth, oauth.post(token), "issuer this server does not trust")


def _forge(oauth: OAuthStack, how: str) -> str:
    """A token with the real provider's claims (right issuer, audience, scope, times) but a signature it never
    made."""
    real = oauth.provider.token(AGENT.client_id, oauth.resource, "proxmox:read")
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    stranger = ec.generate_private_key(ec.SECP256R1())
    if how == "same kid, other key":
        return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": header["kid"], "typ": "at+jwt"})
    if how == "unpublished kid":
        return jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "never-published", "typ": "at+jwt"})
    if how == "alg none":
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": header["kid"]}).encode()).rstrip(b"=")
        return f"{head.decode()}.{body}."
    assert how == "HS256 keyed with the public key"
    public = json.dumps(next(k for k in oauth.provider.jwks()["keys"] if k["kid"] == header["kid"]))  # type: ignore[index,union-attr]
    head = {"alg": "HS256", "kid": header["kid"], "typ": "at+jwt"}
    signing = (base64.urlsafe_b64encode(json.dumps(head).encode()).rstrip(b"=") + b"."
               + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"="))
    mac = hmac.new(public.encode(), signing, hashlib.sha256).digest()
    return signing.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@pytest.mark.parametrize(("how", "words"), [
    ("same kid, other key", "signature does not verify"),
    ("unpublished kid", "key the provider does not publish"),
    ("alg none", "algorithm is not accepted"),
    ("HS256 keyed with the public key", "algorithm is not accepted"),
])
def test_a_token_with_a_signature_the_provider_never_made_is_refused(oauth: OAuthStack, how: str,
                                                                     words: str) -> None:
    assert_invalid_token(oauth, oauth.post(_forge(oauth, how)), words)


def test_a_token_without_a_mapped_scope_gets_403_insufficient_scope(oauth: OAuthStack) -> None:
    token = oauth.provider.token(AGENT.client_id, oauth.resource, "weather:read")
    for path in ("/mcp", "/api/mcp/tools/call"):
        response = oauth.post(token, path)
        assert response.status_code == 403, response.text
        params = challenge(response)
        assert params["error"] == "insufficient_scope" and params["scope"] == "proxmox:read"
        assert params["resource_metadata"] == oauth.metadata_url
        assert response.json()["error"]["code"] == "permission_denied"
    last = oauth.audit()[-1]
    assert last["event"] == "http_rejected" and last["token_id"] == f"oauth:{AGENT.client_id}"


def test_our_own_tokens_keep_working_beside_oauth_and_never_take_the_jwt_path(oauth: OAuthStack) -> None:
    assert oauth.post(oauth.gateway.token).status_code == 200
    assert oauth.post(oauth.stack.token(Scope.READ)).status_code == 200
    refused = oauth.post("pmcp_0123456789ab_" + "A" * 43)
    assert refused.status_code == 401 and challenge(refused)["error_description"] == "invalid bearer token"
    jwt_shaped = oauth.post("eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
    assert jwt_shaped.status_code == 401 and "access token" in challenge(jwt_shaped)["error_description"]


def test_after_a_key_rotation_new_tokens_work_and_tokens_of_the_removed_key_do_not(oauth: OAuthStack) -> None:
    old = oauth.provider.token(AGENT.client_id, oauth.resource, "proxmox:read")
    assert oauth.post(old).status_code == 200
    oauth.provider = oauth.provider.restart()  # same issuer, new signing key: the gateway meets an unknown kid
    new = oauth.provider.token(AGENT.client_id, oauth.resource, "proxmox:read")
    deadline = time.monotonic() + 10
    response = oauth.post(new)
    while response.status_code != 200 and time.monotonic() < deadline:  # refetches are spaced 0.2 s apart
        time.sleep(0.1)
        response = oauth.post(new)
    assert response.status_code == 200, response.text
    assert_invalid_token(oauth, oauth.post(old), "key the provider does not publish")
