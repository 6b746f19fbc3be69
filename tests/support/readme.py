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


def stack_variables() -> set[str]:
    """The environment variables the README documents for `up`, `demo` and `stdio`: the table and the gateway
    settings of "Running against your cluster" (the latter written without their `PMCP_` prefix), and every
    `PMCP_*` setting named there or under "Tools"."""
    running = readme_section("Running against your cluster")
    table = "\n".join(line for line in running.splitlines() if line.startswith("| `"))
    names = set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`", table))
    gateway = re.search(r"^Gateway settings \(environment, prefix `PMCP_`\):(.*?)(?:\n\n|\Z)", running,
                        flags=re.M | re.S)
    assert gateway is not None, "README lists no gateway settings under 'Running against your cluster'"
    names |= {f"PMCP_{name}" for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", gateway.group(1))
              if not name.startswith("PMCP_")}
    for section in (running, readme_section("Tools")):
        names |= set(re.findall(r"PMCP_[A-Z][A-Z0-9_]*", section))
    return names


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
