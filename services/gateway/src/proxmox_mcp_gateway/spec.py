"""What the gateway knows about one tool: schema models, worker operation, scope, annotations, task handling."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.envelope import Scope
from proxmox_mcp_contracts.subjects import ApiOp, SshOp, WorkerKind
from pydantic import BaseModel


@dataclass(frozen=True)
class Annotations:
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = True


class TaskMode(StrEnum):
    NONE = "none"
    STARTS = "starts"
    """The worker starts a Proxmox task and returns its UPID at once; with wait=true the gateway follows it."""
    FOLLOWS = "follows"
    """The gateway follows an existing task (wait_task); no worker operation of its own."""


DestructiveTest = Callable[[BaseModel], bool]


def always(_: BaseModel) -> bool:
    return True


def action_in(actions: frozenset[str]) -> DestructiveTest:
    def test(args: BaseModel) -> bool:
        return getattr(args, "action", None) in actions

    return test


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    args_model: type[BaseModel]
    result_model: type[BaseModel]
    kind: WorkerKind
    op: SshOp | ApiOp
    scope: Scope
    annotations: Annotations
    render: Callable[[dict[str, Any]], str]
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Worker arguments this tool fixes (the container tools send type=lxc)."""
    task: TaskMode = TaskMode.NONE
    destructive_when: DestructiveTest | None = None
    """Which calls need confirmation. Command tools and proxmox_api are judged by their policies instead."""
    scope_when: Callable[[BaseModel], Scope] | None = None
    """The scope a call needs when its arguments raise it above `scope` (backup_guest's modes and pruning)."""

    def input_schema(self) -> dict[str, Any]:
        return _schema(self.args_model)

    def output_schema(self) -> dict[str, Any]:
        return _schema(self.result_model)

    def required_scope(self, args: BaseModel) -> Scope:
        if isinstance(args, t.ProxmoxApiArgs) and args.method != "GET":
            return Scope.ADMIN
        if self.scope_when is not None:
            return self.scope_when(args)
        return self.scope

    def idempotent_call(self, args: BaseModel) -> bool:
        if isinstance(args, t.ProxmoxApiArgs):
            return args.method == "GET"
        return self.annotations.idempotent

    def destructive_call(self, args: BaseModel) -> bool:
        return self.destructive_when is not None and self.destructive_when(args)


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    # Generated once per model: tools/list (which the 2026-era client asks for around calls) must stay cheap.
    schema = model.model_json_schema()
    schema.setdefault("type", "object")
    schema.pop("title", None)
    return schema
