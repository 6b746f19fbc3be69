"""The dispatcher's build: the shipped single-file script (deploy/host/pmcp-dispatch) is a fresh build of the
policy package, which embeds every module it needs and only the standard library."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest
from proxmox_mcp_runtime.command_policy import bundle

from tests.support.procs import REPO_ROOT

SHIPPED = REPO_ROOT / "deploy" / "host" / "pmcp-dispatch"


def test_shipped_script_is_a_fresh_build() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == bundle.build(), (
        "deploy/host/pmcp-dispatch is stale: python -m proxmox_mcp_runtime.command_policy.bundle "
        "-o deploy/host/pmcp-dispatch"
    )
    assert os.access(SHIPPED, os.X_OK)
    assert bundle.main(["--check", str(SHIPPED)]) == 0


def test_check_mode_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "pmcp-dispatch"
    stale.write_text("old")
    assert bundle.main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_every_module_but_the_wrapper_and_the_builder_is_embedded() -> None:
    modules = {p.stem for p in bundle.package_dir().glob("*.py")} - {"__init__", "bundle"}
    assert set(bundle.CORE_MODULES) == modules


def test_embedded_modules_use_only_the_standard_library() -> None:
    for name in bundle.CORE_MODULES:
        tree = ast.parse((bundle.package_dir() / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in sys.stdlib_module_names or root == "__future__", f"{name}.py imports {root}"
