"""Environment files: KEY=VALUE lines that stand in for variables the environment does not set."""

from __future__ import annotations

from pathlib import Path

from proxmox_mcp_runtime.env_file import load_env_file, read_env_file, with_env_file

TEXT = """# a comment
export SSH_HOST="10.1.1.1"
PROXMOX_HOST = 10.1.1.2
PMCP_TOKEN='quoted secret'
EMPTY=
not a variable line
PMCP_TOOLS=list_vms,vm_status
"""


def test_an_env_file_reads_as_its_variables(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(TEXT)
    assert read_env_file(path) == {"SSH_HOST": "10.1.1.1", "PROXMOX_HOST": "10.1.1.2", "PMCP_TOKEN": "quoted secret",
                                   "EMPTY": "", "PMCP_TOOLS": "list_vms,vm_status"}


def test_a_missing_env_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / "absent.env") == {}
    assert with_env_file(tmp_path / "absent.env", {"A": "1"}) == {"A": "1"}


def test_loading_an_env_file_fills_in_only_what_the_environment_does_not_set(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(TEXT)
    environ = {"PMCP_TOKEN": "from the environment", "PROXMOX_HOST": ""}
    load_env_file(path, environ)
    assert environ["PMCP_TOKEN"] == "from the environment"
    assert environ["PROXMOX_HOST"] == ""  # set, even empty: the environment's word
    assert environ["SSH_HOST"] == "10.1.1.1" and environ["PMCP_TOOLS"] == "list_vms,vm_status"
    assert with_env_file(path, {"PMCP_TOKEN": "env"})["PMCP_TOKEN"] == "env"
