#!/usr/bin/env python3
"""Regenerate the committed Proxmox API schema subset from ../shared/pve-api/pve-api-schema.json.

The subset keeps what code needs at run time (paths, methods, parameter and return types, enums,
required flags, patterns, limits, permission checks) and drops all prose. It covers the paths the
project uses: everything the simulator serves, guest agent exec, snapshots, storage, access,
cluster, tasks, backups (vzdump) and a few node-level endpoints. `proxyto` says which requests a node
forwards to the node the path names (the simulator fails those when that node is offline).

    python scripts/gen_pve_schema_subset.py            # rewrite the subset
    python scripts/gen_pve_schema_subset.py --check    # exit 1 when the committed subset is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "pve-api" / "pve-api-schema.json"
DEFAULT_TARGET = REPO_ROOT / "shared/contracts/src/proxmox_mcp_contracts/pve_schema/subset.json"

# Keys that only carry prose or UI hints; everything else in the schema dialect is kept.
PROSE_KEYS = frozenset(
    {
        "description",
        "verbose_description",
        "typetext",
        "format_description",
        "title",
        "renderer",
        "links",
        "completion",
        "print_width",
    }
)
METHOD_KEYS = ("parameters", "returns", "permissions", "allowtoken", "protected", "proxyto")

SELECTED = (
    r"^/version$",
    r"^/access(/.*)?$",
    r"^/cluster(/.*)?$",
    r"^/storage(/.*)?$",
    r"^/pools(/.*)?$",
    r"^/nodes(/\{node\})?$",
    r"^/nodes/\{node\}/(status|network|storage|tasks|execute|version|time|dns|syslog|journal|services|hosts"
    r"|config|subscription|netstat|rrd|rrddata|startall|stopall|vzdump)(/.*)?$",
    r"^/nodes/\{node\}/(qemu|lxc)$",
    r"^/nodes/\{node\}/(qemu|lxc)/\{vmid\}$",
    r"^/nodes/\{node\}/(qemu|lxc)/\{vmid\}/(status|config|pending|snapshot|agent|interfaces|feature|clone|migrate"
    r"|template|resize|rrd|rrddata)(/.*)?$",
)
_SELECTED_RE = re.compile("|".join(f"(?:{p})" for p in SELECTED))


def strip_prose(node: Any, *, names: bool = False) -> Any:
    """Drop prose keys; the keys of a `properties` object are parameter names (e.g. a snapshot's
    `description` parameter), never prose, so they are kept (names=True)."""
    if isinstance(node, dict):
        return {
            key: strip_prose(value, names=key == "properties" and not names)
            for key, value in node.items()
            if names or key not in PROSE_KEYS
        }
    if isinstance(node, list):
        return [strip_prose(item) for item in node]
    return node


def walk(tree: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    stack = list(tree)
    while stack:
        node = stack.pop()
        paths[node["path"]] = node.get("info") or {}
        stack.extend(node.get("children") or [])
    return paths


def build_subset(full_schema: list[dict[str, Any]]) -> dict[str, Any]:
    selected: dict[str, dict[str, Any]] = {}
    for path, info in sorted(walk(full_schema).items()):
        if not info or not _SELECTED_RE.match(path):
            continue
        selected[path] = {
            method: {key: strip_prose(details[key]) for key in METHOD_KEYS if key in details}
            for method, details in sorted(info.items())
        }
    return {"format": 1, "generated_by": "scripts/gen_pve_schema_subset.py", "paths": selected}


def render(subset: dict[str, Any]) -> str:
    """One path per line: small diffs when the schema changes."""
    lines = [f'{{"format": {subset["format"]}, "generated_by": {json.dumps(subset["generated_by"])}, "paths": {{']
    items = list(subset["paths"].items())
    for index, (path, methods) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        lines.append(f"{json.dumps(path)}: {json.dumps(methods, sort_keys=True, separators=(',', ':'))}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="full schema (default: %(default)s)")
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET, help="subset file (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the target is out of date")
    args = parser.parse_args(argv)

    if not args.source.is_file():
        print(f"full schema not found: {args.source}", file=sys.stderr)
        return 2
    text = render(build_subset(json.loads(args.source.read_text())))
    if args.check:
        current = args.target.read_text() if args.target.is_file() else ""
        if current != text:
            print(f"{args.target} is out of date; run scripts/gen_pve_schema_subset.py", file=sys.stderr)
            return 1
        print(f"{args.target} matches {args.source}")
        return 0
    args.target.parent.mkdir(parents=True, exist_ok=True)
    args.target.write_text(text)
    print(f"wrote {args.target} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
