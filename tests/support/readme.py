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
            lines = [_without_comment(line).strip() for line in block.splitlines()]
            return [line for line in lines if line]
    raise AssertionError(f"README.md has no code block with {containing!r}")


def _without_comment(line: str) -> str:
    """A shell line up to its comment: a `#` at the start or after a blank, outside quotes."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line
