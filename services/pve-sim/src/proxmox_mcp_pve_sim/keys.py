"""The TLS certificate (pve-ssl.pem), the SSH host key and the SSH client key the SSH face accepts.

Created on first use in the state directory and reused afterwards, so fingerprints stay stable
across restarts with the same directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyMaterial:
    cert_file: Path
    key_file: Path
    fingerprint: str
    host_key: asyncssh.SSHKey
    host_key_fingerprint: str
    host_public_key: str
    client_key_file: Path
    client_public_key: asyncssh.SSHKey


def cert_fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate DER, uppercase hex pairs joined by colons, as Proxmox shows it."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    digest = cert.fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _create_certificate(cert_file: Path, key_file: Path, names: list[str], addresses: list[str]) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PVE Cluster Node"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "PVE Cluster Node (pve-sim)"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{names[0]}.sim.local"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(["localhost", *names])]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(addresses)]
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_file,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ed25519(path: Path, comment: str) -> asyncssh.SSHKey:
    if path.is_file():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)  # pyright: ignore[reportUnknownMemberType] (untyped **kwargs)
    _write_private(path, key.export_private_key("openssh"))
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    return key


def _bare_public(key: asyncssh.SSHKey) -> str:
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algorithm} {blob}"


def load_or_create(state_dir: Path, node_names: list[str], host: str) -> KeyMaterial:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    cert_file, key_file = state_dir / "pve-ssl.pem", state_dir / "pve-ssl.key"
    if not (cert_file.is_file() and key_file.is_file()):
        addresses = ["127.0.0.1", "::1"]
        try:
            if not ipaddress.ip_address(host).is_unspecified:
                addresses.append(host)
        except ValueError:
            node_names = [*node_names, host]
        _create_certificate(cert_file, key_file, node_names, addresses)
    host_key = _ed25519(state_dir / "ssh_host_ed25519_key", "root@pve-sim")
    client_key = _ed25519(state_dir / "id_ed25519", "pve-sim-client")
    return KeyMaterial(
        cert_file=cert_file,
        key_file=key_file,
        fingerprint=cert_fingerprint(cert_file.read_bytes()),
        host_key=host_key,
        host_key_fingerprint=host_key.get_fingerprint("sha256"),
        host_public_key=_bare_public(host_key),
        client_key_file=state_dir / "id_ed25519",
        client_public_key=client_key.convert_to_public(),
    )
