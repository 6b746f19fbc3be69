"""`proxmox-mcp keygen`: an ed25519 key pair for the workers, and the lines that authorize it on a host."""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEFAULT_OUT = Path("~/.config/proxmox-mcp/id_ed25519")


class KeygenError(Exception):
    """The key cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    public_line: str
    """`ssh-ed25519 AAAA... comment`, as in the .pub file."""
    fingerprint: str
    """SHA256:..., as ssh-keygen -lf prints it."""


def fingerprint_of(public_line: str) -> str:
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeygenError(f"{path} already exists; keep it, or pass --force to replace it") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)  # O_CREAT's mode is filtered by the umask, and --force keeps an old file's mode


def generate(out: Path, comment: str, passphrase: bytes | None = None, *, force: bool = False) -> KeyPair:
    """Write out (0600) and out.pub (0644); refuse to replace existing files unless force."""
    out = out.expanduser()
    public_path = out.with_name(out.name + ".pub")
    if not force:
        for path in (out, public_path):
            if path.exists():
                raise KeygenError(f"{path} already exists; keep it, or pass --force to replace it")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}".strip()
    _write_new(out, private, 0o600, force)
    _write_new(public_path, (line + "\n").encode(), 0o644, force)
    return KeyPair(private_path=out, public_path=public_path, public_line=line, fingerprint=fingerprint_of(line))


def authorized_keys_options(sources: list[str], *, tunnel: bool) -> str:
    """`restrict` turns off pty, agent/X11/port forwarding; `from=` limits where the key is accepted."""
    options = ["restrict"]
    if tunnel:
        # The api-worker's ssh-tunnel mode forwards to the host's own API port and nothing else.
        options += ["port-forwarding", 'permitopen="127.0.0.1:8006"', 'permitopen="localhost:8006"']
    options.append(f'from="{",".join(sources) if sources else "THIS_HOST_IP"}"')
    return ",".join(options)


def _valid_source(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        if not value or any(c in value for c in '",\n ') or len(value) > 253:
            raise argparse.ArgumentTypeError(f"{value!r} is not an address, CIDR or host name") from None
    return value


def _read_passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        text = path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise KeygenError(f"cannot read the passphrase file {path}: {exc.strerror}") from None
    if not text:
        raise KeygenError(f"the passphrase file {path} is empty")
    return text.encode()


def instructions(pair: KeyPair, args: argparse.Namespace) -> str:
    sources: list[str] = args.source or []
    target = f"{args.user}@{args.host or 'PROXMOX_HOST'}"
    options = authorized_keys_options(sources, tunnel=args.tunnel)
    copy = ["ssh-copy-id", "-i", str(pair.public_path)]
    if args.port != 22:
        copy += ["-p", str(args.port)]
    lines = [
        f"Wrote the private key {pair.private_path} (mode 0600) and the public key {pair.public_path} (0644).",
        f"Fingerprint: {pair.fingerprint} (ED25519)",
        "",
        f"On each Proxmox host, append this line to ~{args.user}/.ssh/authorized_keys:",
        "",
        f"{options} {pair.public_line}",
        "",
        "or copy the key with ssh-copy-id, then put the options above in front of the line it added:",
        "",
        shlex.join([*copy, target]),
    ]
    if not sources:
        lines += ["", "Replace THIS_HOST_IP with the address the workers connect from (or pass --from CIDR)."]
    lines += ["", f"Then point the workers at it: SSH_KEY_PATH={pair.private_path} (or ssh.key_path), and run "
                  "`proxmox-mcp doctor`."]
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:  # pyright: ignore[reportPrivateUsage] (argparse has no public name for it)
    parser = sub.add_parser("keygen", help="create an ed25519 key pair for the workers and print how to authorize it",
                            description="Create an ed25519 SSH key pair (private 0600, public 0644) and print the "
                                        "authorized_keys line with the recommended restrict,from=... options.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"private key path (default {DEFAULT_OUT}; "
                        "the public key gets .pub)")
    parser.add_argument("--comment", default=f"proxmox-mcp@{socket.gethostname()}", help="key comment")
    parser.add_argument("--passphrase-file", type=Path, help="encrypt the key with the passphrase in this file "
                        "(never pass secrets as arguments)")
    parser.add_argument("--from", dest="source", action="append", type=_valid_source, metavar="CIDR",
                        help="address or CIDR the workers connect from (repeatable), for from=\"...\"")
    parser.add_argument("--user", default="pmcp", help="the SSH user on the Proxmox hosts (default pmcp)")
    parser.add_argument("--host", help="a Proxmox host, for the ssh-copy-id line")
    parser.add_argument("--port", type=int, default=22, help="its SSH port (default 22)")
    parser.add_argument("--tunnel", action="store_true", help="allow forwarding to the host's API port only "
                        "(api mode ssh-tunnel)")
    parser.add_argument("--force", action="store_true", help="replace an existing key pair")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        passphrase = _read_passphrase(args.passphrase_file)
        pair = generate(args.out, args.comment, passphrase, force=args.force)
    except KeygenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    print(instructions(pair, args))
    return 0
