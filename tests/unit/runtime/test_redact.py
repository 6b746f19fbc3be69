"""The redactor (proxmox_mcp_runtime.redact): every kind of secret the gateway and workers may see."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proxmox_mcp_runtime import redact as redact_module
from proxmox_mcp_runtime.redact import REDACTED, Redactor, is_sensitive_key, secret_values
from pydantic import BaseModel, SecretStr


@pytest.fixture(scope="module")
def openssh_key(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("keys")) / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


@pytest.fixture(scope="module")
def pem_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _body(key: str) -> str:
    return key.strip().splitlines()[2]


def test_openssh_private_key_block_is_removed(openssh_key: str) -> None:
    text = f"before\n{openssh_key}after\n"
    out = Redactor().redact_text(text)
    assert _body(openssh_key) not in out and "before" in out and "after" in out and REDACTED in out


def test_pem_private_key_block_is_removed(pem_key: str) -> None:
    out = Redactor().redact_text("key:\n" + pem_key)
    assert _body(pem_key) not in out and "BEGIN PRIVATE KEY" not in out


def test_a_key_cut_off_by_the_output_cap_is_removed_to_the_end(openssh_key: str) -> None:
    cut = openssh_key[: len(openssh_key) // 2]
    out = Redactor().redact_text("x\n" + cut)
    assert out == "x\n" + REDACTED


def test_redacting_twice_changes_nothing_more(openssh_key: str) -> None:
    redactor = Redactor()
    once = redactor.redact_text(f"a\n{openssh_key}b password=hunter22 c")
    assert redactor.redact_text(once) == once
    assert once.endswith("b password=[REDACTED] c")


@pytest.mark.parametrize("text", [
    "Authorization: PVEAPIToken=root@pam!mcp={uuid}",
    "PVEAPIToken=automation@pve!ci={uuid} sent",
    "token_value={uuid}",
    '{{"full-tokenid": "root@pam!x", "value": "{uuid}"}}',
    "│ value        │ {uuid} │",
])
def test_proxmox_api_token_secrets_are_removed(text: str) -> None:
    secret = str(uuid.uuid4())
    out = Redactor().redact_text(text.format(uuid=secret))
    assert secret not in out and REDACTED in out


def test_the_token_id_part_of_a_pve_api_token_stays_readable() -> None:
    out = Redactor().redact_text(f"PVEAPIToken=root@pam!mcp={uuid.uuid4()}")
    assert out == f"PVEAPIToken=root@pam!mcp={REDACTED}"


def test_tickets_cookies_and_csrf_tokens_are_removed() -> None:
    ticket = "PVE:root@pam:4EEC61E2::" + secrets.token_urlsafe(40).replace("-", "+").replace("_", "/")
    csrf = "4EEC61E2:" + secrets.token_urlsafe(20).replace("-", "A").replace("_", "B")
    text = f'ticket {ticket}\nCookie: PVEAuthCookie={ticket}\n{{"CSRFPreventionToken": "{csrf}"}}'
    out = Redactor().redact_text(text)
    assert ticket not in out and csrf not in out and ticket.split("::")[1] not in out


@pytest.mark.parametrize("template", [
    "password={s}", "PASSWORD = {s}", "ssh_key_passphrase: {s}", '"password": "{s}"', "'secret': '{s}'",
    "SSH_PASSWORD={s}", "PROXMOX_TOKEN_VALUE={s}", "PMCP_TOKEN={s}", "api_key={s}&x=1", "--password={s}",
    "client_secret: {s}",
])
def test_passwords_in_key_value_and_json_form_are_removed(template: str) -> None:
    value = "S3cr" + secrets.token_hex(8)
    out = Redactor().redact_text(template.format(s=value))
    assert value not in out and REDACTED in out


@pytest.mark.parametrize("text", ["token_id=static", "password_file=/run/secrets/pw", "tokens: 3",
                                  "status: running", "node=pve1", "Password:\nnext line"])
def test_harmless_key_values_are_kept(text: str) -> None:
    assert Redactor().redact_text(text) == text


def test_jwts_bearer_and_basic_credentials_are_removed() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    bearer = secrets.token_urlsafe(24)
    basic = "dXNlcjpwYXNzd29yZDEyMw=="
    out = Redactor().redact_text(f"jwt {jwt}; Authorization: Bearer {bearer}; auth Basic {basic}")
    assert jwt not in out and bearer not in out and basic not in out


def test_pmcp_tokens_are_removed_anywhere() -> None:
    token = f"pmcp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    assert token not in Redactor().redact_text(f"x{token} y")


def test_registered_secret_values_are_removed_wherever_they_appear() -> None:
    redactor = Redactor()
    secret = "correct horse " + secrets.token_hex(4)
    redactor.register_secret(secret)
    redactor.register_secret("ab")  # too short to register: would destroy output
    out = redactor.redact_text(f"echo '{secret}' and ab")
    assert secret not in out and "ab" in out


def test_values_under_sensitive_keys_are_hidden_in_structures() -> None:
    data = {"password": "x1", "nested": [{"token": "abc123", "token_id": "keep"}], "count": 3,
            "text": "password=hunter22", "private_key": {"any": "thing"}}
    out = Redactor().redact_value(data)
    assert out == {"password": REDACTED, "nested": [{"token": REDACTED, "token_id": "keep"}], "count": 3,
                   "text": f"password={REDACTED}", "private_key": REDACTED}


def test_errors_lose_tracebacks_and_source_paths() -> None:
    message = ('boom in /usr/lib/python3/dist-packages/foo/bar.py\nTraceback (most recent call last):\n'
               '  File "/srv/app/x.py", line 3, in f\nValueError: password=hunter22')
    out = Redactor().sanitize_error(message)
    assert "Traceback" not in out and "/usr/lib" not in out and "hunter22" not in out and out.startswith("boom in")


@pytest.mark.parametrize("key,sensitive", [("password", True), ("SSH_KEY_PASSPHRASE", True), ("token", True),
                                           ("api_token", True), ("token_id", False), ("PMCP_TOKEN_FILE", False),
                                           ("node", False), ("CSRFPreventionToken", True)])
def test_key_names_that_hold_secrets_are_sensitive_and_others_are_not(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_secret_values_walks_pydantic_models() -> None:
    class Inner(BaseModel):
        password: SecretStr

    class Outer(BaseModel):
        name: str
        items: list[Inner]

    assert secret_values(Outer(name="n", items=[Inner(password=SecretStr("p1")), Inner(password=SecretStr("p2"))])) \
        == ["p1", "p2"]


PATTERNS = [getattr(redact_module, name) for name in ("_PRIVATE_KEY", "_PUTTY_KEY", "_PVE_API_TOKEN",
            "_UUID_AFTER_EQUALS", "_UUID_AS_VALUE", "_PVE_TICKET", "_PVE_COOKIE", "_CSRF", "_JWT", "_AUTH_SCHEME",
            "_PMCP_TOKEN", "_KEY_VALUE")]
TRIGGER_FREE = st.text(alphabet=st.characters(blacklist_characters=":=|\u2502"), max_size=200).filter(
    lambda text: redact_module._MAY_HOLD_A_SECRET.search(text) is None)


@given(TRIGGER_FREE)
@settings(max_examples=300, deadline=None)
def test_text_the_fast_path_skips_matches_no_pattern(text: str) -> None:
    assert all(pattern.search(text) is None for pattern in PATTERNS)


SECRET_FRAGMENTS = ["PRIVATE KEY", "-----BEGIN ", "-----", "pmcp_", "eyJ", "Bearer ", "Basic ", "abc",
                    "0123456789abcdef", "PVE", "\n", " ", "x" * 8, ".", "_", "-"]


@given(st.lists(st.sampled_from(SECRET_FRAGMENTS), max_size=12).map("".join))
@settings(max_examples=300, deadline=None)
def test_secret_fragments_without_a_trigger_match_no_pattern(text: str) -> None:
    if redact_module._MAY_HOLD_A_SECRET.search(text) is None:
        assert all(pattern.search(text) is None for pattern in PATTERNS)


def test_a_registered_secret_is_hidden_in_a_plain_word_too() -> None:
    redactor = Redactor(["hunter22"])
    assert redactor.redact_text("hunter22") == REDACTED
    assert redactor.redact_value({"name": "vm-hunter22", "status": "running"}) == {
        "name": f"vm-{REDACTED}", "status": "running"}


@pytest.mark.parametrize("secret", ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl",
                                    "pmcp_0123456789ab_" + "A" * 24, "Bearer abcdefgh12345678", "basic dXNlcjpwYXNz",
                                    "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"])
def test_a_bare_secret_with_no_separator_is_still_redacted(secret: str) -> None:
    redacted = Redactor().redact_text(secret)
    assert REDACTED in redacted and secret.split()[-1] not in redacted


# --- host addresses (hidden from callers below admin) ----------------------------------------------------------

@pytest.mark.parametrize("message, expected", [
    ("cannot connect to pve1.lab.example:22", "cannot connect to [host]:22"),
    ("Can't connect to 10.0.0.5:8006 (No route to host)", "Can't connect to [host]:8006 (No route to host)"),
    ("peer [fe80::1]:8006, then 2001:db8::5 and ::1", "peer [host]:8006, then [host] and [host]"),
    ("full 2001:0db8:0000:0000:0000:ff00:0042:8329 form", "full [host] form"),
    ("pve1.lab.example. ends a sentence", "[host]. ends a sentence"),
    ("chmod 600 /etc/proxmox-mcp/id_ed25519 first", "chmod 600 [path] first"),
    ("'/var/lib/vz/images/100/vm-100-disk-0.qcow2': No such file", "'[path]': No such file"),
    ("cannot open /root", "cannot open [path]"),
])
def test_host_addresses_are_hidden_when_asked(message: str, expected: str) -> None:
    redactor = Redactor()
    redactor.register_hosts(["pve1.lab.example", "pve2"], keep=["pve2"])
    assert redactor.sanitize_error(message, hide_internals=True) == expected
    assert redactor.sanitize_error(message) == message


@pytest.mark.parametrize("message", [
    "VM 100 on node pve2 is running",                       # a node name that is also a host name stays
    "started at 12:30:45 on 2026-12-05",                    # times are not IPv6
    "pin " + ":".join(["AB"] * 32),                         # certificate fingerprints stay (they are the fix)
    "UPID:pve1:0000ABCD:00001234:6560A1B2:qmstart:100:root@pam:",
    "pve-manager/8.1.4 and qemu 9.0.2",                     # three-part versions are not addresses
    "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
    "pve1.lab.example.org is another name",                 # only whole registered names
    "path /nodes/pve1/qemu/100/status/start and /access/users are API paths",
    "storage local:iso/debian.iso and ./relative/etc/file",
])
def test_what_is_not_an_address_stays(message: str) -> None:
    redactor = Redactor()
    redactor.register_hosts(["pve1.lab.example", "pve2"], keep=["pve2"])
    assert redactor.sanitize_error(message, hide_internals=True) == message
