"""The one CIDR match: a client and a network match however either is written (IPv4 or IPv4-mapped IPv6)."""

from __future__ import annotations

import pytest
from proxmox_mcp_runtime.networks import address_in, parse_network, parse_networks


@pytest.mark.parametrize("address, networks, inside", [
    ("10.1.2.3", ["10.0.0.0/8"], True),
    ("::ffff:10.1.2.3", ["10.0.0.0/8"], True),               # an IPv4 client seen on a dual-stack socket
    ("10.1.2.3", ["::ffff:10.0.0.0/104"], True),             # the network written in its mapped form
    ("::ffff:10.1.2.3", ["::ffff:10.0.0.0/104"], True),
    ("::ffff:192.168.1.1", ["10.0.0.0/8"], False),
    ("192.168.1.1", ["::ffff:10.0.0.0/104"], False),
    ("2001:db8::1", ["2001:db8::/32"], True),
    ("2001:db8::1", ["10.0.0.0/8"], False),
    ("10.1.2.3", ["::/0"], False),                           # an IPv6 network does not take in IPv4 clients
    ("10.1.2.3", ["192.168.0.0/16", "10.1.2.3"], True),      # a single address is a /32
    ("not-an-ip", ["0.0.0.0/0"], False),
    (None, ["0.0.0.0/0"], False),
    ("", ["0.0.0.0/0"], False),
])
def test_an_address_matches_a_network_however_either_is_written(
    address: str | None, networks: list[str], inside: bool
) -> None:
    assert address_in(address, parse_networks(networks)) is inside


def test_a_mapped_network_is_kept_in_its_ipv4_form() -> None:
    assert str(parse_network("::ffff:10.0.0.0/104")) == "10.0.0.0/8"
    assert str(parse_network("::ffff:10.1.2.3")) == "10.1.2.3/32"
    assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"  # host bits allowed, as operators write them
    assert str(parse_network("2001:db8::/32")) == "2001:db8::/32"


@pytest.mark.parametrize("bad", ["10.0.0.300/8", "lan", "10.0.0.0/33", ""])
def test_a_bad_network_is_refused_naming_the_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or CIDR network") as caught:
        parse_networks(["10.0.0.0/8", bad])
    assert repr(bad) in str(caught.value)
