"""The network edge's own rules; the edge as a client meets it, through the whole app: test_app.py."""

from __future__ import annotations

import pytest
from proxmox_mcp_gateway.edge import effective_client
from proxmox_mcp_runtime.networks import parse_networks


@pytest.mark.parametrize("peer,xff,trusted,expected", [
    ("10.0.0.9", ["6.6.6.6"], [], "10.0.0.9"),                                  # no proxy configured: ignored
    ("10.0.0.9", ["6.6.6.6"], ["127.0.0.1"], "10.0.0.9"),                       # peer is not the proxy: ignored
    ("127.0.0.1", ["6.6.6.6"], ["127.0.0.1"], "6.6.6.6"),                       # from the proxy: believed
    ("127.0.0.1", ["6.6.6.6, 10.1.1.1"], ["127.0.0.1"], "10.1.1.1"),            # right-most untrusted hop wins
    ("127.0.0.1", ["6.6.6.6", "10.1.1.1, 10.0.0.2"], ["127.0.0.1", "10.0.0.0/24"], "10.1.1.1"),
    ("127.0.0.1", ["garbage"], ["127.0.0.1"], "127.0.0.1"),                     # malformed: stay with the proxy
    ("127.0.0.1", [], ["127.0.0.1"], "127.0.0.1"),
    ("::ffff:10.0.0.1", [], [], "10.0.0.1"),
])
def test_effective_client_believes_forwarded_for_only_from_trusted_proxies(
    peer: str, xff: list[str], trusted: list[str], expected: str
) -> None:
    assert effective_client(peer, xff, parse_networks(trusted)) == expected
