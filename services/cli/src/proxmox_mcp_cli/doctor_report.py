"""The doctor's findings: one row per check with its status and, for problems, the fix; table or JSON."""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


@dataclass(frozen=True)
class Check:
    name: str
    """Dotted id, e.g. ssh.key.permissions or ssh.auth.publickey[pve1]."""
    status: Status
    detail: str
    fix: str | None = None


@dataclass
class Report:
    cluster: str | None = None
    checks: list[Check] = field(default_factory=list[Check])
    api_modes: dict[str, Any] | None = None
    """Which API modes work from here (the "API modes" check), for --json."""

    def add(self, name: str, status: Status, detail: str, fix: str | None = None) -> Check:
        check = Check(name, status, detail, fix if status in ("fail", "warn") else None)
        self.checks.append(check)
        return check

    def ok(self, name: str, detail: str) -> Check:
        return self.add(name, "ok", detail)

    def warn(self, name: str, detail: str, fix: str | None = None) -> Check:
        return self.add(name, "warn", detail, fix)

    def fail(self, name: str, detail: str, fix: str | None = None) -> Check:
        return self.add(name, "fail", detail, fix)

    def skip(self, name: str, detail: str) -> Check:
        return self.add(name, "skip", detail)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_json(self) -> str:
        counts = {status: sum(1 for c in self.checks if c.status == status) for status in MARK}
        document: dict[str, Any] = {"ok": not self.failed, "cluster": self.cluster, "summary": counts,
                                    "checks": [asdict(c) for c in self.checks]}
        if self.api_modes is not None:
            document["api_modes"] = self.api_modes
        return json.dumps(document, indent=2)

    def to_table(self, width: int | None = None) -> str:
        width = width or max(shutil.get_terminal_size((120, 24)).columns, 80)
        name_width = min(max((len(c.name) for c in self.checks), default=10), 40)
        detail_width = max(width - name_width - 10, 30)
        lines = [f"{'CHECK':<{name_width}}  {'STATUS':<6}  DETAIL", "-" * min(width, name_width + detail_width + 10)]
        for check in self.checks:
            detail = textwrap.wrap(check.detail, detail_width) or [""]
            lines.append(f"{check.name:<{name_width}}  {MARK[check.status]:<6}  {detail[0]}")
            lines.extend(f"{'':<{name_width}}  {'':<6}  {more}" for more in detail[1:])
            if check.fix:
                fix = textwrap.wrap(check.fix, detail_width - 5) or [""]
                lines.append(f"{'':<{name_width}}  {'':<6}  fix: {fix[0]}")
                lines.extend(f"{'':<{name_width}}  {'':<6}       {more}" for more in fix[1:])
        failed, warned = len(self.failed), sum(1 for c in self.checks if c.status == "warn")
        lines.append("")
        if failed:
            lines.append(f"{failed} check(s) failed, {warned} warning(s): apply the fixes above, then run "
                         "`proxmox-mcp doctor` again.")
        else:
            lines.append(f"All checks passed ({warned} warning(s))." if warned else "All checks passed.")
        return "\n".join(lines)
