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
