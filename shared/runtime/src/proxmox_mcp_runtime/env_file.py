"""Environment files (`.env`): KEY=VALUE lines that stand in for variables the environment does not set.

The environment always wins over the file, as with Docker Compose and python-dotenv.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, an optional `export ` before the key, optional quotes around the value, # comments.
    A file that is not there reads as empty."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def with_env_file(path: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with the file's variables under it: a variable set in `environ` (even empty) wins."""
    return {**(read_env_file(path) if path is not None else {}), **environ}


def load_env_file(path: Path | None, environ: MutableMapping[str, str] | None = None) -> None:
    """Put the file's variables that the environment does not set into it (default: this process's own).

    Done once at start, this makes a file's variable exactly like an exported one for everything after: the
    settings read in this process and the environment of every process it starts."""
    if path is None:
        return
    target = os.environ if environ is None else environ
    for key, value in read_env_file(path).items():
        target.setdefault(key, value)
