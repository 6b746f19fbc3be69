#!/usr/bin/env bash
# Install proxmox-mcp on a bare-metal host under systemd (README.md#deployment):
#   - a dedicated system user `proxmox-mcp` (systemd-sysusers),
#   - a venv with the locked dependencies under /opt/proxmox-mcp/venv (uv),
#   - /etc/proxmox-mcp (root:proxmox-mcp 0750) and /etc/proxmox-mcp/credentials (root 0700) holding the
#     cluster config, the SSH key, the gateway token and the audit key, each 0600, handed to the services by
#     LoadCredential=,
#   - the units (NATS, gateway, ssh-worker, api-worker, proxmox-mcp.target), enabled.
# Re-running it upgrades the venv and units and never overwrites config, keys or tokens.
#
#   sudo deploy/install.sh [--start]            install on this host
#   deploy/install.sh --root DIR                install into DIR (a scratch root): no systemctl, no real user
#   sudo deploy/install.sh --request-state-key FILE
#                                               use this key (host 2 and 3 of a three-host layout: the file
#                                               generated on host 1) instead of generating one
set -euo pipefail

PREFIX=/opt/proxmox-mcp
UNITS=(proxmox-mcp-nats.service proxmox-mcp-gateway.service proxmox-mcp-ssh-worker.service
       proxmox-mcp-api-worker.service)
ROOT=""
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
START=0
SKIP_VENV=0
STATE_KEY=""

usage() {
  cat <<EOF
usage: $0 [--root DIR] [--source DIR] [--python PYTHON] [--start] [--skip-venv]

  --root DIR       install below DIR instead of / (for packaging and tests: no systemctl, no host user)
  --source DIR     the proxmox-mcp checkout to install from (default: $SOURCE)
  --python PYTHON  Python 3.11+ for the venv (default: python3)
  --start          start proxmox-mcp.target when done (not with --root)
  --skip-venv      keep the existing venv (config, units and user only)
  --request-state-key FILE
                   the key sealing 2026-era confirmation state, shared by every gateway behind one load
                   balancer: install this file (copied from the first host) instead of generating one
EOF
}

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "==> $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] && [ -n "$2" ] || die "--root needs a directory"; ROOT="$(realpath -m "$2")"; shift 2 ;;
    --source) [ $# -ge 2 ] || die "--source needs a directory"; SOURCE="$(realpath "$2")"; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PYTHON="$2"; shift 2 ;;
    --start) START=1; shift ;;
    --skip-venv) SKIP_VENV=1; shift ;;
    --request-state-key) [ $# -ge 2 ] && [ -n "$2" ] || die "--request-state-key needs a file"
      STATE_KEY="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

[ -n "$ROOT" ] || [ "$(id -u)" = "0" ] || die "run as root (sudo $0), or use --root DIR"
[ -z "$ROOT" ] || [ "$START" = "0" ] || die "--start cannot be used with --root"
[ "$ROOT" != "/" ] || ROOT=""
[ -f "$SOURCE/uv.lock" ] && [ -d "$SOURCE/services/cli" ] || die "$SOURCE is not a proxmox-mcp checkout (no uv.lock)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$PYTHON is not Python 3.11 or newer (use --python)"
if [ -n "$STATE_KEY" ]; then
  [ -r "$STATE_KEY" ] || die "--request-state-key $STATE_KEY cannot be read"
  [ "$(tr -d '[:space:]' < "$STATE_KEY" | wc -c)" -ge 32 ] || die "--request-state-key: the key must have at least 32 bytes"
fi

ETC="$ROOT/etc/proxmox-mcp"
CREDS="$ETC/credentials"
STATE="$ROOT/var/lib/proxmox-mcp"
UNIT_DIR="$ROOT/etc/systemd/system"
VENV="$ROOT$PREFIX/venv"
mkdir -p "$ROOT/etc" "$ROOT/usr/lib/sysusers.d" "$UNIT_DIR" "$ROOT$PREFIX"

say "service user proxmox-mcp"
install -m 0644 "$SOURCE/deploy/systemd/proxmox-mcp.sysusers.conf" "$ROOT/usr/lib/sysusers.d/proxmox-mcp.conf"
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers --root="${ROOT:-/}" "$ROOT/usr/lib/sysusers.d/proxmox-mcp.conf"
elif [ -z "$ROOT" ]; then
  getent passwd proxmox-mcp >/dev/null || useradd --system --user-group --home-dir /var/lib/proxmox-mcp \
    --shell /usr/sbin/nologin --comment "proxmox-mcp services" proxmox-mcp
else
  die "systemd-sysusers is needed to create the user inside --root"
fi
SVC_UID="$(awk -F: '$1 == "proxmox-mcp" {print $3}' "$ROOT/etc/passwd")"
SVC_GID="$(awk -F: '$1 == "proxmox-mcp" {print $3}' "$ROOT/etc/group")"
[ -n "$SVC_UID" ] && [ -n "$SVC_GID" ] || die "user proxmox-mcp was not created"
# Ownership needs root; an unprivileged --root install keeps the modes and skips the owners.
if [ "$(id -u)" = "0" ]; then CHOWN=1; else CHOWN=0; fi
own() { [ "$CHOWN" = "0" ] || chown "$1" "${@:2}"; }

if [ "$SKIP_VENV" = "0" ]; then
  say "venv $PREFIX/venv (locked dependencies, from $SOURCE)"
  UV="$(command -v uv || true)"
  if [ -z "$UV" ]; then
    "$PYTHON" -m venv "$ROOT$PREFIX/tools"
    "$ROOT$PREFIX/tools/bin/pip" install --quiet uv
    UV="$ROOT$PREFIX/tools/bin/uv"
  fi
  # uv caches a built wheel of a local package until its pyproject.toml changes: rebuild ours every time.
  REBUILD=()
  for member in proxmox-mcp proxmox-mcp-contracts proxmox-mcp-runtime proxmox-mcp-gateway \
                proxmox-mcp-ssh-worker proxmox-mcp-api-worker proxmox-mcp-pve-sim; do
    REBUILD+=(--reinstall-package "$member")
  done
  UV_PROJECT_ENVIRONMENT="$VENV" "$UV" sync --quiet --project "$SOURCE" --frozen --no-dev --no-editable \
    --package proxmox-mcp --python "$PYTHON" "${REBUILD[@]}"
  install -m 0644 "$SOURCE/README.md" "$ROOT$PREFIX/README.md"
fi
[ -x "$VENV/bin/proxmox-mcp" ] || die "$VENV/bin/proxmox-mcp is missing (run without --skip-venv)"
mkdir -p "$ROOT/usr/local/bin"
ln -sfn "$PREFIX/venv/bin/proxmox-mcp" "$ROOT/usr/local/bin/proxmox-mcp"

say "config and credentials in /etc/proxmox-mcp"
install -d -m 0750 "$ETC"
own "root:$SVC_GID" "$ETC"
install -d -m 0700 "$CREDS"
install -d -m 0750 "$STATE"
own "$SVC_UID:$SVC_GID" "$STATE"
umask 077
if [ -n "$STATE_KEY" ]; then
  install -m 0600 "$STATE_KEY" "$CREDS/request-state-key"
  say "installed the request-state key from $STATE_KEY"
elif [ ! -s "$CREDS/request-state-key" ]; then
  "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))' > "$CREDS/request-state-key"
  say "generated the request-state key: $CREDS/request-state-key (give the same file to every gateway host)"
fi
if [ ! -s "$CREDS/audit-key" ]; then
  "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' > "$CREDS/audit-key"
  say "generated the audit key: $CREDS/audit-key (seals the audit chain; keep a copy apart from the log)"
fi
if [ ! -s "$CREDS/gateway-token" ]; then
  "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$CREDS/gateway-token"
  say "generated the gateway bearer token: $CREDS/gateway-token"
fi
install -m 0644 "$SOURCE/deploy/systemd/clusters.toml.example" "$ETC/clusters.toml.example"
if [ ! -e "$CREDS/clusters.toml" ]; then
  install -m 0600 "$SOURCE/deploy/systemd/clusters.toml.example" "$CREDS/clusters.toml"
  say "wrote a template $CREDS/clusters.toml: edit it for your cluster"
fi
[ -e "$CREDS/known_hosts" ] || : > "$CREDS/known_hosts"
if [ ! -e "$CREDS/command_profiles.toml" ]; then
  echo "# Extra command profiles for the gateway and both workers (README.md: What a call may do)." \
    > "$CREDS/command_profiles.toml"
fi
NEW_KEY=0
if [ ! -e "$CREDS/id_ed25519" ]; then
  "$VENV/bin/proxmox-mcp" keygen --out "$CREDS/id_ed25519" --comment "proxmox-mcp@$(hostname)" >/dev/null
  NEW_KEY=1
fi
for secret in gateway-token request-state-key audit-key clusters.toml id_ed25519 known_hosts command_profiles.toml; do
  if [ -n "$(find "$CREDS/$secret" -perm /077 2>/dev/null)" ]; then
    chmod 0600 "$CREDS/$secret"
    say "tightened $CREDS/$secret to 0600 (it was readable by others)"
  fi
done
chmod 0600 "$CREDS/gateway-token" "$CREDS/request-state-key" "$CREDS/audit-key" "$CREDS/clusters.toml" "$CREDS/known_hosts" "$CREDS/id_ed25519" \
  "$CREDS/command_profiles.toml"
[ ! -e "$CREDS/id_ed25519.pub" ] || chmod 0644 "$CREDS/id_ed25519.pub"
own -R root:root "$CREDS"
umask 022

say "systemd units"
for unit in "${UNITS[@]}" proxmox-mcp.target; do
  install -m 0644 "$SOURCE/deploy/systemd/$unit" "$UNIT_DIR/$unit"
done
if [ -z "$ROOT" ]; then
  systemctl daemon-reload
  systemctl enable proxmox-mcp.target "${UNITS[@]}"
else
  # What `systemctl enable` would link, without talking to a service manager.
  mkdir -p "$UNIT_DIR/multi-user.target.wants" "$UNIT_DIR/proxmox-mcp.target.wants"
  ln -sfn /etc/systemd/system/proxmox-mcp.target "$UNIT_DIR/multi-user.target.wants/proxmox-mcp.target"
  for unit in "${UNITS[@]}"; do
    ln -sfn "/etc/systemd/system/$unit" "$UNIT_DIR/proxmox-mcp.target.wants/$unit"
  done
fi

if [ "$START" = "1" ]; then
  systemctl restart proxmox-mcp.target
  say "started proxmox-mcp.target"
fi

cat <<EOF

proxmox-mcp is installed${ROOT:+ in $ROOT}.
Next:
  1. Edit /etc/proxmox-mcp/credentials/clusters.toml (key_path = "id_ed25519" names the key beside it).
EOF
if [ "$NEW_KEY" = "1" ]; then
  cat <<EOF
  2. Authorize the new SSH key on each Proxmox host (restrict it to this host's address):
       $(sed 's/^/restrict,from="THIS_HOST_IP" /' "$CREDS/id_ed25519.pub")
     or: ssh-copy-id -i /etc/proxmox-mcp/credentials/id_ed25519.pub pmcp@PROXMOX_HOST
EOF
else
  echo "  2. Make sure /etc/proxmox-mcp/credentials/id_ed25519 is authorized on each Proxmox host."
fi
cat <<EOF
  3. Check everything: sudo proxmox-mcp doctor --config /etc/proxmox-mcp/credentials/clusters.toml
  4. Start: sudo systemctl start proxmox-mcp.target   (logs: journalctl -u 'proxmox-mcp-*' -f)
  5. Put Caddy in front for TLS: PMCP_UPSTREAM=127.0.0.1:8080 caddy run --config Caddyfile
EOF
