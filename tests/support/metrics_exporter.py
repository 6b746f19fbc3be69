"""A stand-in process exporting every proxmox-mcp metric through the real helpers (for Prometheus tests).

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

from proxmox_mcp_runtime import metrics as m
from proxmox_mcp_runtime.metrics_http import serve_metrics_from_env


class FakeNats:
    is_connected = True
    stats = {"reconnects": 2}


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
    m.declare_tools(m.ORIGINAL_TOOLS)
    for _ in range(20):
        m.observe_tool_call("list_vms", "ok", 0.05)
    for _ in range(4):
        m.observe_tool_call("execute_command", "ok", 7.0)
    m.observe_tool_call("execute_command", "policy_denied", 0.01)
    m.observe_tool_call("vm_action", "unavailable", 0.2)
    with m.tool_in_flight("node_status"):
        pass
    m.count_rate_limited("list_vms", "token")
    m.count_auth_failure("invalid_token")
    m.watch_audit(lambda: Audit())
    m.observe_nats_request("api", "ok", 0.02)
    m.observe_nats_request("ssh", "timeout", 2.0)
    m.observe_task_wait("default", "ok", 3.0)
    listen = m.health_listener("default")
    ok = State("ok", 3.0, time.time(), {"instances": 2})
    listen("nats", ok, "default")
    listen("api", ok, "default")
    listen("api-worker", ok, "default")
    listen("ssh-worker", ok, "default")
    listen("ssh", State(), "default")
    m.worker_observer("ssh")("exec", "ok", 0.3)
    m.track_worker_in_flight("ssh", lambda: 1)
    m.set_ssh_pool_size("default", 1)
    m.observe_ssh_connect("default", "ok", 0.07)
    m.observe_ssh_connect("default", "ok", 0.06, reconnect=True)
    m.observe_ssh_command("default", "ok")
    m.observe_ssh_command("default", "nonzero", truncated=True)
    m.observe_api_call("default", "GET", 200, 0.03)
    m.observe_api_call("default", "POST", 500, 0.4)
    m.set_api_certificate_not_after("default", time.time() + 10 * 86400)
    m.watch_nats(lambda: FakeNats())
    m.SRV_STATS.update("ssh", [{"endpoints": [{"name": "default-exec", "num_requests": 9, "num_errors": 1,
                                               "processing_time": 900_000_000}]}])


def main() -> int:
    record_traffic()
    server = serve_metrics_from_env("gateway", "0.0.0-test")
    if server is None:
        print("set PMCP_METRICS_PORT", file=sys.stderr)
        return 2
    stop = threading.Event()

    def more_failures(_signum: int, _frame: object) -> None:
        for _ in range(3):
            m.observe_tool_call("list_vms", "internal", 0.5)

    signal.signal(signal.SIGUSR1, more_failures)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"port": server.port}), flush=True)
    while not stop.wait(0.2):
        pass
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
