"""Multi-node answers with some nodes down: ask every reachable node within the call's budget, keep what they
gave, and name each node that did not answer with the reason. Only when no node answers does the call fail
(unavailable)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

log = logging.getLogger(__name__)

T = TypeVar("T")

OFFLINE = "offline"
OFFLINE_REASON = "the cluster has lost contact with this node, so nothing it holds can be read"


def offline(node: str) -> t.UnreachableNode:
    return t.UnreachableNode(node=node, code=OFFLINE, reason=OFFLINE_REASON)


def failed(node: str, exc: ServiceFailure) -> t.UnreachableNode:
    return t.UnreachableNode(node=node, code=exc.code.value, reason=exc.info.message)


def split_online(entries: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[t.UnreachableNode]]:
    """(online node names, the others as unreachable)."""
    online: list[str] = []
    down: list[t.UnreachableNode] = []
    for entry in entries:
        name = str(entry["node"])
        if entry.get("status") == "online":
            online.append(name)
        else:
            down.append(offline(name))
    return online, down


async def per_node(
    nodes: Iterable[str], ask: Callable[[str], Awaitable[T]], *, concurrency: int, cluster: str,
) -> tuple[dict[str, T], list[t.UnreachableNode]]:
    """ask(node) for every node, a few at a time: ({node: answer}, unreachable). A node that fails or runs out of
    time (each request is bounded by the call's budget) is reported, never raised, so one slow or broken node
    cannot take the others' answers with it."""
    gate = asyncio.Semaphore(concurrency)

    async def one(node: str) -> T | ServiceFailure:
        async with gate:
            try:
                return await ask(node)
            except ServiceFailure as exc:
                log.warning("node did not answer", extra={"cluster": cluster, "code": exc.code.value})
                return exc

    names = list(nodes)
    results = await asyncio.gather(*(one(node) for node in names))
    answers: dict[str, T] = {}
    unreachable: list[t.UnreachableNode] = []
    for node, result in zip(names, results, strict=True):
        if isinstance(result, ServiceFailure):
            unreachable.append(failed(node, result))
        else:
            answers[node] = result
    return answers, unreachable


def require_some(answered: int, unreachable: list[t.UnreachableNode], cluster: str) -> None:
    """All nodes down: the call fails (unavailable), naming each node and why."""
    if answered == 0 and unreachable:
        reasons = "; ".join(f"{u.node}: {u.reason}" for u in unreachable)
        raise ServiceFailure(ErrorCode.UNAVAILABLE, f"no node of cluster {cluster} answered ({reasons})",
                             retryable=True, details={"unreachable": [u.node for u in unreachable]})


def partial_fields(unreachable: list[t.UnreachableNode]) -> dict[str, Any]:
    """The PartialResult fields, sorted by node."""
    ordered = sorted(unreachable, key=lambda u: u.node)
    return {"unreachable": ordered, "unreachable_nodes": [u.node for u in ordered]}


def down_nodes_in(resources: Iterable[Mapping[str, Any]]) -> list[t.UnreachableNode]:
    """The offline nodes of a /cluster/resources listing (its `node` entries)."""
    return [offline(str(e["node"])) for e in resources
            if e.get("type") == "node" and e.get("node") and e.get("status") != "online"]
