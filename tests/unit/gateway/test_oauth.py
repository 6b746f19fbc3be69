"""The OAuth resource server's pure parts: grant map, settings checks, the key cache and token checks, with real
keys and signatures (the provider's HTTP side is a dictionary of documents here; the integration tests use a real
provider)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_gateway.oauth.config import OAuthConfig, parse_grants
from proxmox_mcp_gateway.oauth.grants import rights_for, token_grants
from proxmox_mcp_gateway.oauth.jwks import KeyFetchError, KeySource
from proxmox_mcp_gateway.oauth.resource_server import OAuthRejection, OAuthResourceServer, config_from
from proxmox_mcp_gateway.oauth.step_up import called_tool
from proxmox_mcp_gateway.oauth.validator import AccessTokenValidator, Refusal, TokenRefused
from proxmox_mcp_gateway.settings import GatewaySettings
from pydantic import ValidationError

from tests.support.clock import ManualClock

ISSUER = "https://idp.example.test/realms/ops"
RESOURCE = "https://mcp.example.test/mcp"
JWKS_URL = ISSUER + "/protocol/openid-connect/certs"


class Provider:
    """The provider's documents and keys; counts what the gateway fetched."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "k1"
        self.published: list[dict[str, Any]] = [self.public_jwk(self.key, self.kid)]
        self.fetched: list[str] = []
        self.down = False
        self.discovery_issuer = ISSUER

    @staticmethod
    def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
        return {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "use": "sig", "alg": "ES256"}

    async def fetch(self, url: str) -> Mapping[str, Any]:
        self.fetched.append(url)
        if self.down:
            raise KeyFetchError(f"GET {url} failed (ConnectError)")
        if url == ISSUER + "/.well-known/openid-configuration":
            return {"issuer": self.discovery_issuer, "jwks_uri": JWKS_URL}
        assert url == JWKS_URL
        return {"keys": list(self.published)}

    def sign(self, claims: dict[str, Any] | None = None, *, key: Any = None, kid: str | None = None,
             alg: str = "ES256", typ: str | None = "at+jwt") -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": RESOURCE, "sub": "svc-backup", "client_id": "backup-bot", "iat": now,
                "exp": now + 300, "scope": "openid proxmox:read", **(claims or {})}
        headers: dict[str, Any] = {"kid": kid or self.kid, **({"typ": typ} if typ else {})}
        return jwt.encode(body, key or self.key, algorithm=alg, headers=headers)


def config(**changes: Any) -> OAuthConfig:
    base = OAuthConfig(issuer=ISSUER, resource=RESOURCE, grants=parse_grants(
        "proxmox:read=read,proxmox:operate=operate,proxmox:exec=exec,ops-oncall=exec/operator,proxmox:admin=admin"))
    return OAuthConfig(**{**base.__dict__, **changes})


def validator(provider: Provider, clock: ManualClock | None = None, **changes: Any) -> AccessTokenValidator:
    cfg = config(**changes)
    keys = KeySource(ISSUER, provider.fetch, jwks_url=cfg.jwks_url, min_refresh_seconds=30, cache_seconds=3600,
                     clock=clock or ManualClock())
    return AccessTokenValidator(cfg, keys)


async def refused(check: AccessTokenValidator, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as caught:
        await check.principal(token)
    return caught.value


# --- grant map ---

def test_the_strongest_matching_grant_decides_scope_and_profile() -> None:
    rules = config().grants
    rights = rights_for({"proxmox:read", "ops-oncall", "weather:read"}, rules)
    assert rights is not None and rights.scope is Scope.EXEC and rights.profile == "operator"
    assert rights.grants == ("proxmox:read", "ops-oncall")
    exec_only = rights_for({"proxmox:exec"}, rules)
    assert exec_only is not None and exec_only.profile == "readonly"  # the default profile of exec
    admin = rights_for({"proxmox:admin"}, rules)
    assert admin is not None and admin.scope is Scope.ADMIN and admin.profile == "admin"
    assert rights_for({"weather:read", "openid"}, rules) is None


def test_grants_come_from_scope_scp_and_a_dotted_roles_claim() -> None:
    claims = {"scope": "openid proxmox:read", "scp": ["proxmox:operate"],
              "realm_access": {"roles": ["ops-oncall", 7]}, "groups": "not-a-list-but-one"}
    assert token_grants(claims, "realm_access.roles") == {"openid", "proxmox:read", "proxmox:operate", "ops-oncall"}
    assert token_grants(claims, "groups") == {"openid", "proxmox:read", "proxmox:operate", "not-a-list-but-one"}
    assert token_grants(claims, "missing.path") == {"openid", "proxmox:read", "proxmox:operate"}


@pytest.mark.parametrize(("text", "words"), [
    ("proxmox:read", "expected GRANT=LEVEL"),
    ("proxmox:read=reader", "level must be one of"),
    ("proxmox:read=read/operator", "only matters for exec and admin"),
    ("ops=exec/admin", "admin profile needs the admin level"),
    ("a=read,a=exec", "mapped twice"),
    ("", "the grant map is empty"),
    ('bad"quote=read', "no spaces or quotes"),
])
def test_a_bad_grant_map_is_refused_naming_the_entry(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_grants(text)


def test_the_challenge_asks_for_the_weakest_grant_that_reaches_a_level() -> None:
    cfg = config()
    assert cfg.scope_for(Scope.READ) == "proxmox:read" and cfg.scope_for(Scope.EXEC) == "proxmox:exec"
    assert cfg.metadata_url == "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
    assert cfg.metadata_paths == ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource")
    assert config(resource="https://mcp.example.test").metadata_paths == ("/.well-known/oauth-protected-resource",)


# --- settings ---

@pytest.mark.parametrize(("env", "words"), [
    ({"PMCP_OAUTH_ISSUER": ISSUER}, "PMCP_OAUTH_RESOURCE must name"),
    ({"PMCP_OAUTH_ISSUER": "http://idp.example.test", "PMCP_OAUTH_RESOURCE": RESOURCE}, "must use https"),
    ({"PMCP_OAUTH_ISSUER": ISSUER, "PMCP_OAUTH_RESOURCE": RESOURCE + "#frag"}, "may not carry"),
    ({"PMCP_OAUTH_ALGORITHMS": "RS256,HS256"}, "HS256 not accepted"),
    ({"PMCP_OAUTH_ALGORITHMS": "none"}, "none not accepted"),
    ({"PMCP_OAUTH_GRANTS": "x=superuser"}, "level must be one of"),
])
def test_unusable_oauth_settings_stop_the_start_naming_the_problem(monkeypatch: pytest.MonkeyPatch,
                                                                   env: dict[str, str], words: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words):
        GatewaySettings()


def test_oauth_is_off_without_an_issuer_and_unknown_profiles_are_refused() -> None:
    assert config_from(GatewaySettings(), known_profiles={"readonly"}) is None
    settings = GatewaySettings(oauth_issuer=ISSUER, oauth_resource=RESOURCE, oauth_grants="ops=exec/nightly")
    with pytest.raises(ValueError, match="unknown command profile"):
        config_from(settings, known_profiles={"readonly", "operator", "admin"})
    loopback = GatewaySettings(oauth_issuer="http://127.0.0.1:9000", oauth_resource="http://localhost:8080/mcp")
    assert config_from(loopback, known_profiles={"readonly"}) is not None


# --- tokens ---

async def test_a_good_token_becomes_a_caller_named_by_its_subject_and_client() -> None:
    provider = Provider()
    principal = await validator(provider).principal(provider.sign(), "10.0.0.7")
    assert principal.token_id == "oauth:svc-backup" and principal.scope is Scope.READ
    assert principal.client_id == "backup-bot" and principal.address == "10.0.0.7"
    assert principal.audit_identity() == {"sub": "svc-backup", "client_id": "backup-bot", "iss": ISSUER,
                                          "grants": ["proxmox:read"]}


async def test_a_token_in_the_leeway_passes_and_one_past_it_does_not() -> None:
    provider = Provider()
    check = validator(provider, leeway=30)
    now = int(time.time())
    assert await check.principal(provider.sign({"exp": now - 10}))
    late = await refused(check, provider.sign({"exp": now - 60}))
    assert late.kind is Refusal.EXPIRED
    early = await refused(check, provider.sign({"nbf": now + 120}))
    assert early.kind is Refusal.INVALID and "not valid yet" in early.message


@pytest.mark.parametrize(("claims", "words"), [
    ({"aud": "https://other.example.test/mcp"}, "issued for another resource"),
    ({"aud": [RESOURCE + "/"]}, "issued for another resource"),
    ({"iss": "https://evil.example.test"}, "issuer this server does not trust"),
    ({"sub": None}, "no sub claim"),
    ({"sub": "x" * 300}, "subject is not usable"),
    ({"exp": None}, "no exp claim"),
])
async def test_a_token_with_wrong_claims_is_invalid(claims: dict[str, Any], words: str) -> None:
    provider = Provider()
    token = provider.sign({k: v for k, v in claims.items() if v is not None})
    if None in claims.values():  # drop the claim altogether
        body = jwt.decode(token, options={"verify_signature": False})
        for name in (k for k, v in claims.items() if v is None):
            body.pop(name)
        token = jwt.encode(body, provider.key, algorithm="ES256", headers={"kid": provider.kid, "typ": "at+jwt"})
    failure = await refused(validator(provider), token)
    assert failure.kind is Refusal.INVALID and words in failure.message


async def test_a_token_with_a_list_audience_naming_us_passes() -> None:
    provider = Provider()
    assert await validator(provider).principal(provider.sign({"aud": ["account", RESOURCE]}))


async def test_no_symmetric_or_unsigned_token_passes_even_keyed_with_the_published_key() -> None:
    provider = Provider()
    check = validator(provider)
    public_pem = provider.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = base64url_encode(json.dumps({"alg": "HS256", "kid": provider.kid}).encode())
    payload = base64url_encode(json.dumps(jwt.decode(provider.sign(), options={
        "verify_signature": False})).encode())
    mac = hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()
    hs = (header + b"." + payload + b"." + base64url_encode(mac)).decode()
    assert "algorithm is not accepted" in (await refused(check, hs)).message
    unsigned = (base64url_encode(b'{"alg":"none"}') + b"." + payload + b".").decode()
    assert "algorithm is not accepted" in (await refused(check, unsigned)).message
    assert provider.fetched == []  # refused before any key was looked up


async def test_an_rs256_token_is_refused_by_an_ec_key_of_the_same_kid() -> None:
    provider = Provider()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    failure = await refused(validator(provider), provider.sign(key=rsa_key, alg="RS256"))
    assert "key the provider does not publish" in failure.message


async def test_a_token_whose_typ_says_it_is_no_access_token_is_refused() -> None:
    provider = Provider()
    check = validator(provider)
    assert "not an access token" in (await refused(check, provider.sign(typ="logout+jwt"))).message
    assert await check.principal(provider.sign(typ="JWT"))
    assert await check.principal(provider.sign(typ=None))


async def test_a_valid_token_without_a_mapped_grant_is_insufficient_scope_naming_the_subject() -> None:
    provider = Provider()
    failure = await refused(validator(provider), provider.sign({"scope": "openid weather:read"}))
    assert failure.kind is Refusal.INSUFFICIENT_SCOPE and failure.token_id == "oauth:svc-backup"


async def test_rejections_carry_the_status_and_challenge_the_spec_asks_for() -> None:
    provider = Provider()
    server = OAuthResourceServer(config(), validator(provider))
    metadata = 'resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp"'
    scope = await server.authenticate(provider.sign({"scope": "openid"}), None)
    assert isinstance(scope, OAuthRejection) and scope.status == 403 and scope.challenge is not None
    assert b'error="insufficient_scope"' in scope.challenge and b'scope="proxmox:read"' in scope.challenge
    assert metadata.encode() in scope.challenge
    expired = await server.authenticate(provider.sign({"exp": int(time.time()) - 100}), None)
    assert isinstance(expired, OAuthRejection) and expired.status == 401 and expired.challenge is not None
    assert expired.challenge.startswith(b'Bearer realm="proxmox-mcp", error="invalid_token"')
    assert expired.info.details["reason"] == "expired"
    provider.down = True
    down = await OAuthResourceServer(config(), validator(provider)).authenticate(provider.sign(), None)
    assert isinstance(down, OAuthRejection) and down.status == 503 and down.challenge is None
    assert down.info.code.value == "unavailable" and down.info.retryable


def test_only_jwt_shaped_tokens_that_are_not_ours_take_the_oauth_path() -> None:
    server = OAuthResourceServer(config(), validator(Provider()))
    assert server.handles(Provider().sign())
    assert not server.handles("pmcp_0123456789ab_" + "A" * 43)
    assert not server.handles("pmcp_a.b.c")
    assert not server.handles("just-a-static-secret")
    assert not server.handles(None)


# --- key cache ---

async def test_keys_come_through_discovery_once_and_are_reused() -> None:
    provider = Provider()
    check = validator(provider)
    for _ in range(3):
        await check.principal(provider.sign())
    assert provider.fetched == [ISSUER + "/.well-known/openid-configuration", JWKS_URL]


async def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval() -> None:
    provider, clock = Provider(), ManualClock()
    check = validator(provider, clock)
    await check.principal(provider.sign())
    rotated = ec.generate_private_key(ec.SECP256R1())
    provider.published.append(Provider.public_jwk(rotated, "k2"))
    stranger = ec.generate_private_key(ec.SECP256R1())
    for _ in range(5):  # forged key ids: no fetch storm
        await refused(check, provider.sign(key=stranger, kid="forged"))
    clock.now += 29
    await refused(check, provider.sign(key=rotated, kid="k2"))  # the interval has not passed since the first miss
    assert provider.fetched.count(JWKS_URL) == 1
    clock.now += 31
    await refused(check, provider.sign(key=stranger, kid="forged"))
    assert provider.fetched.count(JWKS_URL) == 2
    assert await check.principal(provider.sign(key=rotated, kid="k2"))  # learnt by that refetch


async def test_stale_keys_are_kept_while_the_provider_is_down_and_a_first_fetch_failure_is_unavailable() -> None:
    provider, clock = Provider(), ManualClock()
    check = validator(provider, clock)
    await check.principal(provider.sign())
    provider.down = True
    clock.now += 4000  # past the cache lifetime: a refresh is due and fails
    assert await check.principal(provider.sign())
    fresh = validator(provider)
    assert (await refused(fresh, provider.sign())).kind is Refusal.UNAVAILABLE


async def test_a_discovery_document_of_another_issuer_is_not_trusted() -> None:
    provider = Provider()
    provider.discovery_issuer = "https://evil.example.test"
    assert (await refused(validator(provider), provider.sign())).kind is Refusal.UNAVAILABLE


async def test_a_configured_jwks_url_skips_discovery_and_symmetric_keys_in_it_are_ignored() -> None:
    provider = Provider()
    provider.published.insert(0, {"kty": "oct", "k": "c2VjcmV0", "kid": provider.kid, "alg": "HS256"})
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.published.append({**json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "r1"})
    check = validator(provider, jwks_url=JWKS_URL)
    assert await check.principal(provider.sign())
    # an RSA key published without alg verifies PS256 as well as RS256
    assert await check.principal(provider.sign(key=rsa_key, kid="r1", alg="PS256"))
    assert provider.fetched == [JWKS_URL]


# --- step-up ---

@pytest.mark.parametrize(("path", "body", "tool"), [
    ("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "vm_action"}}, "vm_action"),
    ("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"name": "vm_action"}}, None),
    ("/mcp", [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "vm_action"}}], None),
    ("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["vm_action"]}, None),
    ("/api/mcp/tools/call", {"name": "execute_command", "arguments": {}}, "execute_command"),
    ("/api/mcp/tools/call", {"name": 5}, None),
])
def test_the_step_up_check_finds_the_called_tool_only_in_a_well_formed_call(path: str, body: object,
                                                                              tool: str | None) -> None:
    assert called_tool(path, json.dumps(body).encode()) == tool
    assert called_tool(path, b"{not json") is None
