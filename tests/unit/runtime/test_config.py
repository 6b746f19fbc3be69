"""Loading the cluster configuration from TOML, the original environment names and env files."""

from __future__ import annotations

from pathlib import Path

import pytest
from proxmox_mcp_contracts.settings import ApiSettings, ClusterConfig, HostConfig, ProxmoxConfig, SshSettings
from proxmox_mcp_runtime.config import ConfigError, dump_config_toml, load_config_file, load_proxmox_config
from proxmox_mcp_runtime.env_file import with_env_file
from pydantic import SecretStr


def test_dumped_toml_loads_back_identically_with_secrets(tmp_path: Path) -> None:
    config = ProxmoxConfig(clusters=[
        ClusterConfig(name="lab", hosts=[HostConfig(node="pve1", address="10.0.0.1", port=2222)],
                      ssh=SshSettings(password=SecretStr('p"w\\x'), host_key_fingerprints=["SHA256:abc"]),
                      api=ApiSettings(token_name="t", token_value=SecretStr("uuid"), host="10.0.0.1")),
        ClusterConfig(name="prod"),
    ], default_cluster="prod")
    path = tmp_path / "c.toml"
    path.write_text(dump_config_toml(config))
    assert load_config_file(path) == config


def test_pmcp_config_wins_over_legacy_variables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[clusters]]\nname = "fromfile"\n')
    config = load_proxmox_config({"PMCP_CONFIG": str(path), "SSH_HOST": "ignored"})
    assert [c.name for c in config.clusters] == ["fromfile"]


def test_a_config_file_from_the_command_line_wins_over_pmcp_config(tmp_path: Path) -> None:
    for name in ("env", "cli"):
        (tmp_path / f"{name}.toml").write_text(f'[[clusters]]\nname = "from{name}"\n')
    config = load_proxmox_config({"PMCP_CONFIG": str(tmp_path / "env.toml")}, config_file=tmp_path / "cli.toml")
    assert [c.name for c in config.clusters] == ["fromcli"]


def test_an_env_file_supplies_legacy_variables_and_the_environment_overrides_it(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('# comment\nexport SSH_HOST="10.1.1.1"\nPROXMOX_HOST=10.1.1.2\nSSH_USER=fromfile\n')
    config = load_proxmox_config(with_env_file(dotenv, {"SSH_USER": "fromenv"}))
    cluster = config.clusters[0]
    assert cluster.hosts[0].address == "10.1.1.1" and cluster.api.host == "10.1.1.2"
    assert cluster.ssh.user == "fromenv"


@pytest.mark.parametrize("text, fragment", [
    ("[[clusters]\n", "not valid TOML"),
    ('[[clusters]]\nname = "Bad Name"\n', "clusters.0.name"),
    ('[[clusters]]\nname = "a"\n[[clusters]]\nname = "a"\n', "unique"),
    ('default_cluster = "x"\n[[clusters]]\nname = "a"\n', "default_cluster"),
    ('[[clusters]]\nname = "a"\n[clusters.ssh]\nport = 99999\n', "clusters.0.ssh.port"),
])
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config_file(path)


def test_missing_configuration_says_how_to_configure() -> None:
    with pytest.raises(ConfigError, match="PMCP_CONFIG"):
        load_proxmox_config({})
    with pytest.raises(ConfigError, match="does not exist"):
        load_proxmox_config({"PMCP_CONFIG": "/nonexistent/c.toml"})
