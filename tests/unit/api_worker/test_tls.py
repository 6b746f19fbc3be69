"""Which TLS trust a cluster's settings give, and the errors a failed handshake turns into."""

from __future__ import annotations

from pathlib import Path

import pytest
from proxmox_mcp_api_worker.tls import (
    PinnedFingerprintAdapter,
    TlsTrust,
    make_adapter,
    normalize_fingerprint,
    pretty_fingerprint,
    tls_failure,
)
from proxmox_mcp_contracts.errors import ErrorCode
from proxmox_mcp_contracts.settings import ApiSettings

DIGEST = "ab" * 32
PRETTY = ":".join(["AB"] * 32)


@pytest.mark.parametrize("text", [PRETTY, DIGEST, DIGEST.upper(), f"sha256:{DIGEST}", f"SHA256:{PRETTY}",
                                  f"SHA256 Fingerprint={PRETTY}", f"  {PRETTY}  "])
def test_fingerprints_are_accepted_in_the_usual_spellings(text: str) -> None:
    assert normalize_fingerprint(text) == DIGEST


@pytest.mark.parametrize("text", ["ab" * 20, "zz" * 32, "", "ab" * 33])
def test_anything_but_a_sha256_fingerprint_is_refused_with_the_way_to_get_one(text: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        normalize_fingerprint(text)


def test_pretty_fingerprint_is_uppercase_colon_hex() -> None:
    assert pretty_fingerprint(DIGEST) == PRETTY


def test_a_pin_wins_over_a_ca_file_and_switches_chain_checks_off(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    trust = TlsTrust.from_settings(ApiSettings(fingerprint=PRETTY, ca_file=ca, verify_ssl=False))
    assert trust.fingerprint == DIGEST and trust.verify is False and not trust.insecure
    assert isinstance(make_adapter(trust, 4), PinnedFingerprintAdapter)


def test_a_ca_file_is_what_requests_verifies_against(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    trust = TlsTrust.from_settings(ApiSettings(ca_file=ca))
    assert trust.verify == str(ca) and trust.fingerprint is None and not trust.insecure


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        TlsTrust.from_settings(ApiSettings(ca_file=tmp_path / "nope.pem"))


def test_verification_is_off_only_when_explicitly_configured() -> None:
    assert TlsTrust.from_settings(ApiSettings()).verify is True
    insecure = TlsTrust.from_settings(ApiSettings(verify_ssl=False))
    assert insecure.verify is False and insecure.insecure


def test_fingerprint_mismatch_names_both_fingerprints() -> None:
    trust = TlsTrust.from_settings(ApiSettings(fingerprint=PRETTY))
    text = f'HTTPSConnectionPool(host=\'127.0.0.1\', port=8006): Max retries exceeded (Caused by SSLError(SSLError(' \
           f'\'Fingerprints did not match. Expected "{DIGEST}", got "{"cd" * 32}"\')))'
    failure = tls_failure(Exception(text), trust)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert failure.info.message.startswith(f"certificate fingerprint mismatch: expected {PRETTY}, got "
                                           f"{':'.join(['CD'] * 32)}")


def test_untrusted_chain_says_which_trust_refused_it(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    trust = TlsTrust.from_settings(ApiSettings(ca_file=ca))
    text = "Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] " \
           "certificate verify failed: self-signed certificate (_ssl.c:992)')))"
    failure = tls_failure(Exception(text), trust)
    assert failure.code is ErrorCode.PERMISSION_DENIED
    assert f"not trusted by the CA file {ca}" in failure.info.message
    assert "self-signed certificate" in failure.info.message


def test_other_handshake_failures_are_unavailable_and_retryable() -> None:
    trust = TlsTrust.from_settings(ApiSettings())
    failure = tls_failure(Exception("[SSL: WRONG_VERSION_NUMBER] wrong version number"), trust)
    assert failure.code is ErrorCode.UNAVAILABLE and failure.info.retryable
