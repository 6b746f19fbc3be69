"""The ssh-worker's request handlers: execute a vetted command on a node, probe the SSH connections."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from proxmox_mcp_contracts.envelope import RequestEnvelope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_contracts.subjects import SshOp, endpoint_name, ssh_subject
from proxmox_mcp_contracts.tools import ExecResult, ExecuteCommandArgs
from proxmox_mcp_contracts.tools_extra import ContainerExecArgs, GuestExecResult
from proxmox_mcp_runtime.ssh import SshEvent, SshPool
from proxmox_mcp_runtime.worker import Endpoint
from pydantic import ValidationError

from proxmox_mcp_ssh_worker.container_exec import LOOKUP_TIMEOUT, locate_container, pct_exec_argv
from proxmox_mcp_ssh_worker.policy import CommandAuthorizer
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings

log = logging.getLogger(__name__)

PoolEvents = Callable[[str, SshPool, SshEvent], None]
"""Called with (cluster name, pool, event) for metrics."""


def _argument_error(exc: ValidationError, tool: str = "execute_command") -> ServiceFailure:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}" for err in exc.errors()
    )
    return ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"invalid {tool} arguments: {problems}")


class SshWorker:
    """One pool per served cluster; handlers look the cluster up from the request envelope."""

    def __init__(
        self,
        config: ProxmoxConfig,
        settings: SshWorkerSettings,
        authorize: CommandAuthorizer,
        *,
        on_pool_event: PoolEvents | None = None,
    ) -> None:
        wanted = settings.cluster_names()
        self.settings = settings
        self.authorize = authorize
        self._on_pool_event = on_pool_event
        self.clusters: dict[str, ClusterConfig] = {
            c.name: c for c in config.clusters if wanted is None or c.name in wanted
        }
        self.pools: dict[str, SshPool] = {
            name: SshPool(
                cluster.ssh,
                on_event=self._forwarder(name, on_pool_event),
                max_threads=settings.threads,
                max_sessions_per_host=settings.max_sessions_per_host,
                kill_after=settings.kill_after,
                liveness=settings.ssh_liveness(),
            )
            for name, cluster in self.clusters.items()
        }

    def _forwarder(self, cluster: str, sink: PoolEvents | None) -> Callable[[SshEvent], None] | None:
        if sink is None:
            return None

        def forward(event: SshEvent) -> None:
            sink(cluster, self.pools[cluster], event)

        return forward

    def endpoints(self) -> list[Endpoint]:
        endpoints: list[Endpoint] = []
        for name in self.clusters:
            endpoints.append(Endpoint(name=endpoint_name(name, SshOp.EXEC), subject=ssh_subject(name, SshOp.EXEC),
                                      handler=self.execute, op=SshOp.EXEC.value))
            endpoints.append(Endpoint(name=endpoint_name(name, SshOp.PROBE), subject=ssh_subject(name, SshOp.PROBE),
                                      handler=self.probe, op=SshOp.PROBE.value))
            endpoints.append(Endpoint(name=endpoint_name(name, SshOp.CONTAINER_EXEC),
                                      subject=ssh_subject(name, SshOp.CONTAINER_EXEC), handler=self.container_exec,
                                      op=SshOp.CONTAINER_EXEC.value))
        return endpoints

    def check_configuration(self) -> list[str]:
        """Problems a call would hit (key permissions, passphrase, no hosts), for the start-up log."""
        problems: list[str] = []
        for name, cluster in self.clusters.items():
            if not cluster.hosts:
                problems.append(f"cluster {name}: no SSH hosts configured")
                continue
            failure = self.pools[name].check_credentials()
            if failure is not None:
                problems.append(f"cluster {name}: {failure.info.message}")
        return problems

    def _cluster(self, name: str) -> tuple[ClusterConfig, SshPool]:
        cluster = self.clusters.get(name)
        if cluster is None:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"this ssh-worker does not serve cluster {name!r}")
        return cluster, self.pools[name]

    @staticmethod
    def _host(cluster: ClusterConfig, node: str | None) -> HostConfig:
        if not cluster.hosts:
            raise ServiceFailure(ErrorCode.UNAVAILABLE, f"cluster {cluster.name} has no SSH hosts configured")
        host = cluster.host_for(node)
        if host is None:
            known = ", ".join(h.node for h in cluster.hosts)
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"unknown node {node!r}; known nodes: {known}")
        return host

    def _command_timeout(self, requested: int, cluster: ClusterConfig, envelope: RequestEnvelope) -> float:
        """The requested timeout, capped by the cluster's maximum and by the time the call has left."""
        left = envelope.require_time_left() - self.settings.deadline_margin
        timeout = min(float(requested), float(cluster.ssh.max_command_timeout), left)
        if timeout <= 0:
            raise ServiceFailure(ErrorCode.TIMEOUT, "no time left before the call's deadline to run the command")
        return timeout

    async def execute(self, envelope: RequestEnvelope) -> dict[str, Any]:
        cluster, pool = self._cluster(envelope.cluster)
        try:
            args = ExecuteCommandArgs.model_validate(envelope.args)
        except ValidationError as exc:
            raise _argument_error(exc) from None
        try:
            argv = self.authorize(args.command, envelope.caller)  # before any SSH activity
        except ServiceFailure:
            if self._on_pool_event is not None:
                self._on_pool_event(cluster.name, pool, SshEvent("command", args.node or "", "denied"))
            raise
        host = self._host(cluster, args.node)
        timeout = self._command_timeout(args.timeout, cluster, envelope)
        output = await pool.run(host, argv, timeout=timeout, max_output=cluster.ssh.max_output_bytes)
        log.info(
            "command finished",
            extra={"cluster": cluster.name, "node": host.node, "program": argv[0], "exit_code": output.exit_code,
                   "truncated": output.truncated, "duration_ms": round(output.duration_s * 1000, 1),
                   "request_id": envelope.request_id, "token_id": envelope.caller.token_id},
        )
        result = ExecResult(
            node=host.node,
            command=args.command,
            exit_code=output.exit_code,
            stdout=output.stdout.decode("utf-8", errors="replace"),
            stderr=output.stderr.decode("utf-8", errors="replace"),
            truncated=output.truncated,
            duration_ms=round(output.duration_s * 1000, 3),
        )
        return fit_reply(result, self.settings.max_reply_bytes).model_dump()

    async def container_exec(self, envelope: RequestEnvelope) -> dict[str, Any]:
        """`pct exec VMID -- argv` on the container's node; argv is the policy-approved inner command."""
        cluster, pool = self._cluster(envelope.cluster)
        try:
            args = ContainerExecArgs.model_validate(envelope.args)
        except ValidationError as exc:
            raise _argument_error(exc, "container_exec") from None
        try:
            inner = self.authorize(args.command, envelope.caller)  # before any SSH activity
        except ServiceFailure:
            if self._on_pool_event is not None:
                self._on_pool_event(cluster.name, pool, SshEvent("command", args.node or "", "denied"))
            raise
        lookup_host = self._host(cluster, args.node)
        lookup_timeout = self._command_timeout(LOOKUP_TIMEOUT, cluster, envelope)
        container = await locate_container(pool, cluster, lookup_host, args.vmid, args.node, lookup_timeout)
        host = self._host(cluster, container.node)
        timeout = self._command_timeout(args.timeout, cluster, envelope)
        output = await pool.run(host, pct_exec_argv(args.vmid, inner), timeout=timeout,
                                max_output=cluster.ssh.max_output_bytes)
        log.info(
            "container command finished",
            extra={"cluster": cluster.name, "node": host.node, "vmid": args.vmid, "program": inner[0],
                   "exit_code": output.exit_code, "truncated": output.truncated,
                   "duration_ms": round(output.duration_s * 1000, 1), "request_id": envelope.request_id,
                   "token_id": envelope.caller.token_id},
        )
        result = GuestExecResult(
            vmid=args.vmid, node=host.node, type="lxc", command=args.command, exit_code=output.exit_code,
            stdout=output.stdout.decode("utf-8", errors="replace"),
            stderr=output.stderr.decode("utf-8", errors="replace"),
            truncated=output.truncated, duration_ms=round(output.duration_s * 1000, 3),
        )
        return fit_reply(result, self.settings.max_reply_bytes).model_dump()

    async def probe(self, envelope: RequestEnvelope) -> dict[str, Any]:
        """{ok, latency_ms, detail, nodes}: every host of the cluster (or args.node) connects and opens a channel."""
        cluster, pool = self._cluster(envelope.cluster)
        node = envelope.args.get("node")
        if not cluster.hosts:
            return {"ok": False, "latency_ms": None, "detail": "no SSH hosts configured", "nodes": {}}
        hosts = [self._host(cluster, str(node))] if node else _distinct_hosts(cluster, pool)
        results = await asyncio.gather(*(pool.probe(h) for h in hosts), return_exceptions=True)
        nodes: dict[str, Any] = {}
        problems: list[str] = []
        latencies: list[float] = []
        for host, result in zip(hosts, results, strict=True):
            if isinstance(result, BaseException):
                reason = _probe_reason(result)
                problems.append(f"{host.node}: {reason}")
                nodes[host.node] = {"ok": False, "error": reason}
            else:
                latencies.append(result * 1000)
                nodes[host.node] = {"ok": True, "latency_ms": round(result * 1000, 3)}
        return {
            "ok": not problems,
            "latency_ms": round(max(latencies), 3) if latencies else None,
            "detail": "; ".join(problems) or None,
            "nodes": nodes,
        }

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()), return_exceptions=True)


_ENVELOPE_ALLOWANCE = 1024
"""Room for the reply envelope around the result (request id, keys)."""


CommandResult = TypeVar("CommandResult", ExecResult, GuestExecResult)


def fit_reply(result: CommandResult, limit: int) -> CommandResult:
    """Cut stdout/stderr so the JSON reply stays under limit bytes (escaping can make text grow up to 6x)."""
    for _ in range(8):
        size = len(result.model_dump_json()) + _ENVELOPE_ALLOWANCE
        if size <= limit:
            return result
        text = len(result.stdout) + len(result.stderr)
        keep = max(0.0, 1 - (size - limit) / max(len(json.dumps(result.stdout + result.stderr)), 1)) * 0.98
        result = result.model_copy(update={
            "stdout": result.stdout[: int(len(result.stdout) * keep)],
            "stderr": result.stderr[: int(len(result.stderr) * keep)],
            "truncated": True,
        })
        if text == 0:
            break
    return result.model_copy(update={"stdout": "", "stderr": "", "truncated": True})


def _distinct_hosts(cluster: ClusterConfig, pool: SshPool) -> list[HostConfig]:
    """One host per connection: nodes that share an address and port share a pooled connection."""
    seen: set[tuple[str, int]] = set()
    hosts: list[HostConfig] = []
    for host in cluster.hosts:
        key = (host.address, host.port or pool.settings.port)
        if key not in seen:
            seen.add(key)
            hosts.append(host)
    return hosts


def _probe_reason(error: BaseException) -> str:
    """Short and free of paths (it can end up in /health): details stay in the worker's log."""
    if isinstance(error, ServiceFailure):
        if error.info.message.startswith("SSH is misconfigured"):
            return f"{error.code.value}: SSH is misconfigured (see the ssh-worker log)"
        return error.info.as_text()
    log.warning("probe failed", extra={"error_type": type(error).__name__})
    return f"{ErrorCode.INTERNAL.value}: probe failed"
