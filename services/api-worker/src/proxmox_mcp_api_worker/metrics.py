"""The api-worker's view of the Proxmox API: requests by method and status class, and its certificate's expiry."""

from __future__ import annotations

from proxmox_mcp_runtime.metrics.labels import ClosedLabel, cluster_label, status_class
from proxmox_mcp_runtime.metrics.registry import LATENCY_BUCKETS, counter, gauge, histogram

API_REQUESTS = counter("proxmox_mcp_api_requests", "Proxmox API requests, by method and status class (2xx..5xx, or "
                       "'error' when no HTTP answer came).", ["cluster", "method", "status_class"])
API_REQUEST_DURATION = histogram("proxmox_mcp_api_request_duration_seconds",
                                 "Proxmox API request latency, by method and status class.",
                                 ["cluster", "method", "status_class"], LATENCY_BUCKETS)
API_CERT_EXPIRY = gauge("proxmox_mcp_api_certificate_expiry_timestamp_seconds",
                        "notAfter of the Proxmox API's TLS certificate (Unix time), as seen by the api-worker.",
                        ["cluster"])

_method = ClosedLabel(("GET", "POST", "PUT", "DELETE"))


def observe_api_call(cluster: str, method: str, status: int | None, seconds: float) -> None:
    """One HTTP request to the Proxmox API; status None when no HTTP answer came."""
    labels = (cluster_label(cluster), _method(method.upper()), status_class(status))
    API_REQUESTS.labels(*labels).inc()
    API_REQUEST_DURATION.labels(*labels).observe(max(seconds, 0.0))


def set_api_certificate_not_after(cluster: str, not_after: float) -> None:
    API_CERT_EXPIRY.labels(cluster_label(cluster)).set(not_after)
