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
