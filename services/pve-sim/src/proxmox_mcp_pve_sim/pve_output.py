"""Output formats of the Proxmox CLI tools (pvesh --output-format, pveversion)."""

from __future__ import annotations

import json
from typing import Any

from proxmox_mcp_contracts.json_values import is_array, is_object

from proxmox_mcp_pve_sim.model import KERNEL_RELEASE, PVE_REPOID, PVE_VERSION

PACKAGES = (
    ("proxmox-ve", f"9.1.0 (running kernel: {KERNEL_RELEASE})"),
    ("pve-manager", f"{PVE_VERSION} (running version: {PVE_VERSION}/{PVE_REPOID})"),
    ("proxmox-kernel-helper", "9.0.4"),
    (f"proxmox-kernel-{KERNEL_RELEASE}-signed", KERNEL_RELEASE.removesuffix("-pve")),
    ("ceph-fuse", "19.2.3-pve2"),
    ("corosync", "3.1.9-pve2"),
    ("criu", "4.1.1-1"),
    ("ifupdown2", "3.3.0-1+pmx10"),
    ("libjs-extjs", "7.0.0-5"),
    ("libproxmox-acme-perl", "1.7.0"),
    ("libpve-access-control", "9.0.4"),
    ("libpve-cluster-api-perl", "9.0.7"),
    ("libpve-common-perl", "9.0.13"),
    ("libpve-guest-common-perl", "6.0.2"),
    ("libpve-http-server-perl", "6.0.5"),
    ("libpve-storage-perl", "9.0.16"),
    ("lxc-pve", "6.0.5-3"),
    ("pve-cluster", "9.0.7"),
    ("pve-container", "6.0.17"),
    ("pve-docs", "9.1.3"),
    ("pve-firewall", "6.0.4"),
    ("pve-ha-manager", "5.0.8"),
    ("pve-qemu-kvm", "10.1.2-2"),
    ("qemu-server", "9.0.30"),
    ("zfsutils-linux", "2.3.4-pve1"),
)


def pveversion_text(*, verbose: bool) -> str:
    if not verbose:
        return f"pve-manager/{PVE_VERSION}/{PVE_REPOID} (running kernel: {KERNEL_RELEASE})\n"
    return "".join(f"{name}: {version}\n" for name, version in PACKAGES)


def render(data: Any, fmt: str, *, noborder: bool = False, noheader: bool = False) -> str:
    if fmt == "json":
        return json.dumps(data, separators=(",", ":")) + "\n"
    if fmt == "json-pretty":
        return json.dumps(data, indent=3, separators=(",", " : ")) + "\n"
    if fmt == "yaml":
        return _yaml(data, 0) if isinstance(data, dict | list) else f"--- {_scalar(data)}\n"
    return _text(data, noborder=noborder, noheader=noheader)


def _scalar(value: Any) -> str:
    if value is None:
        return "~"
    if isinstance(value, str):
        return json.dumps(value) if value == "" or any(c in value for c in ":#\n'\"") else value
    return str(value)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def _yaml(data: Any, indent: int) -> str:
    pad = " " * indent
    lines = ""
    if is_object(data):
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines += f"{pad}{key}:\n{_yaml(value, indent + 2)}"
            else:
                lines += f"{pad}{key}: {_inline(value)}\n"
    else:
        for item in data:
            if isinstance(item, dict | list) and item:
                body = _yaml(item, indent + 2)
                lines += f"{pad}- {body.lstrip()}"
            else:
                lines += f"{pad}- {_scalar(item)}\n"
    return lines if indent else "---\n" + lines


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _text(data: Any, *, noborder: bool, noheader: bool) -> str:
    if data is None:
        return ""
    if not (is_object(data) or is_array(data)):
        return f"{data}\n"
    if is_object(data):
        rows = [[str(key), _cell(value)] for key, value in sorted(data.items())]
        header = ["key", "value"]
    else:
        keys: list[str] = []
        for item in data:
            if is_object(item):
                keys.extend(k for k in item if k not in keys)
        if not keys:
            return "".join(f"{_cell(item)}\n" for item in data)
        header = keys
        rows = [[_cell(item.get(k)) if is_object(item) else _cell(item) for k in keys] for item in data]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    if noborder:
        lines = [] if noheader else ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        return "".join(line + "\n" for line in lines)

    def border(left: str, mid: str, right: str, fill: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def line(cells: list[str]) -> str:
        return "│" + "│".join(f" {c.ljust(w)} " for c, w in zip(cells, widths, strict=True)) + "│\n"

    text = border("┌", "┬", "┐", "─")
    if not noheader:
        text += line(header) + border("╞", "╪", "╡", "═")
    for index, row in enumerate(rows):
        text += line(row)
        if index < len(rows) - 1:
            text += border("├", "┼", "┤", "─")
    return text + border("└", "┴", "┘", "─")
