"""A real OpenSSH sshd for tests: private config, random loopback port, generated keys, a test user.

The user `pmcptest` is a system account shared by every test session on the machine. Its password is
set once per group of overlapping sessions (a file lock tells a session whether another one is live),
so concurrent test runs do not change the password under each other. Each session gets its own
authorized_keys file in a directory the user can read (pytest's tmp dirs are 0700 and sshd reads
authorized_keys as the target user).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.procs import Proc, find_binary, free_port, frozen, missing_prerequisite, start_process, wait_until

SSHD = "/usr/sbin/sshd"
TEST_USER = "pmcptest"
TEST_HOME = Path("/home") / TEST_USER
SETUP_LOCK = Path("/run/pmcptest-setup.lock")
SESSIONS_LOCK = Path("/run/pmcptest-sessions.lock")
PASSWORD_FILE = Path("/run/pmcptest.password")
_ACCEPTED = re.compile(r"^Accepted (?:publickey|password|keyboard-interactive\S*) for ", re.M)


@dataclass
class SshdServer:
    """A running sshd and everything a client needs to reach it. Secrets here exist only for this run."""

    workdir: Path
    port: int
    host_key_path: Path
    host_key_fingerprint: str
    known_hosts: Path
    user: str
    password: str
    ed25519_key: Path
    rsa_key: Path
    ecdsa_key: Path
    encrypted_key: Path
    passphrase: str
    session_dir: Path
    """Readable by the test user: put forced-command scripts here (removed on stop)."""
    config_path: Path
    proc: Proc
    log_path: Path
    host: str = "127.0.0.1"
    _sessions_fd: int | None = field(default=None, repr=False)

    @property
    def authorized_keys(self) -> Path:
        return self.session_dir / "authorized_keys"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def accepted_logins(self) -> int:
        """Authenticated connections so far (sshd logs one 'Accepted ...' line per connection)."""
        return len(_ACCEPTED.findall(self.log_text()))

    def stop(self) -> None:
        """Stop sshd and every connection it serves (per-connection children call setsid, so kill them too)."""
        stop_tree(self.proc)

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        """sshd and every connection and command under it stopped (SIGSTOP) for the block: a host that hangs."""
        return frozen([self.proc.pid, *descendants(self.proc.pid)])

    def restart(self) -> None:
        """Stop (dropping all connections) and start again on the same port with the same keys."""
        self.stop()
        self.proc = _launch(self.config_path, self.port, self.log_path, self.workdir)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.session_dir, ignore_errors=True)
        if self._sessions_fd is not None:
            os.close(self._sessions_fd)
            self._sessions_fd = None


def sha256_fingerprint(public_key_b64: str) -> str:
    """The `ssh-keygen -l` form of a public key's fingerprint: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(base64.b64decode(public_key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def descendants(pid: int) -> list[int]:
    """Every process below pid, read from /proc (children first found, grandchildren after)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        current = queue.pop()
        for child in children.get(current, []):
            found.append(child)
            queue.append(child)
    return found


def stop_tree(proc: Proc) -> None:
    """Stop a started process and everything it spawned, by pid (only our own processes)."""
    below = descendants(proc.pid) if proc.alive() else []
    proc.stop()
    for pid in below:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _require_root_and_sshd() -> None:
    find_binary("sshd", SSHD)
    find_binary("ssh-keygen")
    if os.geteuid() != 0:
        missing_prerequisite("the test sshd needs root (it creates the test user and runs sshd privilege separation)")


def _keygen(path: Path, kind: str, passphrase: str = "", bits: int | None = None) -> str:
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", f"pmcp-test-{kind}", "-f", str(path)]
    if bits:
        argv += ["-b", str(bits)]
    subprocess.run(argv, check=True, capture_output=True)
    path.chmod(0o600)
    return Path(f"{path}.pub").read_text().strip()


def _ensure_user() -> None:
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--home-dir", str(TEST_HOME), "--shell", "/bin/sh", TEST_USER],
            check=True, capture_output=True,
        )
    (TEST_HOME / ".ssh").mkdir(mode=0o755, exist_ok=True)


def _join_password_group() -> tuple[int, str]:
    """Hold a shared lock for the session's life; the first live session sets a fresh password."""
    SETUP_LOCK.touch(exist_ok=True)
    with open(SETUP_LOCK) as setup:
        fcntl.flock(setup, fcntl.LOCK_EX)
        _ensure_user()
        fd = os.open(SESSIONS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if PASSWORD_FILE.exists():
                return fd, PASSWORD_FILE.read_text()
            fcntl.flock(fd, fcntl.LOCK_UN)
            fcntl.flock(fd, fcntl.LOCK_EX)
        password = "pw-" + secrets.token_urlsafe(18)
        subprocess.run(["chpasswd"], input=f"{TEST_USER}:{password}\n".encode(), check=True, capture_output=True)
        pw_fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(pw_fd, "w") as handle:
            handle.write(password)
        fcntl.flock(fd, fcntl.LOCK_SH)
        return fd, password


def _write_config(workdir: Path, host_key: Path, authorized_keys: Path, pid_file: Path) -> Path:
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {pid_file}",
                f"AuthorizedKeysFile {authorized_keys}",
                f"AllowUsers {TEST_USER}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "AllowTcpForwarding yes",
                "X11Forwarding no",
                "PrintMotd no",
                "PrintLastLog no",
                "LogLevel VERBOSE",
                "MaxStartups 100:30:200",
                "",
            ]
        )
    )
    return config


def _launch(config: Path, port: int, log_path: Path, workdir: Path) -> Proc:
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    start_mark = len(log_path.read_text(errors="replace")) if log_path.exists() else 0
    proc = start_process("sshd", [SSHD, "-D", "-e", "-f", str(config), "-p", str(port), "-E", str(log_path)], workdir)

    def listening() -> bool:
        try:
            return "Server listening on" in log_path.read_text(errors="replace")[start_mark:]
        except FileNotFoundError:
            return False

    try:
        wait_until(listening, timeout=10, what=f"sshd to listen on port {port}", proc=proc)
    except Exception:
        stop_tree(proc)
        raise
    return proc


def start_sshd(workdir: Path, *, key_options: str = "") -> SshdServer:
    """Start sshd on a free loopback port. key_options prefixes every authorized_keys line
    (e.g. 'restrict,command="/path/to/dispatcher"'). Skips when sshd is missing or not root."""
    _require_root_and_sshd()
    workdir.mkdir(parents=True, exist_ok=True)
    sessions_fd, password = _join_password_group()
    session_dir = TEST_HOME / ".ssh" / f"session-{secrets.token_hex(6)}"
    try:
        session_dir.mkdir(mode=0o755)
        session_dir.chmod(0o755)
        host_key = workdir / "ssh_host_ed25519_key"
        host_pub = _keygen(host_key, "ed25519")
        host_b64 = host_pub.split()[1]
        passphrase = "pp-" + secrets.token_urlsafe(12)
        keys = {
            "ed25519": workdir / "id_ed25519",
            "rsa": workdir / "id_rsa",
            "ecdsa": workdir / "id_ecdsa",
            "encrypted": workdir / "id_ed25519_encrypted",
        }
        publics = [
            _keygen(keys["ed25519"], "ed25519"),
            _keygen(keys["rsa"], "rsa", bits=3072),
            _keygen(keys["ecdsa"], "ecdsa", bits=256),
            _keygen(keys["encrypted"], "ed25519", passphrase=passphrase),
        ]
        prefix = f"{key_options} " if key_options else ""
        authorized = session_dir / "authorized_keys"
        authorized.write_text("".join(f"{prefix}{line}\n" for line in publics))
        authorized.chmod(0o644)
        port = free_port()
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub.split()[0]} {host_b64}\n")
        config = _write_config(workdir, host_key, authorized, workdir / "sshd.pid")
        log_path = workdir / "sshd-auth.log"
        proc = _launch(config, port, log_path, workdir)
    except BaseException:
        shutil.rmtree(session_dir, ignore_errors=True)
        os.close(sessions_fd)
        raise
    return SshdServer(
        workdir=workdir, port=port, host_key_path=host_key, host_key_fingerprint=sha256_fingerprint(host_b64),
        known_hosts=known_hosts, user=TEST_USER, password=password, ed25519_key=keys["ed25519"],
        rsa_key=keys["rsa"], ecdsa_key=keys["ecdsa"], encrypted_key=keys["encrypted"], passphrase=passphrase,
        session_dir=session_dir, config_path=config, proc=proc, log_path=log_path, _sessions_fd=sessions_fd,
    )


def remote_processes(pattern: str, user: str = TEST_USER) -> list[str]:
    """Command lines of the user's processes matching pattern (sshd runs locally, so ps sees them)."""
    result = subprocess.run(["pgrep", "-a", "-u", user, "-f", pattern], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if line.strip()]


def wait_processes_gone(pattern: str, timeout: float = 8.0) -> float:
    """Seconds until no process of the test user matches pattern; raises TimeoutError otherwise."""
    started = time.monotonic()
    wait_until(lambda: not remote_processes(pattern), timeout=timeout, what=f"remote {pattern!r} to end")
    return time.monotonic() - started
