"""`proxmox-mcp doctor` against the real test sshd, the simulator and NATS: all green when all is well, and
each classic problem named with its fix (world-readable key, wrong passphrase, closed port, unpinned host key,
a token lacking privileges, no workers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from proxmox_mcp_cli.doctor_checks import api_through_ssh
from proxmox_mcp_cli.doctor_report import Report
from proxmox_mcp_contracts.settings import ProxmoxConfig
from proxmox_mcp_runtime.config import dump_config_toml, load_proxmox_config

from tests.support.nats import NatsServer
from tests.support.procs import free_port
from tests.support.services import write_private
from tests.support.sim import SimInfo, start_sim
from tests.support.sshd import SshdServer, start_sshd

CLEAN_PREFIXES = ("SSH_", "PROXMOX_", "PMCP_", "NATS_URL")


def doctor(env: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[int, dict[str, Any], str]:
    """Run the doctor with only `env` configuring it; returns (exit code, --json report, stderr)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_PREFIXES)}
    result = subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "doctor", "--json", "--timeout", "3",
                             "--env-file", "/nonexistent/.env", *args], capture_output=True, text=True, timeout=120,
                            env={**base, **env}, cwd=cwd, check=False)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"doctor printed no JSON:\n{result.stdout}\n{result.stderr}") from None
    return result.returncode, report, result.stderr


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def failed(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: c for name, c in checks(report).items() if c["status"] == "fail"}


def ssh_env(sshd: SshdServer, **overrides: str) -> dict[str, str]:
    env = {"SSH_HOST": "127.0.0.1", "SSH_NODE": "pve1", "SSH_PORT": str(sshd.port), "SSH_USER": sshd.user,
           "SSH_KEY_PATH": str(sshd.ed25519_key), "SSH_KNOWN_HOSTS": str(sshd.known_hosts)}
    env.update(overrides)
    return env


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimInfo]:
    info = start_sim(tmp_path_factory.mktemp("doctor-sim"))
    try:
        yield info
    finally:
        info.proc.stop()


def api_env(sim: SimInfo, token: dict[str, str] | None = None) -> dict[str, str]:
    chosen = token or sim.admin_token
    return {"PROXMOX_HOST": sim.host, "PROXMOX_PORT": str(sim.api_port), "PROXMOX_USER": chosen["user"],
            "PROXMOX_TOKEN_NAME": chosen["token_id"], "PROXMOX_TOKEN_VALUE": chosen["secret"],
            "PROXMOX_FINGERPRINT": sim.fingerprint}


# --- against the real sshd -------------------------------------------------------------------------


def test_a_healthy_ssh_host_passes_every_ssh_check(sshd: SshdServer) -> None:
    env = ssh_env(sshd, SSH_KEY_PATH=str(sshd.encrypted_key), SSH_KEY_PASSPHRASE=sshd.passphrase,
                  SSH_PASSWORD=sshd.password)
    _, report, _ = doctor(env)
    found = checks(report)
    for name in ("ssh.key.file", "ssh.key.permissions", "ssh.key.format", "ssh.key.passphrase", "ssh.key.public",
                 "ssh.reach[pve1]", "ssh.host_key[pve1]", "ssh.auth.publickey[pve1]", "ssh.auth.password[pve1]",
                 "ssh.user[pve1]"):
        assert found[name]["status"] == "ok", found[name]
    assert "encrypted; the passphrase works" in found["ssh.key.passphrase"]["detail"]
    assert found["ssh.key.format"]["detail"] == "ssh-ed25519 (256 bits)"
    assert not any(name.startswith("ssh") for name in failed(report))


def test_a_world_readable_key_is_named_with_the_chmod_fix(sshd: SshdServer, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    shutil.copy(sshd.ed25519_key, key)
    key.chmod(0o644)
    code, report, _ = doctor(ssh_env(sshd, SSH_KEY_PATH=str(key)))
    assert code == 1
    problem = failed(report)["ssh.key.permissions"]
    assert "mode 0644" in problem["detail"]
    assert problem["fix"] == f"chmod 600 {key}"


def test_a_wrong_passphrase_is_named_with_its_fix(sshd: SshdServer) -> None:
    code, report, stderr = doctor(ssh_env(sshd, SSH_KEY_PATH=str(sshd.encrypted_key),
                                          SSH_KEY_PASSPHRASE="not-the-passphrase"))
    assert code == 1
    problem = failed(report)["ssh.key.passphrase"]
    assert "does not decrypt" in problem["detail"] and "SSH_KEY_PASSPHRASE" in problem["fix"]
    assert "not-the-passphrase" not in json.dumps(report) + stderr


def test_a_missing_passphrase_is_named(sshd: SshdServer) -> None:
    _, report, _ = doctor(ssh_env(sshd, SSH_KEY_PATH=str(sshd.encrypted_key)))
    assert "no passphrase is configured" in failed(report)["ssh.key.passphrase"]["detail"]


def test_a_closed_ssh_port_is_named_and_no_login_is_tried(sshd: SshdServer) -> None:
    closed = free_port()
    code, report, _ = doctor(ssh_env(sshd, SSH_PORT=str(closed)))
    assert code == 1
    problem = failed(report)["ssh.reach[pve1]"]
    assert "refused" in problem["detail"]
    assert f"127.0.0.1:{closed}" in problem["fix"]
    assert checks(report)["ssh.auth[pve1]"]["status"] == "skip"


def test_an_unpinned_host_key_is_refused_before_any_credentials_are_sent(sshd: SshdServer, tmp_path: Path) -> None:
    before = sshd.accepted_logins()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    code, report, _ = doctor(ssh_env(sshd, SSH_KNOWN_HOSTS=str(empty)))
    assert code == 1
    problem = failed(report)["ssh.host_key[pve1]"]
    assert sshd.host_key_fingerprint in problem["detail"]
    assert f'host_key_fingerprints = ["{sshd.host_key_fingerprint}"]' in problem["fix"]
    assert "ssh-keyscan" in problem["fix"]
    assert sshd.accepted_logins() == before


def test_a_refused_key_names_authorized_keys(sshd: SshdServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    _, report, _ = doctor(ssh_env(sshd, SSH_KEY_PATH=str(stranger)))
    problem = failed(report)["ssh.auth.publickey[pve1]"]
    assert "refused publickey login" in problem["detail"]
    assert "authorized_keys" in problem["fix"]


def test_a_public_key_that_does_not_match_is_named(sshd: SshdServer, tmp_path: Path) -> None:
    key = tmp_path / "id"
    shutil.copy(sshd.ed25519_key, key)
    key.chmod(0o600)
    shutil.copy(Path(str(sshd.rsa_key) + ".pub"), tmp_path / "id.pub")
    _, report, _ = doctor(ssh_env(sshd, SSH_KEY_PATH=str(key)))
    assert f"ssh-keygen -y -f {key}" in failed(report)["ssh.key.public"]["fix"]


def test_a_closed_api_port_is_named_with_its_fix(sshd: SshdServer) -> None:
    code, report, _ = doctor({**ssh_env(sshd), "PROXMOX_HOST": "127.0.0.1", "PROXMOX_PORT": str(free_port())})
    assert code == 1
    problem = failed(report)["api.reach"]
    assert "connection refused" in problem["detail"] and "pveproxy" in problem["fix"]


def test_tunnel_mode_names_a_forward_the_host_refuses(sshd: SshdServer) -> None:
    env = {**ssh_env(sshd), "PROXMOX_API_MODE": "ssh-tunnel", "PROXMOX_PORT": str(free_port()),
           "PROXMOX_TOKEN_NAME": "mcp", "PROXMOX_TOKEN_VALUE": "unused", "PROXMOX_FINGERPRINT": "AA"}
    code, report, _ = doctor(env)
    assert code == 1
    problem = failed(report)["api.tunnel"]
    assert "refused to forward" in problem["detail"] and "permitopen" in problem["fix"]
    assert "api.reach" not in checks(report)


def test_pvesh_mode_on_a_host_without_pvesh_names_the_fix(sshd: SshdServer) -> None:
    _, report, _ = doctor({**ssh_env(sshd), "PROXMOX_API_MODE": "pvesh"})
    assert "pvesh needs root" in failed(report)["api.version"]["fix"]
    problem = failed(report)["api.modes[pvesh]"]
    assert "(configured)" in problem["detail"] and "pvesh is not available on node pve1" in problem["detail"]
    assert "pvesh not found on pve1" in problem["fix"]
    assert report["api_modes"]["configured"] == "pvesh" and report["api_modes"]["working"] == []


def test_bad_configuration_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "clusters.toml"
    broken.write_text("[[clusters]\n")
    code, report, _ = doctor({}, "--config", str(broken))
    assert code == 1
    assert "not valid TOML" in failed(report)["config"]["detail"]
    code, report, _ = doctor({})
    assert code == 1 and "no cluster configured" in failed(report)["config"]["detail"]
    assert "api_modes" not in report and not any(name.startswith("api.modes") for name in checks(report))


def test_the_table_output_shows_each_fix(sshd: SshdServer, tmp_path: Path) -> None:
    key = tmp_path / "id"
    shutil.copy(sshd.ed25519_key, key)
    key.chmod(0o640)
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_PREFIXES)}
    result = subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "doctor", "--env-file", "/nonexistent"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**base, **ssh_env(sshd, SSH_KEY_PATH=str(key))})
    assert result.returncode == 1
    assert "ssh.key.permissions" in result.stdout and "FAIL" in result.stdout
    assert f"fix: chmod 600 {key}" in result.stdout
    assert "check(s) failed" in result.stdout


# --- NATS and the workers ----------------------------------------------------------------------------


def test_nats_without_workers_names_the_missing_worker_kinds(sshd: SshdServer, nats_server: NatsServer) -> None:
    _, report, _ = doctor(ssh_env(sshd), "--nats-url", nats_server.url)
    found = checks(report)
    assert found["nats"]["status"] == "ok"
    for kind in ("ssh", "api"):
        problem = found[f"workers.{kind}"]
        assert problem["status"] == "fail" and f"{kind}-worker" in problem["fix"]


def test_an_unreachable_nats_is_named(sshd: SshdServer) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    _, report, _ = doctor(ssh_env(sshd), "--nats-url", url)
    assert url in failed(report)["nats"]["detail"]


# --- against the simulator ---------------------------------------------------------------------------


def test_the_simulator_and_the_sshd_together_are_all_green(sshd: SshdServer, sim: SimInfo) -> None:
    code, report, stderr = doctor({**ssh_env(sshd), **api_env(sim)})
    assert code == 0, (failed(report), stderr)
    found = checks(report)
    for name in ("api.reach", "api.tls", "api.auth", "api.version", "api.privileges"):
        assert found[name]["status"] == "ok", found[name]
    assert report["ok"] is True


def test_the_simulator_alone_is_all_green(sim: SimInfo) -> None:
    env = {"SSH_HOST": sim.host, "SSH_PORT": str(sim.ssh_port), "SSH_NODE": sim.nodes[0],
           "SSH_USER": getattr(sim, "ssh_user", "root"), "SSH_KEY_PATH": str(sim.ssh_private_key),
           "SSH_HOST_KEY_FINGERPRINT": sim.ssh_host_key_fingerprint, **api_env(sim)}
    code, report, stderr = doctor(env, "--allow-root")
    assert code == 0, (failed(report), stderr)


def test_tunnel_mode_through_the_simulators_ssh_is_all_green(sim: SimInfo) -> None:
    env = {"SSH_HOST": sim.host, "SSH_PORT": str(sim.ssh_port), "SSH_NODE": sim.nodes[0],
           "SSH_USER": getattr(sim, "ssh_user", "root"), "SSH_KEY_PATH": str(sim.ssh_private_key),
           "SSH_HOST_KEY_FINGERPRINT": sim.ssh_host_key_fingerprint, **api_env(sim), "PROXMOX_API_MODE": "ssh-tunnel"}
    code, report, stderr = doctor(env, "--allow-root")
    assert code == 0, (failed(report), stderr)
    assert checks(report)["api.tunnel"]["status"] == "ok"


class _DropsAfterFirstChannel(paramiko.Transport):
    """A real SSH connection to the simulator that goes away right after its first channel opens."""

    def open_channel(self, *args: Any, **kwargs: Any) -> paramiko.Channel:
        channel = super().open_channel(*args, **kwargs)
        self.close()
        return channel


def test_an_ssh_connection_dropping_under_the_tunnel_is_a_failed_check_not_a_crash(sim: SimInfo) -> None:
    env = {"SSH_HOST": sim.host, "SSH_PORT": str(sim.ssh_port), "SSH_NODE": sim.nodes[0],
           **api_env(sim), "PROXMOX_API_MODE": "ssh-tunnel"}
    cluster = load_proxmox_config(env).cluster(None)
    assert cluster is not None and sim.ssh_port is not None
    transport = _DropsAfterFirstChannel((sim.host, sim.ssh_port))
    transport.connect(username="root", pkey=paramiko.PKey.from_path(sim.ssh_private_key))
    report = Report()
    api_through_ssh(report, cluster, transport, ["list_vms"], timeout=3)
    results = {c.name: c for c in report.checks}
    assert results["api.tunnel"].status == "ok"
    assert results["api.tls"].status == "fail"
    assert "the SSH connection carrying the tunnel failed" in results["api.tls"].detail


def test_a_token_lacking_privileges_is_named_with_the_pveum_fix(sim: SimInfo) -> None:
    token = sim.readonly_token
    code, report, _ = doctor(api_env(sim, token))
    assert code == 1
    problem = failed(report)["api.privileges"]
    assert "VM.PowerMgmt on /vms (needed by vm_action)" in problem["detail"]
    assert f"pveum acl modify /vms --tokens '{token['user']}!{token['token_id']}' --roles PVEVMUser" in problem["fix"]


def test_a_wrong_token_secret_is_named(sim: SimInfo) -> None:
    token = {**sim.admin_token, "secret": "00000000-0000-0000-0000-000000000000"}
    _, report, _ = doctor(api_env(sim, token))
    problem = failed(report)["api.auth"]
    assert "401" in problem["detail"] and "pveum user token list" in problem["fix"]


def test_a_wrong_certificate_pin_stops_before_the_token_is_sent(sim: SimInfo) -> None:
    env = {**api_env(sim), "PROXMOX_FINGERPRINT": "AA:" * 31 + "AA"}
    _, report, _ = doctor(env)
    problem = failed(report)["api.tls"]
    assert "is not the pinned one" in problem["detail"] and "PROXMOX_FINGERPRINT=" in problem["fix"]
    assert "api.auth" not in checks(report)


def test_an_unpinned_self_signed_certificate_gets_the_pin_to_use(sim: SimInfo) -> None:
    env = api_env(sim)
    del env["PROXMOX_FINGERPRINT"]
    _, report, _ = doctor(env)
    problem = failed(report)["api.tls"]
    assert "PROXMOX_FINGERPRINT=" in problem["fix"]
    assert sim.fingerprint.replace(":", "").upper()[:16] in problem["fix"].replace(":", "").upper()


# --- which API modes work from here ------------------------------------------------------------------


def sim_ssh_env(sim: SimInfo) -> dict[str, str]:
    return {"SSH_HOST": sim.host, "SSH_PORT": str(sim.ssh_port), "SSH_NODE": sim.nodes[0],
            "SSH_USER": getattr(sim, "ssh_user", "root"), "SSH_KEY_PATH": str(sim.ssh_private_key),
            "SSH_HOST_KEY_FINGERPRINT": sim.ssh_host_key_fingerprint}


def modes(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name.removeprefix("api.modes[").removesuffix("]"): check for name, check in checks(report).items()
            if name.startswith("api.modes[")}


def test_all_three_api_modes_work_against_the_simulator(sim: SimInfo) -> None:
    code, report, stderr = doctor({**sim_ssh_env(sim), **api_env(sim)}, "--allow-root")
    assert code == 0, (failed(report), stderr)
    found = modes(report)
    assert set(found) == {"direct", "ssh-tunnel", "pvesh"}
    assert all(check["status"] == "ok" for check in found.values()), found
    assert found["direct"]["detail"].startswith(f"(configured) HTTPS to {sim.host}:{sim.api_port}: Proxmox VE ")
    assert f"HTTPS through SSH to {sim.nodes[0]}, then its 127.0.0.1:8006: Proxmox VE " in found["ssh-tunnel"]["detail"]
    assert f"`pvesh get /version` over SSH on {sim.nodes[0]}: Proxmox VE " in found["pvesh"]["detail"]
    summary = report["api_modes"]
    assert summary["configured"] == "direct" and summary["working"] == ["direct", "ssh-tunnel", "pvesh"]
    assert all(mode["ok"] and mode["fix"] is None for mode in summary["modes"].values())
    assert sim.admin_token["secret"] not in json.dumps(report) + stderr


def test_an_unreachable_api_port_fails_direct_and_suggests_the_tunnel(sim: SimInfo) -> None:
    closed = free_port()
    code, report, stderr = doctor({**sim_ssh_env(sim), **api_env(sim), "PROXMOX_PORT": str(closed)}, "--allow-root")
    assert code == 1
    found = modes(report)
    direct = found["direct"]
    assert direct["status"] == "fail", direct
    assert f"{sim.host}:{closed}" in direct["detail"] and "cannot connect" in direct["detail"]
    assert f"port {closed} is not reachable from here: use api mode ssh-tunnel, which works" in direct["fix"]
    assert 'api.mode = "ssh-tunnel"' in direct["fix"] and "PROXMOX_API_MODE=ssh-tunnel" in direct["fix"]
    # The tunnel goes to the host's own 127.0.0.1:8006, not to the (forwarded) port configured for direct.
    assert found["ssh-tunnel"]["status"] == "ok" and "127.0.0.1:8006" in found["ssh-tunnel"]["detail"]
    assert found["pvesh"]["status"] == "ok"
    assert report["api_modes"]["working"] == ["ssh-tunnel", "pvesh"]
    assert set(failed(report)) == {"api.reach", "api.modes[direct]"}, failed(report)


def test_another_mode_failing_is_only_a_warning(sim: SimInfo) -> None:
    env = {**sim_ssh_env(sim), **api_env(sim), "PROXMOX_PORT": str(free_port()), "PROXMOX_API_MODE": "pvesh"}
    code, report, stderr = doctor(env, "--allow-root")
    assert code == 0, (failed(report), stderr)
    found = modes(report)
    assert found["pvesh"]["status"] == "ok" and found["pvesh"]["detail"].startswith("(configured) ")
    assert found["direct"]["status"] == "warn" and "informational" in found["direct"]["detail"]
    assert "for api mode direct, open port" in found["direct"]["fix"]
    assert found["ssh-tunnel"]["status"] == "ok"


def test_a_refused_forward_names_the_authorized_keys_options(sim: SimInfo) -> None:
    port = free_port()  # neither the simulator's API port nor 8006: its SSH face refuses to forward there
    env = {**sim_ssh_env(sim), **api_env(sim), "PROXMOX_PORT": str(port), "PROXMOX_API_MODE": "ssh-tunnel"}
    code, report, _ = doctor(env, "--allow-root")
    assert code == 1
    tunnel = failed(report)["api.modes[ssh-tunnel]"]
    assert f"refused to forward to 127.0.0.1:{port}" in tunnel["detail"]
    assert f'port-forwarding,permitopen="127.0.0.1:{port}"' in tunnel["fix"]
    assert 'or switch to a mode that works from here: set api.mode = "pvesh"' in tunnel["fix"]
    assert modes(report)["pvesh"]["status"] == "ok"


def test_a_mode_without_credentials_is_not_tried_and_says_what_is_missing(sim: SimInfo) -> None:
    code, report, stderr = doctor({**sim_ssh_env(sim), "PROXMOX_API_MODE": "pvesh"}, "--allow-root")
    assert code == 0, (failed(report), stderr)
    found = modes(report)
    for mode in ("direct", "ssh-tunnel"):
        assert found[mode]["status"] == "warn" and "not tried: no Proxmox API credentials" in found[mode]["detail"]
        assert "PROXMOX_TOKEN_NAME" in found[mode]["fix"]
    assert found["pvesh"]["status"] == "ok"


def test_the_table_lists_the_modes(sim: SimInfo) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_PREFIXES)}
    env = {**base, **sim_ssh_env(sim), **api_env(sim), "PROXMOX_PORT": str(free_port()), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "doctor", "--allow-root", "--timeout", "3",
                             "--env-file", "/nonexistent"], capture_output=True, text=True, timeout=120, check=False,
                            env=env)
    assert result.returncode == 1
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("api.modes[")}
    assert "FAIL" in lines["api.modes[direct]"] and "(configured)" in lines["api.modes[direct]"]
    assert lines["api.modes[ssh-tunnel]"].split()[1] == "ok" and lines["api.modes[pvesh]"].split()[1] == "ok"
    assert "use api mode ssh-tunnel, which works" in result.stdout


def tunnel_env(sshd: SshdServer, port: int) -> dict[str, str]:
    """Tunnel mode through the real sshd to its 127.0.0.1:PORT (credentials well-formed, never used)."""
    return {**ssh_env(sshd), "PROXMOX_API_MODE": "ssh-tunnel", "PROXMOX_PORT": str(port), "PROXMOX_TOKEN_NAME": "mcp",
            "PROXMOX_TOKEN_VALUE": "unused", "PROXMOX_FINGERPRINT": "ab" * 32}


@pytest.fixture(scope="module")
def restricted_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """The real sshd with the client keys under `restrict` (no port forwarding), as authorized_keys often has."""
    server = start_sshd(tmp_path_factory.mktemp("sshd-restricted"), key_options="restrict")
    try:
        yield server
    finally:
        server.close()


def test_a_key_restricted_from_forwarding_gets_the_permitopen_fix(restricted_sshd: SshdServer) -> None:
    code, report, _ = doctor(tunnel_env(restricted_sshd, 8006))
    assert code == 1
    tunnel = failed(report)["api.modes[ssh-tunnel]"]
    assert "refused to forward to 127.0.0.1:8006 (Administratively prohibited)" in tunnel["detail"]
    assert 'port-forwarding,permitopen="127.0.0.1:8006"' in tunnel["fix"] and "keygen --tunnel" in tunnel["fix"]
    pvesh = modes(report)["pvesh"]
    assert pvesh["status"] == "warn" and "pvesh not found on pve1" in pvesh["fix"]


def test_a_tunnel_to_a_port_nothing_listens_on_says_so(sshd: SshdServer) -> None:
    closed = free_port()
    code, report, _ = doctor(tunnel_env(sshd, closed))
    assert code == 1
    tunnel = failed(report)["api.modes[ssh-tunnel]"]
    assert "(Connect failed)" in tunnel["detail"]
    assert f"nothing listens on pve1's 127.0.0.1:{closed}" in tunnel["fix"] and "pveproxy" in tunnel["fix"]


def test_all_clusters_get_one_report_each_and_a_failing_one_fails_the_run(sim: SimInfo, tmp_path: Path) -> None:
    base = load_proxmox_config({**sim_ssh_env(sim), **api_env(sim)}).clusters[0]
    closed = free_port()
    east = base.model_copy(update={"name": "east"})
    west = base.model_copy(update={"name": "west", "api": base.api.model_copy(update={"port": closed})})
    config = write_private(tmp_path / "clusters.toml",
                           dump_config_toml(ProxmoxConfig(clusters=[east, west], default_cluster="east")))
    code, document, stderr = doctor({"PMCP_CONFIG": str(config)}, "--all-clusters", "--allow-root")
    assert code == 1 and document["ok"] is False, stderr
    reports = {report["cluster"]: report for report in document["clusters"]}
    assert set(reports) == {"east", "west"}
    assert reports["east"]["ok"] is True, failed(reports["east"])
    assert reports["west"]["ok"] is False and "api.reach" in failed(reports["west"])
    assert f"{sim.host}:{closed}" in failed(reports["west"])["api.reach"]["detail"]
    # The default cluster alone still passes: --all-clusters is what brought west's problem in.
    code, single, stderr = doctor({"PMCP_CONFIG": str(config)}, "--allow-root")
    assert code == 0 and single["cluster"] == "east", (failed(single), stderr)


def test_all_clusters_and_one_cluster_cannot_be_asked_together() -> None:
    result = subprocess.run([sys.executable, "-m", "proxmox_mcp_cli.main", "doctor", "--all-clusters", "--cluster",
                             "east"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and "not allowed with argument" in result.stderr
