"""The README as the tests read it: its text and its `## ` sections."""

from __future__ import annotations

import re

from tests.support.procs import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def readme_section(title: str) -> str:
    """The text under `## title`, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def readme_block(containing: str) -> list[str]:
    """The command lines of the first ```sh block with `containing` in it (comments and blank lines dropped)."""
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", README, flags=re.S):
        if containing in block:
            lines = [re.sub(r"\s+#[^\"']*$", "", line).strip() for line in block.splitlines()]
            return [line for line in lines if line and not line.startswith("#")]
    raise AssertionError(f"README.md has no code block with {containing!r}")
