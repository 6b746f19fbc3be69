"""NATS subject names and micro-service identities. Nothing else spells a subject string."""

from __future__ import annotations

import re
from enum import StrEnum

SUBJECT_PREFIX = "pmcp.v1"
QUEUE_GROUP = "pmcp"
CLUSTER_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_CLUSTER_NAME = re.compile(CLUSTER_NAME_PATTERN)

SSH_SERVICE_NAME = "proxmox-mcp-ssh-worker"
API_SERVICE_NAME = "proxmox-mcp-api-worker"

# The micro framework's error headers (nats.micro.request.ERROR_HEADER / ERROR_CODE_HEADER).
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"


class WorkerKind(StrEnum):
    SSH = "ssh"
    API = "api"


class SshOp(StrEnum):
    EXEC = "exec"
    PROBE = "probe"
    CONTAINER_EXEC = "container_exec"


class ApiOp(StrEnum):
    LIST_VMS = "list_vms"
    VM_STATUS = "vm_status"
    VM_ACTION = "vm_action"
    NODE_STATUS = "node_status"
    PROXMOX_API = "proxmox_api"
    TASK_STATUS = "task_status"
    PROBE = "probe"
    SNAPSHOT_LIST = "snapshot_list"
    SNAPSHOT_CREATE = "snapshot_create"
    SNAPSHOT_DELETE = "snapshot_delete"
    SNAPSHOT_ROLLBACK = "snapshot_rollback"
    STORAGE_LIST = "storage_list"
    STORAGE_CONTENT = "storage_content"
    TASK_LIST = "task_list"
    TASK_LOG = "task_log"
    CLUSTER_STATUS = "cluster_status"
    CLUSTER_RESOURCES = "cluster_resources"
    NODE_NETWORK = "node_network"
    GUEST_EXEC = "guest_exec"
    BACKUP_LIST = "backup_list"
    BACKUP_LAST = "backup_last"
    BACKUP_JOBS = "backup_jobs"
    BACKUP_START = "backup_start"
    BACKUP_RESTORE = "backup_restore"
    GUEST_NETWORK = "guest_network"


HEARTBEAT_PREFIX = "pmcp.hb"


CONTROL_FREEZE_SUBJECT = "pmcp.control.freeze"
"""Local mode: the gateway publishes the freeze switch's state (FreezeBroadcast) here every interval and on change."""
CONTROL_FREEZE_REQUEST_SUBJECT = "pmcp.control.freeze.get"
"""Local mode: a worker asks the gateway for the freeze switch's state here (the reply is a FreezeBroadcast)."""


def heartbeat_subject(gateway_id: str, request_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}.{gateway_id}.{request_id}"


def heartbeat_wildcard(gateway_id: str) -> str:
    return f"{HEARTBEAT_PREFIX}.{gateway_id}.*"


def validate_cluster_name(cluster: str) -> str:
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}: use lowercase letters, digits, '-' and '_'")
    return cluster


def ssh_subject(cluster: str, op: SshOp) -> str:
    return f"{SUBJECT_PREFIX}.{validate_cluster_name(cluster)}.{WorkerKind.SSH}.{op}"


def api_subject(cluster: str, op: ApiOp) -> str:
    return f"{SUBJECT_PREFIX}.{validate_cluster_name(cluster)}.{WorkerKind.API}.{op}"


def service_name(kind: WorkerKind) -> str:
    return SSH_SERVICE_NAME if kind is WorkerKind.SSH else API_SERVICE_NAME


def endpoint_name(cluster: str, op: StrEnum) -> str:
    """A micro endpoint name (only [A-Za-z0-9_-]) that is unique per cluster and op."""
    return f"{validate_cluster_name(cluster)}-{op}"
