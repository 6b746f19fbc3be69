"""The compose stack's one-shot `config` step: turn what the operator put in ./config into the files the
services read, owned by the service user with mode 0600, on volumes only the services that need them mount.

  worker dir   clusters.toml (+ the SSH key, known_hosts, CA file it names)  -> ssh-worker, api-worker
  gateway dir  token (the bearer token; generated once when none is given)   -> gateway(s)
               request_state_key (seals 2026-era confirmation state; the same for every gateway of the
               `ha` profile; generated once when none is given)
               audit_key (seals the audit chain; the same for every gateway; generated once when none is given)
  both dirs    command_profiles.toml (extra command profiles; empty if none) -> gateway and both workers
  grafana dir  admin_password (generated once when none is given)            -> grafana

With the `demo` profile the simulator (pve-sim) runs: when its host name resolves and its ready file exists,
the cluster config points at it instead (its generated API token, pinned TLS fingerprint and SSH key).
Exit status 2 with a message naming the fix when the operator's input cannot be used.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_runtime.command_policy import ProfileConfigError, load_profiles_file
from proxmox_mcp_runtime.config import ConfigError, dump_config_toml, load_config_file, load_proxmox_config

CLUSTERS_FILE = "clusters.toml"
GATEWAY_TOKEN = "gateway_token"
REQUEST_STATE_KEY = "request_state_key"
REQUEST_STATE_KEY_MIN_BYTES = 32
GRAFANA_PASSWORD = "grafana_admin_password"
AUDIT_KEY = "audit_key"
COMMAND_PROFILES = "command_profiles.toml"
NO_PROFILES = b"# No extra command profiles: the built-in ones only (put yours in ./config/command_profiles.toml)\n"


class PrepareError(Exception):
    """The operator's input cannot be used; the message says what to change."""


def _owner(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    uid, _, gid = text.partition(":")
    return int(uid), int(gid or uid)


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    """Atomically replace `path` with `data`, mode 0600 (0640 never: these are secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def own_dir(path: Path, owner: tuple[int, int] | None) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    if owner is not None:
        os.chown(path, *owner)


def check_private(path: Path, what: str, shown_as: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PrepareError(f"{what} {shown_as} is readable by others (mode {mode:04o}): run `chmod 600 {shown_as}`")


def _shown(path: Path, source: Path, shown_source: str) -> str:
    try:
        return f"{shown_source.rstrip('/')}/{path.relative_to(source)}"
    except ValueError:
        return str(path)


def _path_fields(section: Any) -> list[str]:
    return [name for name in type(section).model_fields if isinstance(getattr(section, name), Path)]


def localize_files(config: ProxmoxConfig, source: Path, shown_source: str, worker_dir: Path,
                   owner: tuple[int, int] | None) -> ProxmoxConfig:
    """Copy every file a cluster config names (keys, known_hosts, CA files) next to the copied config."""
    clusters: list[ClusterConfig] = []
    for cluster in config.clusters:
        updates: dict[str, dict[str, Path]] = {}
        for section_name in ("ssh", "api"):
            section = getattr(cluster, section_name)
            for field in _path_fields(section):
                given: Path = getattr(section, field)
                original = given if given.is_absolute() else source / given
                label = f"{section_name}.{field} of cluster {cluster.name!r}"
                if not original.is_file():
                    raise PrepareError(
                        f"{label} names {given}, which is not a file in {shown_source}: copy it there and use a path "
                        f"relative to {shown_source}"
                    )
                if field.endswith("key_path") or "key" in field or "token" in field:
                    check_private(original, label, _shown(original, source, shown_source))
                target = worker_dir / cluster.name / f"{section_name}_{field}"
                write_private(target, original.read_bytes(), owner)
                updates.setdefault(section_name, {})[field] = target
        clusters.append(cluster.model_copy(update={
            name: getattr(cluster, name).model_copy(update=fields) for name, fields in updates.items()
        }))
        if owner is not None and (worker_dir / cluster.name).exists():
            own_dir(worker_dir / cluster.name, owner)
    return config.model_copy(update={"clusters": clusters})


def operator_config(source: Path, shown_source: str, env: dict[str, str]) -> ProxmoxConfig:
    path = source / CLUSTERS_FILE
    if path.is_file():
        try:
            return load_config_file(path)
        except ConfigError as exc:
            raise PrepareError(str(exc).replace(str(path), f"{shown_source}/{CLUSTERS_FILE}")) from None
    if not (env.get("SSH_HOST") or env.get("PROXMOX_HOST")):
        raise PrepareError(
            f"no cluster configured: put {CLUSTERS_FILE} into {shown_source} (see README.md#deployment), or set "
            "SSH_HOST / PROXMOX_HOST and friends in .env, or try the simulator: docker compose --profile demo up"
        )
    try:
        return load_proxmox_config({k: v for k, v in env.items() if k != "PMCP_CONFIG"})
    except ConfigError as exc:
        raise PrepareError(str(exc)) from None


def sim_is_running(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return False
    return True


def read_sim_info(path: Path, wait: float) -> dict[str, Any]:
    deadline = time.monotonic() + wait
    while True:
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, ValueError):
            if time.monotonic() >= deadline:
                raise PrepareError(f"pve-sim is running but {path} did not appear within {wait:.0f} s") from None
            time.sleep(0.2)


def demo_config(info: dict[str, Any], sim_host: str, worker_dir: Path,
                owner: tuple[int, int] | None) -> ProxmoxConfig:
    """The simulator's cluster, reached by its service name, with its SSH key copied for the worker user."""
    from proxmox_mcp_cli.stack import config_for_sim

    key_copy = worker_dir / "default" / "ssh_key_path"
    write_private(key_copy, Path(info["ssh_private_key"]).read_bytes(), owner)
    own_dir(key_copy.parent, owner)
    cluster = config_for_sim({**info, "host": sim_host, "ssh_private_key": str(key_copy)}).clusters[0]
    hosts = [HostConfig(node=h.node, address=sim_host, port=h.port) for h in cluster.hosts]
    cluster = cluster.model_copy(update={"hosts": hosts, "api": cluster.api.model_copy(update={"host": sim_host})})
    return ProxmoxConfig(clusters=[cluster])


def provide_secret(source: Path, shown_source: str, name: str, target: Path,
                   owner: tuple[int, int] | None, min_bytes: int = 1) -> str:
    """Copy the operator's secret file, keep the one generated earlier, or generate one. Returns what happened."""
    given = source / name
    if given.is_file():
        check_private(given, name, f"{shown_source}/{name}")
        value = given.read_text().strip()
        if not value:
            raise PrepareError(f"{shown_source}/{name} is empty")
        if len(value.encode()) < min_bytes:
            raise PrepareError(f"{shown_source}/{name} is too short ({len(value.encode())} bytes, at least "
                               f"{min_bytes}): e.g. `openssl rand -base64 48 > {shown_source}/{name}`")
        write_private(target, value.encode() + b"\n", owner)
        return "from " + f"{shown_source}/{name}"
    if target.is_file() and target.read_text().strip():
        if owner is not None:
            os.chown(target, *owner)
        return "kept (generated earlier)"
    write_private(target, secrets.token_urlsafe(32).encode() + b"\n", owner)
    return "generated"


def provide_command_profiles(source: Path, shown_source: str, targets: list[Path],
                             owner: tuple[int, int] | None) -> str:
    """The same profiles file for the gateway and both workers (PMCP_COMMAND_PROFILES): the operator's, checked
    with the loader the services use, or an empty one. Returns what happened."""
    given = source / COMMAND_PROFILES
    shown = f"{shown_source}/{COMMAND_PROFILES}"
    data, how = NO_PROFILES, "none given (built-in profiles only)"
    if given.is_file():
        try:
            names = sorted(load_profiles_file(given))
        except ProfileConfigError as exc:
            raise PrepareError(str(exc).replace(str(given), shown)) from None
        data, how = given.read_bytes(), f"{', '.join(names) or 'none'} from {shown}"
    for target in targets:
        write_private(target / COMMAND_PROFILES, data, owner)
    return how


def prepare(args: argparse.Namespace) -> list[str]:
    source = Path(args.source)
    owner = _owner(args.owner)
    worker_dir, gateway_dir = Path(args.worker_dir), Path(args.gateway_dir)
    for directory in (worker_dir, gateway_dir):
        own_dir(directory, owner)
    report: list[str] = []
    if args.sim_info and args.sim_host and sim_is_running(args.sim_host):
        info = read_sim_info(Path(args.sim_info), args.sim_wait)
        config = demo_config(info, args.sim_host, worker_dir, owner)
        report.append(f"cluster config: demo, pointing at pve-sim ({args.sim_host})")
    else:
        config = operator_config(source, args.shown_source, dict(os.environ))
        config = localize_files(config, source, args.shown_source, worker_dir, owner)
        names = ", ".join(c.name for c in config.clusters)
        report.append(f"cluster config: {len(config.clusters)} cluster(s) ({names}) from {args.shown_source}")
    write_private(worker_dir / CLUSTERS_FILE, dump_config_toml(config).encode(), owner)
    how = provide_secret(source, args.shown_source, GATEWAY_TOKEN, gateway_dir / "token", owner)
    report.append(f"gateway bearer token: {how}; show it with `docker compose exec gateway cat "
                  f"{gateway_dir / 'token'}`")
    how = provide_secret(source, args.shown_source, REQUEST_STATE_KEY, gateway_dir / REQUEST_STATE_KEY, owner,
                         min_bytes=REQUEST_STATE_KEY_MIN_BYTES)
    report.append(f"request-state key (2026-era confirmations, the same for every gateway): {how}")
    how = provide_secret(source, args.shown_source, AUDIT_KEY, gateway_dir / AUDIT_KEY, owner,
                         min_bytes=32)
    report.append(f"audit key: {how}; `proxmox-mcp audit verify` needs it (keep a copy apart from the audit log)")
    how = provide_command_profiles(source, args.shown_source, [worker_dir, gateway_dir], owner)
    report.append(f"command profiles: {how}")
    if args.grafana_dir:
        grafana_dir = Path(args.grafana_dir)
        grafana_owner = _owner(args.grafana_owner) or owner
        own_dir(grafana_dir, grafana_owner)
        how = provide_secret(source, args.shown_source, GRAFANA_PASSWORD, grafana_dir / "admin_password",
                             grafana_owner)
        report.append(f"grafana admin password: {how}")
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Prepare the compose stack's config, keys and secrets.")
    parser.add_argument("--source", required=True, help="the operator's config directory (read-only mount)")
    parser.add_argument("--shown-source", default="./config", help="how to name the source dir in messages")
    parser.add_argument("--worker-dir", required=True, help="where the workers read clusters.toml and keys")
    parser.add_argument("--gateway-dir", required=True, help="where the gateway reads its bearer token")
    parser.add_argument("--grafana-dir", help="where grafana reads its admin password")
    parser.add_argument("--owner", help="UID:GID of the service user (needs root)")
    parser.add_argument("--grafana-owner", help="UID:GID of the grafana user (needs root)")
    parser.add_argument("--sim-info", help="pve-sim's ready file (demo profile)")
    parser.add_argument("--sim-host", help="pve-sim's host name on the compose network (demo profile)")
    parser.add_argument("--sim-wait", type=float, default=60.0, help="seconds to wait for the ready file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = prepare(args)
    except PrepareError as exc:
        print(f"config: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"config: cannot write the prepared files: {exc.strerror or exc} ({exc.filename})", file=sys.stderr)
        return 2
    for line in report:
        print(f"config: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
