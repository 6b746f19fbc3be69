"""Operation logic over a scripted backend: which Proxmox requests are made, and how answers are shaped.

The same operations run against the real simulator in tests/integration/api; here the edge cases that the
simulator cannot easily produce (paging long task logs, one broken node among many, odd number types)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from proxmox_mcp_api_worker import operations
from proxmox_mcp_api_worker.backend import Method, Params
from proxmox_mcp_api_worker.operations import Budget, ClusterOperations
from proxmox_mcp_contracts import tools as t
from proxmox_mcp_contracts.errors import ErrorCode, ServiceFailure

Answer = Any | Callable[[Params | None], Any]

RESOURCES = [
    {"id": "lxc/200", "type": "lxc", "vmid": 200, "node": "pve2", "status": "running", "name": "ct", "template": 0,
     "mem": 1.0e8, "maxmem": 536870912, "cpu": 0.01, "maxcpu": 1},
    {"id": "qemu/101", "type": "qemu", "vmid": 101, "node": "pve1", "status": "stopped", "name": "tpl",
     "template": 1},
    {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve1", "status": "running", "name": "web",
     "template": 0, "tags": "a;b"},
    {"id": "storage/pve1/local", "type": "storage", "node": "pve1", "storage": "local"},
]


class ScriptedBackend:
    """Answers by (method, path); records every request; a ServiceFailure answer is raised."""

    def __init__(self, answers: dict[tuple[str, str], Answer]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, dict[str, Any] | None, float]] = []

    @property
    def mode(self) -> str:
        return "direct"

    @property
    def insecure_tls(self) -> bool:
        return False

    @property
    def waits_for_tasks(self) -> bool:
        return False

    async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
        self.requests.append((method, path, dict(params) if params is not None else None, timeout))
        if (method, path) not in self.answers:
            raise ServiceFailure(ErrorCode.NOT_FOUND, f"no such API path or method: {method} {path}")
        answer = self.answers[(method, path)]
        if callable(answer):
            answer = answer(params)
        if isinstance(answer, ServiceFailure):
            raise answer
        return answer

    async def certificate(self, timeout: float) -> bytes | None:
        return None

    async def close(self) -> None:
        return None


def _ops(answers: dict[tuple[str, str], Answer], **kwargs: Any) -> tuple[ClusterOperations, ScriptedBackend]:
    backend = ScriptedBackend({("GET", "/cluster/resources"): RESOURCES, **answers})
    return ClusterOperations("lab", backend, ceiling=5.0, **kwargs), backend


def _budget(seconds: float = 30) -> Budget:
    return Budget(deadline=time.time() + seconds, ceiling=5.0, margin=0.2)


async def test_list_vms_holds_only_guests_sorted_by_vmid_with_real_booleans() -> None:
    ops, backend = _ops({})
    result = await ops.list_vms(t.ListVmsArgs(), _budget())
    assert [vm.vmid for vm in result.vms] == [100, 101, 200] and result.count == 3
    assert [vm.template for vm in result.vms] == [False, True, False]
    assert result.vms[2].mem == 100_000_000 and isinstance(result.vms[2].mem, int)
    assert backend.requests[0][:3] == ("GET", "/cluster/resources", None)  # guests and nodes in one read


@pytest.mark.parametrize("args, vmids", [
    ({"node": "pve1"}, [100, 101]), ({"type": "lxc"}, [200]), ({"status": "stopped"}, [101]),
    ({"node": "pve2", "type": "qemu"}, []),
])
async def test_list_vms_filters_combine(args: dict[str, str], vmids: list[int]) -> None:
    ops, _ = _ops({})
    result = await ops.list_vms(t.ListVmsArgs.model_validate(args), _budget())
    assert [vm.vmid for vm in result.vms] == vmids


async def test_vm_status_of_an_unknown_vmid_is_not_found_before_asking_for_its_status() -> None:
    ops, backend = _ops({})
    with pytest.raises(ServiceFailure) as caught:
        await ops.vm_status(t.VmStatusArgs(vmid=999), _budget())
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert caught.value.info.message.startswith("VM 999 not found in cluster lab")
    assert [path for _, path, _, _ in backend.requests] == ["/cluster/resources"]


async def test_vm_status_finds_a_container_by_id_and_uses_its_type() -> None:
    ops, backend = _ops({("GET", "/nodes/pve2/lxc/200/status/current"):
                         {"status": "running", "type": "lxc", "name": "ct", "cpus": 1, "uptime": 12.0}})
    result = await ops.vm_status(t.VmStatusArgs(vmid=200), _budget())
    assert (result.type, result.node, result.status, result.uptime) == ("lxc", "pve2", "running", 12)
    assert backend.requests[-1][1] == "/nodes/pve2/lxc/200/status/current"


async def test_vm_status_with_the_wrong_node_names_the_right_one() -> None:
    ops, _ = _ops({})
    with pytest.raises(ServiceFailure) as caught:
        await ops.vm_status(t.VmStatusArgs(vmid=100, node="pve2"), _budget())
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert "it is on node pve1" in caught.value.info.message


async def test_restart_is_proxmoxs_reboot_and_the_upid_comes_back_at_once() -> None:
    upid = "UPID:pve1:00001234:00005678:65000000:qmreboot:100:root@pam:"
    ops, backend = _ops({("POST", "/nodes/pve1/qemu/100/status/reboot"): upid})
    result = await ops.vm_action(t.VmActionArgs(vmid=100, action="restart", wait=True), _budget())
    assert (result.upid, result.action, result.waited, result.task) == (upid, "restart", False, None)
    assert backend.requests[-1][:2] == ("POST", "/nodes/pve1/qemu/100/status/reboot")


async def test_containers_have_no_reset() -> None:
    ops, backend = _ops({})
    with pytest.raises(ServiceFailure) as caught:
        await ops.vm_action(t.VmActionArgs(vmid=200, action="reset"), _budget())
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT and "container" in caught.value.info.message
    assert all(method == "GET" for method, *_ in backend.requests)


async def test_an_action_answer_without_a_upid_is_an_upstream_error() -> None:
    ops, _ = _ops({("POST", "/nodes/pve1/qemu/100/status/start"): None})
    with pytest.raises(ServiceFailure) as caught:
        await ops.vm_action(t.VmActionArgs(vmid=100, action="start"), _budget())
    assert caught.value.code is ErrorCode.UPSTREAM_ERROR


UPID = "UPID:pve1:00001234:00005678:65000000:qmstart:100:root@pam:"
TASK = f"/nodes/pve1/tasks/{UPID}"


def _log(total: int) -> Callable[[Params | None], Any]:
    def page(params: Params | None) -> list[dict[str, Any]]:
        assert params is not None
        start, limit = int(params["start"]), int(params["limit"])
        return [{"n": n, "t": f"line {n}"} for n in range(start + 1, min(total, start + limit) + 1)]

    return page


async def test_task_status_parses_the_node_from_the_upid_and_reports_ok() -> None:
    ops, backend = _ops({
        ("GET", f"{TASK}/status"): {"status": "stopped", "exitstatus": "OK", "type": "qmstart", "id": "100",
                                    "user": "root@pam", "starttime": 1_700_000_000},
        ("GET", f"{TASK}/log"): _log(3),
    })
    result = await ops.task_status(t.TaskStatusArgs(upid=UPID, log_lines=2), _budget())
    assert (result.node, result.status, result.exitstatus, result.ok) == ("pve1", "stopped", "OK", True)
    assert result.log_tail == ["line 2", "line 3"]
    assert len(backend.requests) == 2


async def test_a_failed_task_is_not_ok_and_a_running_one_has_no_verdict() -> None:
    failed, _ = _ops({("GET", f"{TASK}/status"): {"status": "stopped", "exitstatus": "VM 100 already running"}})
    running, _ = _ops({("GET", f"{TASK}/status"): {"status": "running"}})
    done = await failed.task_status(t.TaskStatusArgs(upid=UPID, log_lines=0), _budget())
    busy = await running.task_status(t.TaskStatusArgs(upid=UPID, log_lines=0), _budget())
    assert (done.ok, done.exitstatus) == (False, "VM 100 already running")
    assert (busy.ok, busy.exitstatus) == (None, None)


async def test_the_tail_of_a_long_task_log_is_read_page_by_page() -> None:
    ops, backend = _ops({("GET", f"{TASK}/status"): {"status": "running"}, ("GET", f"{TASK}/log"): _log(1234)},
                        task_log_page=500)
    result = await ops.task_status(t.TaskStatusArgs(upid=UPID, log_lines=3), _budget())
    assert result.log_tail == ["line 1232", "line 1233", "line 1234"]
    starts = [params["start"] for _, path, params, _ in backend.requests if path.endswith("/log") and params]
    assert starts == [0, 500, 1000]


async def test_a_task_on_another_node_than_given_is_refused() -> None:
    ops, _ = _ops({})
    with pytest.raises(ServiceFailure) as caught:
        await ops.task_status(t.TaskStatusArgs(upid=UPID, node="pve2"), _budget())
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT and "runs on node pve1" in caught.value.info.message


NODES = [
    {"node": "pve2", "status": "online", "cpu": 0.5, "maxcpu": 8, "mem": 10, "maxmem": 100, "uptime": 50},
    {"node": "pve1", "status": "online", "cpu": 0.1, "maxcpu": 4, "mem": 1, "maxmem": 10, "uptime": 5},
    {"node": "pve3", "status": "offline"},
]
PVE1_STATUS = {"cpu": 0.2, "cpuinfo": {"cpus": 4}, "memory": {"used": 2, "total": 10}, "rootfs": {"used": 3,
               "total": 30}, "uptime": 6, "loadavg": [0.1, "0.2", "0.3"], "pveversion": "pve-manager/8.2.4",
               "kversion": "Linux 6.8"}


async def test_one_node_that_answers_costs_one_request_its_own_status() -> None:
    ops, backend = _ops({("GET", "/nodes"): NODES, ("GET", "/nodes/pve1/status"): PVE1_STATUS})
    (node,) = (await ops.node_status(t.NodeStatusArgs(node="pve1"), _budget())).nodes
    assert (node.status, node.cpu, node.maxcpu, node.mem, node.maxmem, node.disk, node.maxdisk) == \
        ("online", 0.2, 4, 2, 10, 3, 30)
    assert node.loadavg == ["0.1", "0.2", "0.3"] and node.pveversion == "pve-manager/8.2.4"
    assert [path for _, path, _, _ in backend.requests] == ["/nodes/pve1/status"]


async def test_one_offline_node_keeps_the_list_data_and_is_named_unreachable() -> None:
    no_route = ServiceFailure(ErrorCode.UNAVAILABLE, "Proxmox could not forward GET /nodes/pve3/status to the node "
                              "(No route to host)", details={"status": 595})
    ops, _ = _ops({("GET", "/nodes"): NODES, ("GET", "/nodes/pve3/status"): no_route})
    result = await ops.node_status(t.NodeStatusArgs(node="pve3"), _budget())
    assert [(n.node, n.status, n.mem) for n in result.nodes] == [("pve3", "offline", None)]
    assert [(u.node, u.code) for u in result.unreachable] == [("pve3", "offline")]


async def test_one_online_node_that_fails_fails_naming_it() -> None:
    no_route = ServiceFailure(ErrorCode.UNAVAILABLE, "Proxmox could not forward GET /nodes/pve2/status to the node "
                              "(No route to host)", details={"status": 595})
    ops, _ = _ops({("GET", "/nodes"): NODES, ("GET", "/nodes/pve2/status"): no_route})
    with pytest.raises(ServiceFailure) as caught:
        await ops.node_status(t.NodeStatusArgs(node="pve2"), _budget())
    assert caught.value.code is ErrorCode.UNAVAILABLE and "node pve2 is unreachable" in caught.value.info.message


async def test_one_offline_node_whose_request_hangs_is_reported_after_the_grace_not_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(operations, "SLOW_NODE_GRACE", 0.05)

    class Hanging(ScriptedBackend):
        async def request(self, method: Method, path: str, params: Params | None = None, *, timeout: float) -> Any:
            if path == "/nodes/pve3/status":
                await asyncio.sleep(timeout)
            return await super().request(method, path, params, timeout=timeout)

    backend = Hanging({("GET", "/nodes"): NODES})
    ops = ClusterOperations("lab", backend, ceiling=5.0)
    began = time.monotonic()
    result = await ops.node_status(t.NodeStatusArgs(node="pve3"), _budget())
    assert time.monotonic() - began < 2
    assert [(n.node, n.status) for n in result.nodes] == [("pve3", "offline")]
    assert [u.node for u in result.unreachable] == ["pve3"]


async def test_an_unknown_node_is_not_found_and_the_known_ones_are_named() -> None:
    ops, _ = _ops({("GET", "/nodes"): NODES})
    with pytest.raises(ServiceFailure) as caught:
        await ops.node_status(t.NodeStatusArgs(node="pve9"), _budget())
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert "(nodes: pve1, pve2, pve3)" in caught.value.info.message


async def test_all_nodes_keep_the_list_data_of_offline_and_failing_nodes() -> None:
    ops, backend = _ops({("GET", "/nodes"): NODES, ("GET", "/nodes/pve1/status"): PVE1_STATUS,
                         ("GET", "/nodes/pve2/status"): ServiceFailure(ErrorCode.UPSTREAM_ERROR, "boom")})
    nodes = (await ops.node_status(t.NodeStatusArgs(), _budget())).nodes
    assert [(n.node, n.status, n.maxcpu) for n in nodes] == [("pve1", "online", 4), ("pve2", "online", 8),
                                                              ("pve3", "offline", None)]
    assert "/nodes/pve3/status" not in [path for _, path, _, _ in backend.requests]


async def test_proxmox_api_sends_the_normalized_path_and_proxmox_encoded_data() -> None:
    ops, backend = _ops({("POST", "/nodes/pve1/qemu/100/config"): None})
    result = await ops.proxmox_api(t.ProxmoxApiArgs(method="POST", path="//nodes/pve1/qemu/100/config/",
                                                    data={"onboot": True, "cores": 2}), _budget())
    assert (result.method, result.path, result.data) == ("POST", "/nodes/pve1/qemu/100/config", None)
    assert backend.requests[-1][:3] == ("POST", "/nodes/pve1/qemu/100/config", {"onboot": 1, "cores": 2})


async def test_requests_get_the_time_left_capped_by_the_ceiling() -> None:
    ops, backend = _ops({("GET", "/version"): {"version": "8.2.4"}})
    await ops.probe(Budget(deadline=time.time() + 1.0, ceiling=5.0, margin=0.2))
    await ops.probe(Budget(deadline=time.time() + 60, ceiling=5.0, margin=0.2))
    first, second = (timeout for *_, timeout in backend.requests)
    assert 0.5 < first <= 0.8 and second == 5.0


def test_a_passed_deadline_is_a_timeout_before_any_request() -> None:
    with pytest.raises(ServiceFailure) as caught:
        Budget(deadline=time.time() + 0.1, ceiling=5.0, margin=0.2).timeout()
    assert caught.value.code is ErrorCode.TIMEOUT


async def test_probe_failure_is_reported_in_the_result_not_raised() -> None:
    ops, _ = _ops({("GET", "/version"): ServiceFailure(ErrorCode.UNAVAILABLE, "cannot connect")})
    result = await ops.probe(_budget())
    assert not result.ok and result.detail == "unavailable: cannot connect"
