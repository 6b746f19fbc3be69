"""Request handlers: decode the envelope's arguments, run the operation for the subject's cluster, encode."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts import tools_backup as b
from proxmox_mcp_contracts import tools_extra as x
from proxmox_mcp_contracts.envelope import RequestEnvelope, Scope
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure
from proxmox_mcp_contracts.settings import ClusterConfig, ProxmoxConfig
from proxmox_mcp_contracts.subjects import ApiOp, api_subject, endpoint_name
from proxmox_mcp_runtime.validation_errors import describe_validation_error
from proxmox_mcp_runtime.worker import Endpoint
from pydantic import BaseModel, ValidationError

from proxmox_mcp_api_worker import (
    ops_backup_tasks,
    ops_backups,
    ops_guestnet,
    ops_inventory,
    ops_snapshots,
    ops_tasks,
)
from proxmox_mcp_api_worker.backend import PveBackend
from proxmox_mcp_api_worker.backends import backend_pool, build_backend
from proxmox_mcp_api_worker.guest_exec import guest_exec
from proxmox_mcp_api_worker.metrics import set_api_certificate_not_after
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations
from proxmox_mcp_api_worker.settings import ApiWorkerSettings
from proxmox_mcp_api_worker.tls import certificate_not_after

log = logging.getLogger(__name__)

SERVED_OPS = tuple(ApiOp)
"""Every API operation, for every served cluster."""
CERT_CHECK_INTERVAL = 300.0
"""Seconds between reads of the API certificate for the expiry metric."""

Operation = Callable[[ClusterOperations, Any, Budget], Awaitable[BaseModel]]


async def _probe(ops: ClusterOperations, _args: None, budget: Budget) -> BaseModel:
    return await ops.probe(budget)


async def _needs_caller(ops: ClusterOperations, _args: Any, budget: Budget) -> BaseModel:
    raise AssertionError("guest_exec is dispatched with the caller by ApiWorker")


OPERATIONS: dict[ApiOp, tuple[type[BaseModel] | None, Operation]] = {
    ApiOp.LIST_VMS: (t.ListVmsArgs, ClusterOperations.list_vms),
    ApiOp.VM_STATUS: (t.VmStatusArgs, ClusterOperations.vm_status),
    ApiOp.VM_ACTION: (t.VmActionArgs, ClusterOperations.vm_action),
    ApiOp.TASK_STATUS: (t.TaskStatusArgs, ClusterOperations.task_status),
    ApiOp.NODE_STATUS: (t.NodeStatusArgs, ClusterOperations.node_status),
    ApiOp.PROXMOX_API: (t.ProxmoxApiArgs, ClusterOperations.proxmox_api),
    ApiOp.PROBE: (None, _probe),
    ApiOp.SNAPSHOT_LIST: (x.ListSnapshotsArgs, ops_snapshots.snapshot_list),
    ApiOp.SNAPSHOT_CREATE: (x.SnapshotCreateArgs, ops_snapshots.snapshot_create),
    ApiOp.SNAPSHOT_DELETE: (x.SnapshotDeleteArgs, ops_snapshots.snapshot_delete),
    ApiOp.SNAPSHOT_ROLLBACK: (x.SnapshotRollbackArgs, ops_snapshots.snapshot_rollback),
    ApiOp.STORAGE_LIST: (x.ListStorageArgs, ops_inventory.storage_list),
    ApiOp.STORAGE_CONTENT: (x.StorageContentArgs, ops_inventory.storage_content),
    ApiOp.TASK_LIST: (x.ListTasksArgs, ops_tasks.task_list),
    ApiOp.TASK_LOG: (x.TaskLogArgs, ops_tasks.task_log),
    ApiOp.CLUSTER_STATUS: (x.ClusterStatusArgs, ops_inventory.cluster_status),
    ApiOp.CLUSTER_RESOURCES: (x.ClusterResourcesArgs, ops_inventory.cluster_resources),
    ApiOp.NODE_NETWORK: (x.NodeNetworkArgs, ops_inventory.node_network),
    ApiOp.GUEST_EXEC: (x.GuestExecArgs, _needs_caller),
    ApiOp.BACKUP_LIST: (b.ListBackupsArgs, ops_backups.backup_list),
    ApiOp.BACKUP_LAST: (b.LastBackupsArgs, ops_backups.backup_last),
    ApiOp.BACKUP_JOBS: (b.BackupJobsArgs, ops_backups.backup_jobs),
    ApiOp.BACKUP_START: (b.BackupGuestArgs, ops_backup_tasks.backup_start),
    ApiOp.BACKUP_RESTORE: (b.RestoreBackupArgs, ops_backup_tasks.backup_restore),
    ApiOp.GUEST_NETWORK: (b.GuestNetworkArgs, ops_guestnet.guest_network),
}


def check_argument_scope(args: BaseModel | None, caller_scope: Scope) -> None:
    """Arguments that set their own scope (backup_guest's modes and pruning) are re-checked here with the rule
    the gateway applied (the args model's required_scope), so a request sent straight to NATS gets no more."""
    needed = args.required_scope() if isinstance(args, b.BackupGuestArgs) else None
    if needed is not None and not caller_scope.includes(needed):
        raise ServiceFailure(ErrorCode.PERMISSION_DENIED, f"these arguments need scope {needed.value}; the caller "
                             f"has {caller_scope.value}")


def argument_error(op: ApiOp, exc: ValidationError) -> ServiceFailure:
    return ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"invalid {op.value} arguments: {describe_validation_error(exc)}")


class ApiWorker:
    """One backend per served cluster; endpoints are bound to their cluster through the subject."""

    def __init__(self, config: ProxmoxConfig, settings: ApiWorkerSettings) -> None:
        wanted = settings.cluster_names()
        self.settings = settings
        self.clusters: dict[str, ClusterConfig] = {
            c.name: c for c in config.clusters if wanted is None or c.name in wanted
        }
        self.backends: dict[str, PveBackend] = {}
        self.operations: dict[str, ClusterOperations] = {}
        self.problems: list[str] = []
        self._cert_checked: dict[str, float] = {}
        for name, cluster in self.clusters.items():
            backend, problem = build_backend(cluster, settings)
            if problem:
                self.problems.append(f"cluster {name}: {problem}")
            self.backends[name] = backend
            self.operations[name] = ClusterOperations(
                name, backend, ceiling=cluster.api.timeout, margin=settings.deadline_margin,
                node_concurrency=settings.node_concurrency, task_log_page=settings.task_log_page,
                task_log_max_pages=settings.task_log_max_pages,
            )

    @property
    def insecure_clusters(self) -> list[str]:
        return [name for name, backend in self.backends.items() if backend.insecure_tls]

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(name=endpoint_name(name, op), subject=api_subject(name, op), handler=self._handler(name, op),
                     op=op.value)
            for name in self.clusters
            for op in SERVED_OPS
        ]

    def _handler(self, cluster: str, op: ApiOp) -> Callable[[RequestEnvelope], Awaitable[dict[str, Any]]]:
        args_model, operation = OPERATIONS[op]

        async def handle(envelope: RequestEnvelope) -> dict[str, Any]:
            if envelope.cluster != cluster:
                raise ServiceFailure(ErrorCode.INVALID_ARGUMENT, f"the request names cluster {envelope.cluster!r} "
                                     f"but was sent to cluster {cluster!r}'s subject")
            envelope.require_time_left()
            args: BaseModel | None = None
            if args_model is not None:
                try:
                    args = args_model.model_validate(envelope.args)
                except ValidationError as exc:
                    raise argument_error(op, exc) from None
            check_argument_scope(args, envelope.caller.scope)
            ops = self.operations[cluster]
            if op is ApiOp.GUEST_EXEC:
                assert isinstance(args, x.GuestExecArgs)
                result = await guest_exec(
                    ops, args, ops.budget(envelope.deadline), envelope.caller,
                    profiles=self.settings.extra_profiles, max_output=self.clusters[cluster].ssh.max_output_bytes,
                    max_reply=self.settings.max_reply_bytes, poll=self.settings.guest_exec_poll,
                )
                log.info("guest command finished", extra={
                    "cluster": cluster, "vmid": result.vmid, "node": result.node, "exit_code": result.exit_code,
                    "truncated": result.truncated, "duration_ms": result.duration_ms,
                    "request_id": envelope.request_id, "token_id": envelope.caller.token_id})
                return self._fit(op, result)
            result = await operation(ops, args, ops.budget(envelope.deadline))
            if isinstance(result, x.TaskStartResult):
                log.info("task started", extra={
                    "cluster": cluster, "op": op.value, "vmid": result.vmid, "node": result.node,
                    "upid": result.upid, "request_id": envelope.request_id, "token_id": envelope.caller.token_id})
            if op is ApiOp.VM_ACTION:
                assert isinstance(result, t.VmActionResult)
                log.info("vm action started", extra={
                    "cluster": cluster, "vmid": result.vmid, "node": result.node, "action": result.action,
                    "upid": result.upid, "request_id": envelope.request_id, "token_id": envelope.caller.token_id})
            elif op is ApiOp.PROXMOX_API and isinstance(args, t.ProxmoxApiArgs) and args.method != "GET":
                log.info("proxmox api write", extra={
                    "cluster": cluster, "method": args.method, "path": getattr(result, "path", args.path),
                    "request_id": envelope.request_id, "token_id": envelope.caller.token_id})
            elif op is ApiOp.PROBE:
                await self._maybe_check_certificate(cluster)
            return self._fit(op, result)

        return handle

    def _fit(self, op: ApiOp, result: BaseModel) -> dict[str, Any]:
        body = result.model_dump(mode="json")
        size = len(result.model_dump_json())
        if size + 1024 > self.settings.max_reply_bytes:
            hint = "narrow it with parameters or a more specific path" if op is ApiOp.PROXMOX_API else \
                "narrow it with filters"
            raise ServiceFailure(ErrorCode.UPSTREAM_ERROR, f"the {op.value} result is {size} bytes, more than a "
                                 f"reply can carry ({self.settings.max_reply_bytes}); {hint}")
        return body

    async def _maybe_check_certificate(self, cluster: str) -> None:
        """The certificate's expiry for the metric: read at most every few minutes, on health probes."""
        now = time.monotonic()
        if now - self._cert_checked.get(cluster, -CERT_CHECK_INTERVAL) < CERT_CHECK_INTERVAL:
            return
        self._cert_checked[cluster] = now
        try:
            der = await self.backends[cluster].certificate(timeout=2.0)
            if der:
                set_api_certificate_not_after(cluster, certificate_not_after(der))
        except Exception as exc:  # a metric must never fail a probe
            log.debug("certificate read failed", extra={"cluster": cluster, "error_type": type(exc).__name__})

    def check_configuration(self) -> list[str]:
        """SSH credential problems of the ssh-tunnel and pvesh clusters (loads keys: blocking), for the start-up
        log."""
        problems: list[str] = []
        for name, backend in self.backends.items():
            pool = backend_pool(backend)
            failure = pool.check_credentials() if pool is not None else None
            if failure is not None:
                problems.append(f"cluster {name}: {failure.info.message}")
        return problems

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.backends.values()), return_exceptions=True)
