"""Our tools and canvrno/ProxmoxMCP's equivalents, and where one call of each pair answers differently.

The peer answers with formatted text only ("🗃️ app-20 (ID: 103)" then "  • Status: RUNNING" lines); ours with
structured content (and a text rendering). The comparison parses the peer's text back into fields and checks each
against the field of ours it shows."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["text", "number", "bytes", "uptime", "quorum", "enabled"]


@dataclass(frozen=True)
class Field:
    peer: str
    """The peer's label ("Memory") or "Name" for the name in its header line."""
    ours: tuple[str, ...]
    """Our field(s) it shows: one, or (used, total) for a bytes pair."""
    kind: Kind


@dataclass(frozen=True)
class ToolPair:
    ours: str
    ours_args: dict[str, Any]
    peer: str
    peer_args: dict[str, Any]
    ours_items: Callable[[dict[str, Any]], list[dict[str, Any]]]
    ours_key: Callable[[dict[str, Any]], str]
    peer_header: str | None
    """Regex on an item's header line giving `key` (and optionally `name`); None: one item, no header."""
    fields: tuple[Field, ...]
    upstream: Callable[[dict[str, Any]], str] = field(default=lambda _: "1")
    """GET requests one call of the peer's tool makes, by its code, given our list_vms result (for the guests)."""
    note: str = ""

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.ours_args.items())
        return f"{self.ours}({args}) vs {self.peer}"


_NODE_FIELDS = (Field("Status", ("status",), "text"), Field("Uptime", ("uptime",), "uptime"),
                Field("CPU Cores", ("maxcpu",), "number"), Field("Memory", ("mem", "maxmem"), "bytes"))


def tool_pairs(node: str, nodes: int) -> tuple[ToolPair, ...]:
    """node: the one node_status/get_node_status ask about; nodes: how many the cluster has."""
    return (
        ToolPair("list_vms", {}, "get_vms", {}, lambda r: r["vms"], lambda vm: str(vm["vmid"]),
                 r"^\S+ (?P<name>.+) \(ID: (?P<key>\d+)\)$",
                 (Field("Name", ("name",), "text"), Field("Status", ("status",), "text"),
                  Field("Node", ("node",), "text"), Field("CPU Cores", ("maxcpu",), "number"),
                  Field("Memory", ("mem", "maxmem"), "bytes")),
                 upstream=lambda vms: (f"1 + {nodes} + {sum(vm['type'] == 'qemu' for vm in vms['vms'])}"
                                       " (nodes, each node's qemu list, each VM's config)")),
        ToolPair("node_status", {"node": node}, "get_node_status", {"node": node}, lambda r: r["nodes"],
                 lambda n: n["node"], r"Node: (?P<key>\S+)$", _NODE_FIELDS),
        ToolPair("node_status", {}, "get_nodes", {}, lambda r: r["nodes"], lambda n: n["node"],
                 r"^\S+ (?P<key>\S+)$", _NODE_FIELDS,
                 upstream=lambda _: f"1 + {nodes} (nodes, each node's status)"),
        ToolPair("cluster_status", {}, "get_cluster_status", {}, lambda r: [r], lambda _: "cluster", None,
                 (Field("Name", ("name",), "text"), Field("Quorum", ("quorate",), "quorum"),
                  Field("Nodes", ("node_count",), "number"))),
        ToolPair("list_storage", {}, "get_storage", {}, lambda r: r["storages"], lambda s: s["storage"],
                 r"^\S+ (?P<key>\S+)$",
                 (Field("Status", ("enabled",), "enabled"), Field("Type", ("type",), "text"),
                  Field("Usage", ("used", "total"), "bytes")),
                 upstream=lambda _: "1 + one per storage (/storage, then /nodes/localhost/storage/S/status)",
                 note="the simulator knows no node 'localhost': it answers those 500 and, like pve-http-server after "
                      "an error, closes the connection, so the peer's next request opens a new TLS connection. Its "
                      "figures here are its fallback path (usage 0), not what a node that resolves 'localhost' costs"),
    )


def peer_items(text: str, header: str | None) -> dict[str, dict[str, str]]:
    """{key: {label: value}} of the peer's text: blocks split by blank lines, the ones with bullet lines."""
    items: dict[str, dict[str, str]] = {}
    for block in text.split("\n\n"):
        lines = block.splitlines()
        bullets = [line.strip().removeprefix("• ") for line in lines if line.strip().startswith("•")]
        if not bullets:
            continue
        fields = dict(line.split(": ", 1) for line in bullets if ": " in line)
        key = "cluster"
        if header is not None:
            match = re.search(header, lines[0].strip())
            if match is None:
                raise ValueError(f"the peer's item header changed: {lines[0]!r}")
            key = match["key"]
            if "name" in match.groupdict():
                fields["Name"] = match["name"]
        items[key] = fields
    return items


_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * _UNITS[unit]


def _close(peer: float, ours: float) -> bool:
    """The peer prints bytes with 2 decimals of the unit it picks: 0.5 % covers its rounding."""
    return abs(peer - ours) <= 0.005 * max(abs(ours), 1.0)


def _minutes(uptime: str) -> int:
    return sum(int(part[:-1]) * {"d": 1440, "h": 60, "m": 1}[part[-1]] for part in re.findall(r"\d+[dhm]", uptime))


def field_agrees(spec: Field, peer: str, ours: dict[str, Any]) -> bool:
    values: list[Any] = [ours[name] for name in spec.ours if ours.get(name) is not None]
    if len(values) < len(spec.ours):
        return False
    value = values[0]
    try:
        if spec.kind == "text":
            return peer.lower() == str(value).lower()
        if spec.kind == "number":
            return float(peer) == float(value)
        if spec.kind == "uptime":
            return abs(_minutes(peer) - int(value) // 60) <= 1  # a minute may tick between the two calls
        if spec.kind == "quorum":
            return (peer == "OK") == bool(value)
        if spec.kind == "enabled":
            return (peer == "ONLINE") == bool(value)
        used, total = peer.split(" (")[0].split(" / ")
        return _close(_bytes(used), float(value)) and _close(_bytes(total), float(values[1]))
    except (ValueError, KeyError):  # 'N/A' where a number belongs
        return False


def compare(pair: ToolPair, ours: dict[str, Any], peer_text: str) -> list[str]:
    """Lines saying, for one call of each side, which items and fields agree and which do not."""
    ours_by_key: dict[str, list[dict[str, Any]]] = {}
    for item in pair.ours_items(ours):
        ours_by_key.setdefault(pair.ours_key(item), []).append(item)
    peer = peer_items(peer_text, pair.peer_header)
    lines = [f"items: ours {sum(map(len, ours_by_key.values()))}, peer {len(peer)}"]
    if only_ours := sorted(set(ours_by_key) - set(peer)):
        lines.append(f"only ours: {', '.join(only_ours)}")
    if only_peer := sorted(set(peer) - set(ours_by_key)):
        lines.append(f"only the peer's: {', '.join(only_peer)}")
    if repeated := sorted(key for key, items in ours_by_key.items() if len(items) > 1 and key in peer):
        lines.append(f"ours has one item per node for {', '.join(repeated)}; the peer one (compared with each)")
    agree: list[str] = []
    for spec in pair.fields:
        differing = []
        for key, fields in peer.items():
            for item in ours_by_key.get(key, []):
                if spec.peer not in fields:
                    differing.append(f"{key}: the peer has no {spec.peer}")
                elif not field_agrees(spec, fields[spec.peer], item):
                    ours_text = "/".join(str(item.get(name)) for name in spec.ours)
                    where = f"{key}@{item['node']}" if len(ours_by_key[key]) > 1 else key
                    differing.append(f"{where}: peer {fields[spec.peer]!r} vs ours {ours_text}")
        target = f"{spec.peer} ~ {'/'.join(spec.ours)}"
        if differing:
            lines.append(f"differ {target}: " + "; ".join(differing[:4])
                         + (f"; ... ({len(differing)} in all)" if len(differing) > 4 else ""))
        else:
            agree.append(target)
    if agree:
        lines.append(f"agree: {', '.join(agree)}")
    shown = {name for spec in pair.fields for name in spec.ours}
    extra = sorted({name for items in ours_by_key.values() for item in items for name in item} - shown)
    if extra:
        lines.append(f"fields only ours carries: {', '.join(extra)}")
    unmatched = sorted({label for fields in peer.values() for label in fields} - {spec.peer for spec in pair.fields})
    if unmatched:
        lines.append(f"the peer's fields not compared: {', '.join(unmatched)}")
    return lines
