"""Loading the client's private key: permission check, key type detection, passphrase errors that say what to do."""

from __future__ import annotations

import base64
import re
import stat
import struct
from pathlib import Path

import paramiko
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

_OPENSSH_MAGIC = b"openssh-key-v1\x00"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_KEY_CLASSES: dict[str, type[paramiko.PKey]] = {
    "ssh-ed25519": paramiko.Ed25519Key,
    "ssh-rsa": paramiko.RSAKey,
    "ecdsa-sha2-nistp256": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp384": paramiko.ECDSAKey,
    "ecdsa-sha2-nistp521": paramiko.ECDSAKey,
}
_PEM_CLASSES: dict[bytes, type[paramiko.PKey]] = {
    b"RSA PRIVATE KEY": paramiko.RSAKey,
    b"EC PRIVATE KEY": paramiko.ECDSAKey,
}


def key_problem(message: str) -> ServiceFailure:
    """The key cannot be used as configured: nothing a retry fixes, so not retryable."""
    return ServiceFailure(ErrorCode.UNAVAILABLE, f"SSH is misconfigured: {message}", retryable=False)


def check_key_permissions(path: Path) -> None:
    """Refuse a private key other users can read or write, like OpenSSH does."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise key_problem(f"private key {path} does not exist") from None
    except PermissionError:
        raise key_problem(f"private key {path} cannot be read by the worker's user") from None
    if not stat.S_ISREG(mode):
        raise key_problem(f"private key {path} is not a regular file")
    if mode & 0o077:
        raise key_problem(
            f"private key {path} is accessible by group/others (mode {stat.S_IMODE(mode):04o}); "
            f"fix it with: chmod 600 {path}"
        )


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", blob, offset)
    start = offset + 4
    if start + length > len(blob):
        raise ValueError("truncated")
    return blob[start : start + length], start + length


def _openssh_header(body: bytes) -> tuple[str, bool]:
    """Key type and whether it is encrypted, from the unencrypted header of an OpenSSH private key."""
    blob = base64.b64decode(b"".join(body.split()))
    if not blob.startswith(_OPENSSH_MAGIC):
        raise ValueError("not an openssh-key-v1 blob")
    offset = len(_OPENSSH_MAGIC)
    cipher, offset = _read_string(blob, offset)
    _kdf, offset = _read_string(blob, offset)
    _kdf_options, offset = _read_string(blob, offset)
    offset += 4  # number of keys
    public_blob, offset = _read_string(blob, offset)
    key_type, _ = _read_string(public_blob, 0)
    return key_type.decode("ascii", "replace"), cipher != b"none"


def identify_key(data: bytes) -> tuple[type[paramiko.PKey] | None, str, bool]:
    """(paramiko class or None when unsupported, key type name, encrypted) for a private key file's bytes."""
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise ValueError("no PEM block")
    label, body = match.group(1), match.group(2)
    if label == b"OPENSSH PRIVATE KEY":
        key_type, encrypted = _openssh_header(body)
        return _KEY_CLASSES.get(key_type), key_type, encrypted
    if label in _PEM_CLASSES:
        cls = _PEM_CLASSES[label]
        return cls, label.decode().lower(), b"ENCRYPTED" in body
    if label in (b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"):
        return None, "pkcs8", label.startswith(b"ENCRYPTED")
    return None, label.decode(errors="replace").lower(), False


def load_private_key(path: Path, passphrase: str | None) -> paramiko.PKey:
    """Load an ed25519/ECDSA/RSA private key (OpenSSH or PEM format), encrypted or not.

    Every failure is a ServiceFailure whose message names the file and the fix, never the key material
    or the passphrase.
    """
    check_key_permissions(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise key_problem(f"private key {path} cannot be read ({exc.strerror})") from None
    try:
        cls, key_type, encrypted = identify_key(data)
    except (ValueError, struct.error):
        raise key_problem(f"{path} is not a private key file (expected OpenSSH or PEM format)") from None
    if encrypted and not passphrase:
        raise key_problem(
            f"private key {path} is encrypted but no passphrase is configured "
            "(set ssh.key_passphrase or SSH_KEY_PASSPHRASE)"
        )
    if cls is None:
        if key_type == "pkcs8":
            return _load_pkcs8(path, passphrase, encrypted)
        raise key_problem(f"private key {path} has an unsupported type {key_type!r} (use ed25519, ECDSA or RSA)")
    try:
        return cls.from_private_key_file(str(path), password=passphrase if encrypted else None)
    except paramiko.PasswordRequiredException:
        raise key_problem(f"private key {path} is encrypted but no passphrase is configured") from None
    except (paramiko.SSHException, ValueError, TypeError):
        if encrypted:
            raise key_problem(f"the passphrase for private key {path} is wrong") from None
        raise key_problem(f"private key {path} could not be read as a {key_type} key") from None


def _load_pkcs8(path: Path, passphrase: str | None, encrypted: bool) -> paramiko.PKey:
    try:
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase and encrypted else None)  # pyright: ignore[reportArgumentType]
    except (paramiko.SSHException, ValueError, TypeError):
        if encrypted:
            raise key_problem(f"the passphrase for private key {path} is wrong") from None
        raise key_problem(f"private key {path} could not be read (PKCS#8 ed25519/ECDSA/RSA expected)") from None
