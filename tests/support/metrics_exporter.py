"""A stand-in process exporting every proxmox-mcp metric through the real helpers (for Prometheus tests): all
services' families in one process, which no real process does.

python -m tests.support.metrics_exporter   (PMCP_METRICS_PORT picks the port; prints it as a JSON line)
SIGUSR1 records three more failing list_vms calls; SIGTERM ends it.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from proxmox_mcp_api_worker.metrics import observe_api_call, set_api_certificate_not_after
from proxmox_mcp_gateway.metrics import health_listener, observe_call, observe_nats_request, observe_task_wait
from proxmox_mcp_gateway.metrics.audit import watch_audit
from proxmox_mcp_gateway.metrics.calls import observe_tool_call, tool_in_flight
from proxmox_mcp_gateway.metrics.http import count_auth_failure
from proxmox_mcp_runtime.metrics.serve import serve_metrics_from_env
from proxmox_mcp_runtime.metrics.ssh import observe_ssh_command, observe_ssh_connect, set_ssh_pool_size
from proxmox_mcp_runtime.metrics.worker import watch_worker, worker_observer


class FakeNats:
    is_connected = True
    stats = {"reconnects": 2}


class FakeRuntime:
    inflight = 1
    nats_client = FakeNats()


class Audit:
    failures = 1
    written = 41
    healthy = True


@dataclass
class State:
    status: str = "fail"
    latency_ms: float | None = None
    last_success: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def record_traffic() -> None:
    for _ in range(20):
        observe_tool_call("list_vms", "ok", 0.05)
    for _ in range(4):
        observe_tool_call("execute_command", "ok", 7.0)
    observe_tool_call("execute_command", "policy_denied", 0.01)
    observe_tool_call("vm_action", "unavailable", 0.2)
    with tool_in_flight("node_status"):
        pass
    observe_call("node_status", "rate_limited", 0.001, {"limit": "token"})
    count_auth_failure("invalid_token")
    watch_audit(lambda: Audit())
    observe_nats_request("api", "ok", 0.02)
    observe_nats_request("ssh", "timeout", 2.0)
    observe_task_wait("default", "ok", 3.0)
    listen = health_listener("default")
    ok = State("ok", 3.0, time.time(), {"instances": 2})
    listen("nats", ok, "default")
    listen("api", ok, "default")
    listen("api-worker", ok, "default")
    listen("ssh-worker", ok, "default")
    listen("ssh", State(), "default")
    worker_observer("ssh")("exec", "ok", 0.3)
    watch_worker("ssh", FakeRuntime())
    set_ssh_pool_size("default", 1)
    observe_ssh_connect("default", "ok", 0.07)
    observe_ssh_connect("default", "ok", 0.06, reconnect=True)
    observe_ssh_command("default", "ok")
    observe_ssh_command("default", "nonzero", truncated=True)
    observe_api_call("default", "GET", 200, 0.03)
    observe_api_call("default", "POST", 500, 0.4)
    set_api_certificate_not_after("default", time.time() + 10 * 86400)


def main() -> int:
    record_traffic()
    server = serve_metrics_from_env("gateway", "0.0.0-test")
    if server is None:
        print("set PMCP_METRICS_PORT", file=sys.stderr)
        return 2
    stop = threading.Event()

    def more_failures(_signum: int, _frame: object) -> None:
        for _ in range(3):
            observe_tool_call("list_vms", "internal", 0.5)

    signal.signal(signal.SIGUSR1, more_failures)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"port": server.port}), flush=True)
    while not stop.wait(0.2):
        pass
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
