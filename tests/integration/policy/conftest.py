"""A real sshd whose ed25519 key is forced through the shipped dispatcher (the rsa key stays unforced as a
control). The dispatcher copy, its log and the authorized_keys live in the sshd helper's session_dir."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.procs import missing_prerequisite
from tests.support.sshd import SshdServer, start_sshd

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "deploy" / "host" / "pmcp-dispatch"


@dataclass
class ForcedSshd:
    server: SshdServer
    dispatcher: Path
    log: Path


@pytest.fixture(scope="module")
def forced_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForcedSshd]:
    if not Path("/usr/bin/python3").exists():
        missing_prerequisite("the dispatcher's interpreter /usr/bin/python3 is not installed")
    server = start_sshd(tmp_path_factory.mktemp("sshd-policy"))
    try:
        dispatcher = server.session_dir / "pmcp-dispatch"
        shutil.copyfile(SHIPPED, dispatcher)
        dispatcher.chmod(0o755)
        log = server.session_dir / "dispatch.log"
        log.touch()
        user = pwd.getpwnam(server.user)
        os.chown(log, user.pw_uid, user.pw_gid)
        forced = f'restrict,from="127.0.0.1",command="{dispatcher} --profile readonly --log {log}" '
        ed25519_public = Path(f"{server.ed25519_key}.pub").read_text().strip()
        lines = server.authorized_keys.read_text().splitlines()
        # sshd reads authorized_keys at each login: rewriting it after the start takes effect at once
        server.authorized_keys.write_text(
            "".join(f"{forced}{line}\n" if line == ed25519_public else f"{line}\n" for line in lines)
        )
        yield ForcedSshd(server, dispatcher, log)
    finally:
        server.close()
