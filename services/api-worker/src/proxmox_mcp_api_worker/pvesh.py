"""The pvesh backend (api.mode = "pvesh"): `pvesh <get|create|set|delete> PATH --k=v ... --output-format json`
run over the cluster's pooled SSH connection, for hosts whose API port cannot be reached at all.

pvesh runs the same API handlers as the HTTPS server (as root@pam), so the data is the same. Two differences are
hidden here so that every mode gives the same results:
- Errors come as text on stderr with exit status 255: "400 Parameter verification failed." with one
  "param: reason" line each, "403 ...", or the bare message of a 500. They become the PveHttpError the HTTPS API
  would have answered, and errors.to_failure maps them to the same codes.
- A request that starts a task waits for it (the CLI runs workers in the foreground), prints the task's output
  and then the UPID as the last line. When the task fails, pvesh exits 255 with the task's exit status and no
  UPID; the UPID is then found in the node's task list, so the caller gets the UPID as over HTTPS and sees the
  failure in task_status.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any, cast
from urllib.parse import unquote

from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.json_values import is_array, is_object
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig
from proxmox_mcp_runtime.ssh import SshPool

from proxmox_mcp_api_worker.backend import Method, Params
from proxmox_mcp_api_worker.errors import PveHttpError, clean_message, to_failure
from proxmox_mcp_api_worker.metrics import observe_api_call

log = logging.getLogger(__name__)

VERBS: dict[str, str] = {"GET": "get", "POST": "create", "PUT": "set", "DELETE": "delete"}
FORMAT_OPTIONS = frozenset({"output-format", "noborder", "noheader", "quiet", "human-readable"})
"""pvesh's own options: never accepted as API parameters, or they would change what we parse."""
NOT_FOUND_EXIT = 127
FAILED_TASK_CLOCK_SLACK = 10.0
"""Seconds a failed task may seem to have started before the call (worker and host clocks differ a little)."""
FAILED_TASK_LOOKUP = 20
"""Recent failed tasks of the guest (or node) searched for the one a failing pvesh call started."""

_STATUS_LINE = re.compile(r"^([45]\d\d) (\S.*)$")
_PARAM_LINE = re.compile(r"^([A-Za-z0-9_.\[\]-]+): (.*)$")
_NO_HANDLER = re.compile(r"^No '(\w+)' handler defined for '(.*)'$")
_USAGE_PREFIXES = ("pvesh ", "USAGE:")
_NODE_PATH = re.compile(r"^/nodes/([^/]+)(?:/|$)")
_GUEST_PATH = re.compile(r"^/nodes/[^/]+/(?:qemu|lxc)/(\d+)(?:/|$)")


def pvesh_path(path: str) -> str:
    """The API path as pvesh takes it: each segment decoded (pvesh reads the path literally, HTTPS decodes it)."""
    segments = [unquote(segment) for segment in path.split("/") if segment]
    for segment in segments:
        if "/" in segment or not segment.strip():
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, "pvesh cannot address a path segment that contains "
                                 "'/' once decoded; use the direct or ssh-tunnel API mode for this path")
    return "/" + "/".join(segments)


def pvesh_options(params: Params | None) -> list[str]:
    """`--key=value` (the value can start with '-' safely), lists as repeated options."""
    options: list[str] = []
    for key, value in (params or {}).items():
        if key in FORMAT_OPTIONS:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"{key!r} is an option of the pvesh tool, not an API "
                                 "parameter")
        values = cast("list[Any] | tuple[Any, ...]", value) if isinstance(value, list | tuple) else [value]
        options.extend(f"--{key}={item}" for item in values)
    return options


def pvesh_argv(method: Method, path: str, params: Params | None) -> list[str]:
    return ["pvesh", VERBS[method], pvesh_path(path), *pvesh_options(params), "--output-format", "json"]


def parse_output(stdout: bytes, method: str, path: str) -> Any:
    """The JSON answer: all of stdout, or its last line after the output of a task pvesh waited for."""
    text = stdout.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    last = text.splitlines()[-1].strip()
    try:
        return json.loads(last)
    except ValueError:
        raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"pvesh answered {method} {path} with something that is not "
                             "JSON") from None


def parse_error(stderr: bytes, method: str, path: str) -> PveHttpError:
    """pvesh's error text → the PveHttpError the HTTPS API gives for the same failure."""
    lines = [line.strip() for line in stderr.decode("utf-8", errors="replace").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_USAGE_PREFIXES)]
    if not lines:
        return PveHttpError(status=500, message=f"pvesh failed {method} {path} without a message")
    for index, line in enumerate(lines):
        status_line = _STATUS_LINE.match(line)
        if status_line is None:
            continue
        status = int(status_line.group(1))
        errors: dict[str, Any] = {}
        if status == 400:
            for extra in lines[index + 1:]:
                param = _PARAM_LINE.match(extra)
                if param:
                    errors[param.group(1)] = param.group(2)
        return PveHttpError(status=status, message=clean_message(status_line.group(2)), errors=errors)
    no_handler = _NO_HANDLER.match(lines[-1])
    if no_handler:
        return PveHttpError(status=501, message=f"Method '{method} {path}' not implemented")
    return PveHttpError(status=500, message=clean_message(lines[-1]))


class PveshBackend:
    """PveBackend over `pvesh` on the cluster's nodes (SSH). Requests for /nodes/X/... run on node X when its SSH
    host is configured (no proxy hop), everything else on the API host."""

    def __init__(self, cluster: ClusterConfig, pool: SshPool, api_host: HostConfig, *, max_output: int) -> None:
        self.cluster = cluster.name
        self._config = cluster
        self.pool = pool
        self.api_host = api_host
        self.max_output = max_output

    @property
    def mode(self) -> str:
        return "pvesh"

    @property
    def insecure_tls(self) -> bool:
        return False

    @property
    def waits_for_tasks(self) -> bool:
        return True

    async def certificate(self, timeout: float) -> bytes | None:
        return None

    async def close(self) -> None:
        await self.pool.close()

    def host_for(self, path: str) -> HostConfig:
        node = _NODE_PATH.match(path)
        if node is not None:
            host = self._config.host_for(unquote(node.group(1)))
            if host is not None:
                return host
        return self.api_host

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        if timeout <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "no time left before the call's deadline to ask Proxmox")
        argv = pvesh_argv(method, path, params)
        host = self.host_for(path)
        started_wall = time.time()
        started = time.perf_counter()
        try:
            output = await self.pool.run(host, argv, timeout=timeout, max_output=self.max_output)
        except ServiceFailure as exc:
            observe_api_call(self.cluster, method, None, time.perf_counter() - started)
            raise self._ssh_failure(exc, method, path, timeout, host) from None
        if output.exit_code == 0:
            observe_api_call(self.cluster, method, 200, time.perf_counter() - started)
            if output.truncated:
                raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"pvesh's answer to {method} {path} is larger than "
                                     f"{self.max_output} bytes; narrow it with parameters")
            return parse_output(output.stdout, method, path)
        if output.exit_code == NOT_FOUND_EXIT or b"command not found" in output.stderr:
            observe_api_call(self.cluster, method, None, time.perf_counter() - started)
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"pvesh is not available on node {host.node}; api mode "
                                 "'pvesh' needs SSH access as root to a Proxmox VE node")
        error = parse_error(output.stderr, method, path)
        observe_api_call(self.cluster, method, error.status, time.perf_counter() - started)
        if method != "GET" and error.status == 500:
            left = timeout - (time.perf_counter() - started)
            upid = await self._failed_task_upid(path, error.message, started_wall, left)
            if upid is not None:
                return upid
        raise to_failure(error, method=method, path=path)

    def _ssh_failure(self, exc: ServiceFailure, method: str, path: str, timeout: float,
                     host: HostConfig) -> ServiceFailure:
        if exc.code is ErrorCode.TIMEOUT:
            unknown = "" if method == "GET" else "; it was stopped, the outcome is unknown: check before retrying"
            return ServiceFailure(ErrorCode.TIMEOUT, f"pvesh did not finish {method} {path} within {timeout:g}s on "
                                  f"node {host.node}{unknown}", retryable=method == "GET")
        return exc

    async def _failed_task_upid(self, path: str, message: str, started_wall: float, left: float) -> str | None:
        """The UPID of the task this call started, when pvesh failed because the task failed."""
        node = _NODE_PATH.match(path)
        if node is None or left <= 0:
            return None
        params: dict[str, Any] = {"source": "archive", "errors": 1, "limit": FAILED_TASK_LOOKUP}
        guest = _GUEST_PATH.match(path)
        if guest is not None:
            params["vmid"] = int(guest.group(1))
        try:
            tasks = await self.request("GET", f"/nodes/{node.group(1)}/tasks", params,
                                       timeout=min(left, self._config.api.timeout))
        except ServiceFailure:
            return None
        candidates = [
            task for task in tasks if is_object(task)
            and clean_message(str(task.get("status", ""))) == message
            and _number(task.get("starttime")) >= started_wall - FAILED_TASK_CLOCK_SLACK
            and isinstance(task.get("upid"), str)
        ] if is_array(tasks) else []
        if not candidates:
            return None
        newest = max(candidates, key=lambda task: _number(task.get("starttime")))
        log.info("pvesh task failed", extra={"cluster": self.cluster, "upid": newest["upid"]})
        return str(newest["upid"])


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
