"""The api-worker's metrics: Proxmox API calls by method and status class, and the certificate's expiry."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from proxmox_mcp_api_worker.metrics import observe_api_call, set_api_certificate_not_after
from proxmox_mcp_api_worker.tls import certificate_not_after
from proxmox_mcp_runtime.metrics.registry import REGISTRY


def _value(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_api_calls_are_labelled_by_method_and_status_class_only() -> None:
    observe_api_call("default", "get", 200, 0.05)
    observe_api_call("default", "PATCH", None, 0.05)
    assert _value("proxmox_mcp_api_requests_total", {"cluster": "default", "method": "GET", "status_class": "2xx"}) >= 1
    assert _value("proxmox_mcp_api_requests_total",
                  {"cluster": "default", "method": "other", "status_class": "error"}) >= 1


def test_certificate_not_after_reads_a_real_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pve.test")])
    not_after = datetime.datetime(2031, 1, 2, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(not_after).sign(key, hashes.SHA256()))
    seconds = certificate_not_after(cert.public_bytes(serialization.Encoding.DER))
    assert seconds == not_after.timestamp()
    set_api_certificate_not_after("default", seconds)
    assert _value("proxmox_mcp_api_certificate_expiry_timestamp_seconds", {"cluster": "default"}) == seconds
