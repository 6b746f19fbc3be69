"""The static checks the README's test command runs: ruff, and pyright strict for the source code (tests standard).

The script is run for real with a stand-in `uv` that records what it is asked to run, so the order and the
failure handling are observed, not read from the script's text."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PYRIGHT = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pyright"]


def _strict(folder: str) -> bool:
    """Whether pyright's `strict` list covers `folder` (an entry covers the paths it matches and all below them)."""
    parts = folder.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:n]), entry)
               for entry in PYRIGHT.get("strict", []) for n in range(1, len(parts) + 1))


def test_pyright_checks_every_source_folder_strictly() -> None:
    sources = sorted(str(src.relative_to(ROOT)) for pattern in ("shared/*/src", "services/*/src")
                     for src in ROOT.glob(pattern))
    assert len(sources) >= 7, sources
    assert [src for src in sources if not _strict(src)] == []


def test_pyright_checks_tests_and_benchmarks_in_standard_mode() -> None:
    assert PYRIGHT["typeCheckingMode"] == "standard"
    assert {"tests", "bench"} <= set(PYRIGHT["include"])
    assert not _strict("tests/unit") and not _strict("bench")


def _run_test_script(tmp_path: Path, failing: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a copy of scripts/test with `uv` recording its arguments (`uv run --frozen TOOL` fails for the tools in
    `failing`), as a non-root user so nothing is installed."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "uv.log"
    (bin_dir / "uv").write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                                f'for tool in {" ".join(failing)}; do [ "$3" = "$tool" ] && exit 1; done\nexit 0\n')
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "test"), "-k", "x"], env=env, capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    return result, log.read_text().splitlines() if log.exists() else []


def test_the_test_command_runs_ruff_and_pyright_before_pytest(tmp_path: Path) -> None:
    result, calls = _run_test_script(tmp_path, failing=())
    assert result.returncode == 0, result.stderr
    assert calls == ["sync --frozen --quiet", "run --frozen ruff check", "run --frozen pyright",
                     "run --frozen pytest -k x"]


def test_a_failed_type_check_stops_the_test_command_before_pytest_and_says_which(tmp_path: Path) -> None:
    result, calls = _run_test_script(tmp_path, failing=("pyright",))
    assert result.returncode == 1
    assert "static checks failed: pyright" in result.stderr
    assert "run --frozen ruff check" in calls
    assert not any("pytest" in call for call in calls)


def test_a_failed_lint_still_runs_the_type_check_and_reports_both(tmp_path: Path) -> None:
    result, calls = _run_test_script(tmp_path, failing=("ruff", "pyright"))
    assert result.returncode == 1
    assert "static checks failed: ruff check pyright" in result.stderr
    assert not any("pytest" in call for call in calls)
