"""Client addresses and networks: the one CIDR match behind the gateway's address allowlist, its trusted-proxy
walk and the networks a token is restricted to.

An IPv4 client reaching a dual-stack listener shows up as an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`), and
an operator may write a network either way (`10.0.0.0/8` or `::ffff:10.0.0.0/104`). Both sides are compared in
their IPv4 form, so the same client and the same network match however they are written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED_PREFIX = 96
"""Length of ::ffff:0:0/96, the IPv4-mapped range: a mapped network's IPv4 prefix is its own minus this."""


def parse_address(text: str) -> IpAddress | None:
    """A plain address (no port), IPv4-mapped IPv6 in its IPv4 form; None for anything that is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_network(text: str) -> IpNetwork:
    """A CIDR network or a single address (host bits allowed), an IPv4-mapped one in its IPv4 form.

    Raises ValueError naming the entry."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR network") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= _MAPPED_PREFIX:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED_PREFIX))
    return network


def parse_networks(items: Iterable[str]) -> tuple[IpNetwork, ...]:
    """Every entry through parse_network; raises ValueError naming the first bad one."""
    return tuple(parse_network(item) for item in items)


def address_in(address: str | IpAddress | None, networks: Iterable[IpNetwork]) -> bool:
    """Whether the address lies in one of the networks; an address that is missing or not an IP is in none."""
    ip = parse_address(address) if isinstance(address, str) else address
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)
