"""A private network of Linux network namespaces for tests that need a real partition.

Layout: one bridge in the root namespace carries a private /24; each member gets its own namespace and a
veth pair whose root end is a port of that bridge. The test process reaches every member through the
bridge; members reach each other across it. Cutting a member sets the root end of its veth down: the
member keeps its address and its sockets, but no packet goes in or out (no RST, no FIN) until it is healed,
exactly like a pulled cable. Needs root and iproute2 (`ip netns`); nothing here touches sysctls or iptables.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_LOCK = Path("/run/pmcp-netns.lock")
_PREFIX = "pmcp-ha"
_NAME = re.compile(rf"^{_PREFIX}-(?P<pid>\d+)-(?P<tag>[0-9a-f]{{6}})-(?P<member>\w+)$")
_SUPERNET = ipaddress.ip_network("10.213.0.0/16")


class NetnsError(RuntimeError):
    """An `ip` command failed; the message has the command and its stderr."""


def require_netns() -> None:
    """Skip locally when namespaces cannot be made here (not root, no `ip`); fail in CI (PMCP_REQUIRE_BINARIES=1)."""
    problem = None
    if shutil.which("ip") is None:
        problem = "iproute2 (`ip`) is not installed"
    elif os.geteuid() != 0:
        problem = "network namespaces need root"
    if problem is None:
        return
    if os.environ.get("PMCP_REQUIRE_BINARIES") == "1":
        pytest.fail(problem)
    pytest.skip(problem)


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Member:
    """One namespace on the private network."""

    name: str
    """Short name (`n1`): the last part of the namespace name."""
    netns: str
    address: str
    root_link: str
    """The veth end in the root namespace (a bridge port): down means cut off."""

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the namespace (`ip netns exec` execs in place: the PID is the program's own)."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class PrivateNetwork:
    tag: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway_address: str
    """The bridge's own address: where the members see the test process."""
    members: dict[str, Member] = field(default_factory=dict)

    def add_member(self, name: str) -> Member:
        index = len(self.members) + 1
        netns = f"{_PREFIX}-{os.getpid()}-{self.tag}-{name}"
        root_link, inner_link = f"pmcp{self.tag}{name}"[:15], f"pmcp{self.tag}p{index}"[:15]
        address = str(self.subnet.network_address + index)
        ip("netns", "add", netns)
        member = Member(name=name, netns=netns, address=address, root_link=root_link)
        self.members[name] = member
        ip("link", "add", root_link, "type", "veth", "peer", "name", inner_link, "netns", netns)
        ip("link", "set", root_link, "master", self.bridge, "up")
        ip("-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", inner_link)
        ip("-n", netns, "link", "set", inner_link, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        return member

    def cut(self, name: str) -> None:
        ip("link", "set", self.members[name].root_link, "down")

    def heal(self, name: str) -> None:
        ip("link", "set", self.members[name].root_link, "up")

    @contextlib.contextmanager
    def partitioned(self, name: str) -> Iterator[Member]:
        """Cut a member off for the block; healed on the way out, whatever happened inside."""
        self.cut(name)
        try:
            yield self.members[name]
        finally:
            self.heal(name)

    def close(self) -> None:
        """Remove every namespace (killing what still runs in one: only our own processes live there) and the
        bridge. Safe to call twice."""
        for member in self.members.values():
            _delete_namespace(member.netns)
        self.members.clear()
        ip("link", "del", self.bridge, check=False)


def create_network() -> PrivateNetwork:
    """A new bridge on a /24 of 10.213.0.0/16 that no interface or route of this machine uses yet."""
    sweep_stale()
    tag = f"{random.getrandbits(24):06x}"
    bridge = f"pmcp{tag}br"
    with _locked():
        subnet = _free_subnet()
        gateway_address = str(subnet.broadcast_address - 1)
        ip("link", "add", bridge, "type", "bridge")
        try:
            ip("addr", "add", f"{gateway_address}/{subnet.prefixlen}", "dev", bridge)
            ip("link", "set", bridge, "up")
        except NetnsError:
            ip("link", "del", bridge, check=False)
            raise
    return PrivateNetwork(tag=tag, bridge=bridge, subnet=subnet, gateway_address=gateway_address)


@contextlib.contextmanager
def private_network() -> Iterator[PrivateNetwork]:
    require_netns()
    network = create_network()
    try:
        yield network
    finally:
        network.close()


def sweep_stale() -> None:
    """Remove what an earlier test process killed before its `finally` left behind (its PID is gone)."""
    for line in ip("netns", "list").splitlines():
        found = _NAME.match(line.split(" ", 1)[0])
        if found is None or _pid_alive(int(found["pid"])):
            continue
        _delete_namespace(found.group(0))
        ip("link", "del", f"pmcp{found['tag']}br", check=False)


def _delete_namespace(netns: str) -> None:
    for pid in ip("netns", "pids", netns, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    ip("netns", "del", netns, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_subnet() -> ipaddress.IPv4Network:
    used = [ipaddress.ip_network(word, strict=False)
            for line in ip("-o", "-4", "route", "show", "table", "all").splitlines()
            for word in line.split()[:1] if word[0].isdigit()]
    used += [ipaddress.ip_network(word, strict=False)
             for line in ip("-o", "-4", "addr", "show").splitlines()
             for word in line.split() if "/" in word and word[0].isdigit()]
    candidates = list(_SUPERNET.subnets(new_prefix=24))[1:-1]
    random.shuffle(candidates)
    for subnet in candidates:
        if not any(subnet.overlaps(other) for other in used if other.prefixlen > 0):
            return subnet  # pyright: ignore[reportReturnType]
    raise NetnsError(f"no free /24 left in {_SUPERNET}")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Two test sessions choosing a subnet at the same moment must not pick the same one."""
    with open(_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
