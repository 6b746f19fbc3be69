"""The doctor's SSH checks, with the shared SSH module (no second SSH implementation): the key, reachability,
host key pinning, each login method, the user's rights on the host and pveproxy."""

from __future__ import annotations

import contextlib
import shlex
import socket
import stat
import threading
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import paramiko
from proxmox_mcp_contracts.errors import ServiceFailure
from proxmox_mcp_contracts.settings import HostConfig, SshSettings
from proxmox_mcp_runtime.ssh.command import CommandOutput, run_on_transport
from proxmox_mcp_runtime.ssh.connection import ConnectFailed, Credentials, Target, open_socket, open_transport
from proxmox_mcp_runtime.ssh.keys import identify_key
from proxmox_mcp_runtime.ssh.trust import HostKeyRefused, HostKeyVerifier, known_hosts_name

from proxmox_mcp_cli.doctor_report import Report

ROOT_COMMANDS = ("qm", "pct", "pvesh")
README_SECURITY = "README.md#security"


@dataclass
class SshOptions:
    timeout: float = 5.0
    allow_root: bool = False


def _key_fix(path: Path) -> str:
    return f"create a key pair with `proxmox-mcp keygen --out {path}`, or point ssh.key_path / SSH_KEY_PATH at yours"


def check_key(report: Report, ssh: SshSettings) -> paramiko.PKey | None:
    """File, permissions, format, passphrase, matching .pub. Returns the loaded key when it is usable."""
    if ssh.key_path is None:
        if ssh.password is None:
            report.fail("ssh.credentials", "no SSH key and no password configured",
                        "set SSH_KEY_PATH (or ssh.key_path; `proxmox-mcp keygen` makes one) or SSH_PASSWORD")
        else:
            report.skip("ssh.key", "no key configured: password authentication only")
        return None
    path = ssh.key_path.expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        report.fail("ssh.key.file", f"{path} does not exist", _key_fix(path))
        return None
    except PermissionError:
        report.fail("ssh.key.file", f"{path} cannot be read by this user",
                    "run the doctor as the user the workers run as (or with sudo)")
        return None
    if not stat.S_ISREG(info.st_mode):
        report.fail("ssh.key.file", f"{path} is not a regular file", _key_fix(path))
        return None
    report.ok("ssh.key.file", f"{path} exists")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        report.fail("ssh.key.permissions",
                    f"{path} is readable by group/others (mode {mode:04o}); the workers refuse it",
                    f"chmod 600 {shlex.quote(str(path))}")
    else:
        report.ok("ssh.key.permissions", f"mode {mode:04o}")
    try:
        data = path.read_bytes()
        cls, key_type, encrypted = identify_key(data)
    except (OSError, ValueError, IndexError):
        report.fail("ssh.key.format", f"{path} is not a private key (OpenSSH or PEM expected)",
                    "point ssh.key_path at the private key file, not the .pub")
        return None
    if cls is None:
        report.fail("ssh.key.format", f"{path} holds an unsupported key type ({key_type})",
                    "use an ed25519 key: `proxmox-mcp keygen`")
        return None
    passphrase = ssh.key_passphrase.get_secret_value() if ssh.key_passphrase else None
    if encrypted and not passphrase:
        report.fail("ssh.key.passphrase", "the key is encrypted but no passphrase is configured",
                    "set SSH_KEY_PASSPHRASE (or ssh.key_passphrase)")
        return None
    try:
        key = cls.from_private_key_file(str(path), password=passphrase if encrypted else None)
    except paramiko.PasswordRequiredException:
        report.fail("ssh.key.passphrase", "the key is encrypted but no passphrase is configured",
                    "set SSH_KEY_PASSPHRASE (or ssh.key_passphrase)")
        return None
    except (paramiko.SSHException, ValueError, TypeError):
        if encrypted:
            report.fail("ssh.key.passphrase", "the configured passphrase does not decrypt the key",
                        "set SSH_KEY_PASSPHRASE to this key's passphrase (check: ssh-keygen -y -f KEY)")
        else:
            report.fail("ssh.key.format", f"{path} could not be read as a {key_type} key", _key_fix(path))
        return None
    bits = key.get_bits()
    if key.get_name() == "ssh-rsa" and bits < 2048:
        report.fail("ssh.key.format", f"RSA key of {bits} bits is too weak",
                    "create an ed25519 key: `proxmox-mcp keygen`")
    else:
        report.ok("ssh.key.format", f"{key.get_name()} ({bits} bits)")
    report.ok("ssh.key.passphrase", "encrypted; the passphrase works" if encrypted else "not encrypted")
    check_public_key(report, path, key)
    return key


def check_public_key(report: Report, path: Path, key: paramiko.PKey) -> None:
    public = path.with_name(path.name + ".pub")
    if not public.is_file():
        report.skip("ssh.key.public", f"no {public.name} beside the key (not needed)")
        return
    fields = public.read_text(errors="replace").split()
    blob = next((f for f in fields if f.startswith("AAAA")), None)
    if blob == key.get_base64():
        report.ok("ssh.key.public", f"{public.name} matches the private key")
    else:
        report.fail("ssh.key.public", f"{public.name} does not belong to the private key (authorized_keys on the "
                    "hosts may hold the wrong key)", f"ssh-keygen -y -f {path} > {public}")


def target_of(ssh: SshSettings, host: HostConfig) -> Target:
    return Target(node=host.node, address=host.address, port=host.port or ssh.port)


def check_host_key(report: Report, ssh: SshSettings, target: Target, timeout: float) -> bool:
    """True when the host's key is trusted (pinned and matching, or demo-mode accept_unknown)."""
    name = f"ssh.host_key[{target.node}]"
    verifier = HostKeyVerifier.from_settings(ssh)
    try:
        sock = open_socket(target, timeout)
    except ConnectFailed as exc:
        report.fail(f"ssh.reach[{target.node}]", exc.info.message,
                    f"check that sshd listens on {target.address}:{target.port} and no firewall blocks it "
                    f"(ssh -p {target.port} {ssh.user}@{target.address})")
        return False
    report.ok(f"ssh.reach[{target.node}]", f"{target.address}:{target.port} accepts connections")
    transport = paramiko.Transport(sock)
    try:
        options = transport.get_security_options()
        preferred = verifier.preferred_algorithms(target.address, target.port, tuple(options.key_types))
        if preferred is not None:
            options.key_types = preferred
        transport.banner_timeout = transport.handshake_timeout = timeout
        try:
            transport.start_client(timeout=timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            report.fail(name, f"SSH handshake failed ({type(exc).__name__})",
                        f"is {target.address}:{target.port} an SSH server? check sshd's log on {target.node}")
            return False
        key = transport.get_remote_server_key()
        fingerprint = key.fingerprint
        try:
            verifier.verify(target.node, target.address, target.port, key)
        except HostKeyRefused as refused:
            files = " ".join(str(p) for p in verifier.known_hosts_files)
            if refused.changed:
                report.fail(name, f"the host key changed: {key.get_name()} {fingerprint} is not the pinned key",
                            "if the host was reinstalled, verify the new key on the host (ssh-keygen -lf "
                            "/etc/ssh/ssh_host_ed25519_key.pub) and update known_hosts / host_key_fingerprints; "
                            "otherwise someone may be intercepting the connection")
            else:
                scan = f"ssh-keyscan -p {target.port} {target.address} >> {files}"
                report.fail(name, f"the host key is not pinned ({key.get_name()} {fingerprint})",
                            f"check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then pin it: "
                            f"host_key_fingerprints = [\"{fingerprint}\"] (SSH_HOST_KEY_FINGERPRINT) or {scan}")
            return False
        pinned = fingerprint in verifier.pinned or bool(verifier.known_keys(target.address, target.port))
        if pinned:
            where = "pinned fingerprint" if fingerprint in verifier.pinned else \
                f"known_hosts entry {known_hosts_name(target.address, target.port)}"
            report.ok(name, f"{key.get_name()} {fingerprint} matches the {where}")
        else:
            report.warn(name, f"accepting an unpinned host key {fingerprint} (accept_unknown_host_keys: demo only)",
                        f"pin it: host_key_fingerprints = [\"{fingerprint}\"]")
        return True
    finally:
        transport.close()


def _login(ssh: SshSettings, target: Target, credentials: Credentials, timeout: float) -> paramiko.Transport:
    return open_transport(target, credentials, HostKeyVerifier.from_settings(ssh), timeout=timeout,
                          keepalive_interval=0)


def check_logins(report: Report, ssh: SshSettings, target: Target, key: paramiko.PKey | None,
                 timeout: float) -> paramiko.Transport | None:
    """Log in with each configured method separately; returns one authenticated transport (caller closes)."""
    methods: list[tuple[str, Credentials]] = []
    if key is not None:
        methods.append(("publickey", Credentials(user=ssh.user, key=key, password=None)))
    if ssh.password is not None:
        methods.append(("password", Credentials(user=ssh.user, key=None, password=ssh.password.get_secret_value())))
    if not methods:
        report.skip(f"ssh.auth[{target.node}]", "no usable credentials to try (see the key checks above)")
        return None
    kept: paramiko.Transport | None = None
    for method, credentials in methods:
        name = f"ssh.auth.{method}[{target.node}]"
        try:
            transport = _login(ssh, target, credentials, timeout)
        except ConnectFailed as exc:
            if exc.outcome == "auth_failed":
                fix = (f"authorize the key for {ssh.user} on {target.node}: `proxmox-mcp keygen` prints the "
                       "authorized_keys line; or ssh-copy-id -i KEY.pub "
                       f"-p {target.port} {ssh.user}@{target.address}") if method == "publickey" else \
                      f"check SSH_PASSWORD and that sshd allows PasswordAuthentication for {ssh.user}"
                report.fail(name, f"{target.node} refused {method} login for user {ssh.user}", fix)
            else:
                report.fail(name, exc.info.message, "see the reach and host key checks above")
            continue
        except ServiceFailure as exc:
            report.fail(name, exc.info.message, None)
            continue
        report.ok(name, f"{method} login as {ssh.user} works")
        if kept is None:
            kept = transport
        else:
            transport.close()
    return kept


def run(transport: paramiko.Transport, command: str, timeout: float) -> CommandOutput | None:
    try:
        return run_on_transport(transport, command, timeout=timeout, max_output=64 * 1024, open_timeout=timeout,
                                cancel=threading.Event())
    except (ServiceFailure, Exception):
        return None


def check_user_rights(report: Report, ssh: SshSettings, target: Target, transport: paramiko.Transport,
                      options: SshOptions) -> None:
    node = target.node
    who = run(transport, "whoami", options.timeout)
    user = who.stdout.decode(errors="replace").strip() if who is not None and who.exit_code == 0 else ssh.user
    if user == "root":
        if options.allow_root:
            report.ok(f"ssh.user[{node}]", "logged in as root (allowed by --allow-root)")
        else:
            report.warn(f"ssh.user[{node}]", "logged in as root: every command runs with full rights",
                        f"use a limited user with the sudoers entries from {README_SECURITY} "
                        "(or pass --allow-root if root is intended)")
        return
    report.ok(f"ssh.user[{node}]", f"logged in as {user} (not root)")
    sudo = run(transport, "sudo -n -l", options.timeout)
    text = sudo.stdout.decode(errors="replace") if sudo is not None else ""
    if sudo is None or sudo.exit_code != 0:
        report.warn(f"ssh.sudo[{node}]", f"{user} has no passwordless sudo rules: commands that need root "
                    f"({', '.join(ROOT_COMMANDS)}) will fail", f"add the sudoers entries from {README_SECURITY}")
        return
    allowed = [c for c in ROOT_COMMANDS if c in text and "NOPASSWD" in text]
    missing = [c for c in ROOT_COMMANDS if c not in allowed]
    if missing:
        report.warn(f"ssh.sudo[{node}]", f"passwordless sudo lacks {', '.join(missing)}",
                    f"add the sudoers entries your command profile needs ({README_SECURITY})")
    else:
        report.ok(f"ssh.sudo[{node}]", f"passwordless sudo for {', '.join(allowed)}")


def check_pveproxy(report: Report, target: Target, transport: paramiko.Transport, timeout: float) -> None:
    name = f"pveproxy[{target.node}]"
    result = run(transport, "systemctl is-active pveproxy", timeout)
    state = result.stdout.decode(errors="replace").strip() if result is not None else ""
    if state == "active":
        report.ok(name, "pveproxy (the API on port 8006) is active")
    elif state in ("inactive", "failed", "activating", "deactivating", "reloading"):
        report.fail(name, f"pveproxy is {state}: the API on port 8006 does not answer",
                    f"on {target.node}: systemctl restart pveproxy; journalctl -u pveproxy -n 50")
    else:
        code = "no answer" if result is None else f"exit {result.exit_code}"
        report.skip(name, f"cannot tell whether pveproxy runs (systemctl unavailable or not allowed: {code})")


@contextlib.contextmanager
def host_session(report: Report, ssh: SshSettings, host: HostConfig, key: paramiko.PKey | None,
                 options: SshOptions) -> Generator[paramiko.Transport | None, None, None]:
    """Reach, host key and logins for one host; yields an authenticated transport for more checks (or None)."""
    target = target_of(ssh, host)
    if not check_host_key(report, ssh, target, options.timeout):
        report.skip(f"ssh.auth[{target.node}]", "not sending credentials to a host that is not reachable/trusted")
        yield None
        return
    transport = check_logins(report, ssh, target, key, options.timeout)
    try:
        yield transport
    finally:
        if transport is not None:
            transport.close()


def tcp_reachable(address: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection opens, else why not (for the API port)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g}s"
    except ConnectionRefusedError:
        return "connection refused"
    except socket.gaierror:
        return "the address does not resolve"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
