"""Proxmox schema named `format` checks, with the messages pve-common's JSONSchema.pm dies with.

Property-string formats (a `format` that is itself an object schema) are parsed in validate.py, since
their keys are checked like an object's. Named formats the module does not know are accepted: the
subset has no definition for them and a false 400 would be worse than a missed one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable


class FormatError(ValueError):
    """A value does not match its format; str() is Proxmox's message."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


def _regex_check(pattern: str, message: str, flags: int = 0) -> Callable[[str], None]:
    compiled = re.compile(pattern, flags)

    def check(value: str) -> None:
        if not compiled.fullmatch(value):
            raise FormatError(message.format(value=value))

    return check


def _ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _check_ipv4(value: str) -> None:
    if not _ipv4(value):
        raise FormatError("value does not look like a valid IPv4 address")


def _check_ipv6(value: str) -> None:
    if not _ipv6(value):
        raise FormatError("value does not look like a valid IPv6 address")


def _check_ip(value: str) -> None:
    if not (_ipv4(value) or _ipv6(value)):
        raise FormatError("value does not look like a valid IP address")


def _cidr(value: str, version: int) -> bool:
    address, sep, bits = value.partition("/")
    if not sep or not bits.isdigit():
        return False
    if version == 4:
        return _ipv4(address) and 7 < int(bits) <= 32
    return _ipv6(address) and 7 < int(bits) <= 128


def _check_cidrv4(value: str) -> None:
    if not _cidr(value, 4):
        raise FormatError("value does not look like a valid IPv4 CIDR network")


def _check_cidrv6(value: str) -> None:
    if not _cidr(value, 6):
        raise FormatError("value does not look like a valid IPv6 CIDR network")


def _check_cidr(value: str) -> None:
    if not (_cidr(value, 4) or _cidr(value, 6)):
        raise FormatError("value does not look like a valid CIDR network")


_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS_NAME = re.compile(rf"({_DNS_LABEL}\.)*{_DNS_LABEL}")


def _check_dns_name(value: str) -> None:
    if not _DNS_NAME.fullmatch(value):
        raise FormatError("value does not look like a valid DNS name")


def _check_address(value: str) -> None:
    if not (_ipv4(value) or _ipv6(value) or _DNS_NAME.fullmatch(value)):
        raise FormatError(f"value does not look like a valid address: {value}")


_MASKS = {str(ipaddress.IPv4Network(f"0.0.0.0/{bits}").netmask) for bits in range(33)}


def _check_ipv4mask(value: str) -> None:
    if value not in _MASKS:
        raise FormatError("value does not look like a valid IP netmask")


def _check_disk_size(value: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?[KMGT]?", value):
        raise FormatError(f"value does not look like a valid disk size: {value}")


def _check_startup(value: str) -> None:
    parts = [p for p in value.split(",") if p.strip()]
    if not parts or not all(re.fullmatch(r"(order=)?\d+|up=\d+|down=\d+", p) for p in parts):
        raise FormatError("unable to parse startup options")


_REALM = r"[A-Za-z][A-Za-z0-9\.\-_]+"
_USERID = rf"[^\s:/]+@{_REALM}"
_TOKEN_NAME = r"[A-Za-z][A-Za-z0-9\.\-_]+"


def _check_userid(value: str) -> None:
    if len(value) > 64 or not re.fullmatch(_USERID, value):
        raise FormatError(f"value '{value}' does not look like a valid user name")


def _check_tokenid(value: str) -> None:
    if not re.fullmatch(rf"{_USERID}!{_TOKEN_NAME}", value):
        raise FormatError(f"value '{value}' does not look like a valid token ID")


_CONTENT_TYPES = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"}


def _check_content(value: str) -> None:
    if value not in _CONTENT_TYPES:
        raise FormatError(f"invalid content type '{value}'")


# name -> validator raising FormatError; "-list" and "-opt" variants are derived.
NAMED_FORMATS: dict[str, Callable[[str], None]] = {
    "pve-configid": _regex_check(r"[a-z][a-z0-9_-]+", "invalid configuration ID '{value}'", re.I),
    "pve-storage-id": _regex_check(
        r"[a-z][a-z0-9\-_.]*[a-z0-9]", "storage ID '{value}' contains illegal characters", re.I
    ),
    "pve-bridge-id": _regex_check(r"[-_.\w\d]+", "invalid bridge ID '{value}'"),
    "pve-vmid": _regex_check(r"[1-9][0-9]{2,8}", "value does not look like a valid VM ID"),
    "pve-node": _regex_check(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", "value does not look like a valid node name"),
    "pve-iface": _regex_check(r"[a-z][a-z0-9_]{1,20}([:.]\d+)?", "invalid network interface name '{value}'", re.I),
    "pve-tag": _regex_check(r"[a-z0-9_][a-z0-9_\-+.]*", "invalid characters in tag", re.I),
    "pve-realm": _regex_check(_REALM, "value '{value}' does not look like a valid realm"),
    "pve-userid": _check_userid,
    "pve-tokenid": _check_tokenid,
    "pve-poolid": _regex_check(r"[A-Za-z0-9_][A-Za-z0-9_\-.]*", "invalid pool ID '{value}'"),
    "pve-roleid": _regex_check(r"[A-Za-z0-9\.\-_]+", "role name '{value}' contains invalid characters"),
    "pve-groupid": _regex_check(r"[A-Za-z0-9\.\-_]+", "group name '{value}' contains invalid characters"),
    "pve-volume-id": _regex_check(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)", "unable to parse volume ID '{value}'", re.I),
    "pve-storage-content": _check_content,
    "pve-task-status-type": _regex_check(r"ok|error|warning|unknown", "invalid status '{value}'", re.I),
    "pve-startup-order": _check_startup,
    "mac-addr": _regex_check(
        r"[a-f0-9][02468ace](?::[a-f0-9]{2}){5}", "value does not look like a valid unicast MAC address", re.I
    ),
    "ipv4": _check_ipv4,
    "ipv6": _check_ipv6,
    "ip": _check_ip,
    "ipv4mask": _check_ipv4mask,
    "CIDR": _check_cidr,
    "CIDRv4": _check_cidrv4,
    "CIDRv6": _check_cidrv6,
    "dns-name": _check_dns_name,
    "address": _check_address,
    "disk-size": _check_disk_size,
    "urlencoded": _regex_check(r"[-%a-zA-Z0-9_.!~*'()]*", "invalid urlencoded string: {value}"),
}

_LIST_SPLIT = re.compile(r"[;,\s\0]+")


def split_list(value: str) -> list[str]:
    """PVE::Tools::split_list: items separated by commas, semicolons, whitespace or NULs."""
    return [item for item in _LIST_SPLIT.split(value.strip()) if item]


def check_named_format(fmt: str, value: str) -> None:
    """Raise FormatError when `value` does not satisfy the named format `fmt` (`pve-vmid`, `ip-list`, ...)."""
    if fmt == "regex":
        return
    match = re.fullmatch(r"(.*?)(?:-(list|opt))?", fmt)
    name, kind = (match.group(1), match.group(2)) if match else (fmt, None)
    validator = NAMED_FORMATS.get(name)
    if validator is None:
        validator = NAMED_FORMATS.get(fmt)
        kind = None
        if validator is None:
            return
    if kind == "list":
        for item in split_list(value):
            validator(item)
    elif kind == "opt":
        if value:
            validator(value)
    else:
        validator(value)
