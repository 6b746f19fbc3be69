"""The README's Tools table says what the gateway really offers: every tool, its scope, annotations and arguments,
and an example that the tool accepts."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from proxmox_mcp_gateway.catalog import TOOLS, TOOLS_BY_NAME, ToolSpec

from tests.support.readme import readme_section


@dataclass(frozen=True)
class Row:
    tool: str
    scope: str
    annotations: str
    arguments: str
    example: str


def _rows() -> dict[str, Row]:
    rows: dict[str, Row] = {}
    lines = readme_section("Tools").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| tool | scope |"))
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            assert len(cells) == 5, line
            row = Row(cells[0].strip("`"), *cells[1:])
            assert row.tool not in rows, f"{row.tool} is listed twice"
            rows[row.tool] = row
    return rows


ROWS = _rows()


def _annotation_marks(spec: ToolSpec) -> set[str]:
    marks = {"RO"} if spec.annotations.read_only else set()
    marks |= {"D"} if spec.annotations.destructive else set()
    marks |= {"I"} if spec.annotations.idempotent else set()
    return marks


def test_the_table_lists_every_tool_once_and_the_count_is_right() -> None:
    assert set(ROWS) == set(TOOLS_BY_NAME)
    assert f"{len(TOOLS)} typed tools" in readme_section("Tools")


@pytest.mark.parametrize("spec", TOOLS, ids=[spec.name for spec in TOOLS])
def test_scope_and_annotations_match_the_tool(spec: ToolSpec) -> None:
    row = ROWS[spec.name]
    assert row.scope.split()[0] == spec.scope.value
    written = {mark.strip() for mark in row.annotations.split(",")} - {"—"}
    assert written == _annotation_marks(spec)


@pytest.mark.parametrize("spec", TOOLS, ids=[spec.name for spec in TOOLS])
def test_arguments_are_the_schemas_with_the_required_ones_in_bold(spec: ToolSpec) -> None:
    schema = spec.input_schema()
    named = set(re.findall(r"`(\w+)`", ROWS[spec.name].arguments))
    bold = set(re.findall(r"\*\*`(\w+)`\*\*", ROWS[spec.name].arguments))
    offered = set(schema["properties"]) - {"cluster"}  # every tool has it; the text above the table says so
    assert offered <= named, f"undocumented arguments: {sorted(offered - named)}"
    assert bold == set(schema.get("required", []))


@pytest.mark.parametrize("spec", TOOLS, ids=[spec.name for spec in TOOLS])
def test_the_example_is_accepted_by_the_tool(spec: ToolSpec) -> None:
    example = json.loads(ROWS[spec.name].example.strip("`").replace("UPID:pve1:...", _UPID))
    spec.args_model.model_validate(example)


_UPID = "UPID:pve1:00001234:00005678:6560A1B2:qmstart:100:root@pam:"
"""The table shortens UPIDs to 'UPID:pve1:...'; a full one stands in for it when the example is checked."""
