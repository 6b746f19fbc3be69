"""The ssh-worker's request handlers: execute a vetted command on a node, probe the SSH connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from proxmox_mcp_contracts.envelope import RequestEnvelope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig, HostConfig, ProxmoxConfig
from proxmox_mcp_contracts.subjects import SshOp, endpoint_name, ssh_subject
from proxmox_mcp_contracts.tools import ExecResult, ExecuteCommandArgs
from proxmox_mcp_contracts.tools_extra import ContainerExecArgs, GuestExecResult
from proxmox_mcp_runtime.command_policy import authorize_command
from proxmox_mcp_runtime.command_reply import fit_reply
from proxmox_mcp_runtime.ssh import CommandOutput, SshEvent, SshPool
from proxmox_mcp_runtime.validation_errors import describe_validation_error
from proxmox_mcp_runtime.worker import Endpoint
from pydantic import ValidationError

from proxmox_mcp_ssh_worker.container_exec import LOOKUP_TIMEOUT, locate_container, pct_exec_argv
from proxmox_mcp_ssh_worker.settings import SshWorkerSettings

log = logging.getLogger(__name__)

PoolEvents = Callable[[str, SshPool, SshEvent], None]
"""Called with (cluster name, pool, event) for metrics."""
CommandArgs = TypeVar("CommandArgs", ExecuteCommandArgs, ContainerExecArgs)
PlacedArgs = TypeVar("PlacedArgs", ExecuteCommandArgs, ContainerExecArgs, contravariant=True)


@dataclass(frozen=True)
class Placement:
    """Where an approved command runs and the argv sent there."""

    host: HostConfig
    argv: list[str]
    log_fields: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Placer(Protocol[PlacedArgs]):
    """(cluster, pool, arguments, approved argv, envelope) -> where and what to run."""

    def __call__(self, cluster: ClusterConfig, pool: SshPool, args: PlacedArgs, argv: list[str],
                 envelope: RequestEnvelope, /) -> Awaitable[Placement]: ...


class SshWorker:
    """One pool per served cluster; handlers look the cluster up from the request envelope."""

    def __init__(
        self,
        config: ProxmoxConfig,
        settings: SshWorkerSettings,
        *,
        on_pool_event: PoolEvents | None = None,
    ) -> None:
        wanted = settings.cluster_names()
        self.settings = settings
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
        """The approved argv on the node's host (the cluster's first host when no node is given)."""
        args, host, output = await self._run_vetted(envelope, ExecuteCommandArgs, "execute_command", self._on_node)
        result = ExecResult(node=host.node, command=args.command, **_output_fields(output))
        return fit_reply(result, self.settings.max_reply_bytes).model_dump()

    async def container_exec(self, envelope: RequestEnvelope) -> dict[str, Any]:
        """`pct exec VMID -- argv` on the container's node; argv is the policy-approved inner command."""
        args, host, output = await self._run_vetted(envelope, ContainerExecArgs, "container_exec",
                                                    self._in_container)
        result = GuestExecResult(vmid=args.vmid, node=host.node, type="lxc", command=args.command,
                                 **_output_fields(output))
        return fit_reply(result, self.settings.max_reply_bytes).model_dump()

    async def _run_vetted(self, envelope: RequestEnvelope, model: type[CommandArgs], tool: str,
                          place: Placer[CommandArgs]) -> tuple[CommandArgs, HostConfig, CommandOutput]:
        """Validate the arguments, authorize the command (before any SSH activity), place it, run it, log it."""
        cluster, pool = self._cluster(envelope.cluster)
        try:
            args = model.model_validate(envelope.args)
        except ValidationError as exc:
            raise ServiceFailure(ErrorCode.INVALID_ARGUMENT,
                                 f"invalid {tool} arguments: {describe_validation_error(exc)}") from None
        try:
            decision = authorize_command(args.command, envelope.caller, extra_profiles=self.settings.extra_profiles)
        except ServiceFailure:
            if self._on_pool_event is not None:
                self._on_pool_event(cluster.name, pool, SshEvent("command", args.node or "", "denied"))
            raise
        placement = await place(cluster, pool, args, decision.argv, envelope)
        timeout = self._command_timeout(args.timeout, cluster, envelope)
        output = await pool.run(placement.host, placement.argv, timeout=timeout,
                                max_output=cluster.ssh.max_output_bytes)
        log.info(
            f"{tool} finished",
            extra={"cluster": cluster.name, "node": placement.host.node, **placement.log_fields,
                   "program": decision.argv[0], "exit_code": output.exit_code, "truncated": output.truncated,
                   "duration_ms": round(output.duration_s * 1000, 1), "request_id": envelope.request_id,
                   "token_id": envelope.caller.token_id},
        )
        return args, placement.host, output

    async def _on_node(self, cluster: ClusterConfig, _pool: SshPool, args: ExecuteCommandArgs, argv: list[str],
                       _envelope: RequestEnvelope) -> Placement:
        return Placement(host=self._host(cluster, args.node), argv=argv)

    async def _in_container(self, cluster: ClusterConfig, pool: SshPool, args: ContainerExecArgs, argv: list[str],
                            envelope: RequestEnvelope) -> Placement:
        lookup_host = self._host(cluster, args.node)
        lookup_timeout = self._command_timeout(LOOKUP_TIMEOUT, cluster, envelope)
        container = await locate_container(pool, cluster, lookup_host, args.vmid, args.node, lookup_timeout)
        return Placement(host=self._host(cluster, container.node), argv=pct_exec_argv(args.vmid, argv),
                         log_fields={"vmid": args.vmid})

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


def _output_fields(output: CommandOutput) -> dict[str, Any]:
    return {"exit_code": output.exit_code, "stdout": output.stdout.decode("utf-8", errors="replace"),
            "stderr": output.stderr.decode("utf-8", errors="replace"), "truncated": output.truncated,
            "duration_ms": round(output.duration_s * 1000, 3)}


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
