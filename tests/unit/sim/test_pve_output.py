"""pvesh's text output."""

from __future__ import annotations

from proxmox_mcp_pve_sim.pve_output import render


def test_pvesh_text_output_draws_tables_and_plain_values() -> None:
    assert render("UPID:x", "text") == "UPID:x\n"
    assert render(None, "text") == ""
    table = render([{"a": 1, "b": "x"}, {"a": 22}], "text")
    assert table.splitlines()[1] == "│ a  │ b │"
    assert render([{"a": 1}], "text", noborder=True, noheader=True) == "1\n"
    assert render({"k": [1, {"x": None}]}, "yaml") == "---\nk:\n  - 1\n  - x: ~\n"
