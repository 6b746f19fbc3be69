"""Prometheus metrics every proxmox-mcp process shares: the registry, bounded labels, what each process and each
worker exports, the SSH pool's metrics, and serving /metrics. Service-specific metrics (the gateway's tool calls
and probes, the api-worker's Proxmox API calls) live in those services and register here.

Conventions (checked by tests/unit/ops/test_metric_names.py): one `proxmox_mcp_` prefix, base units (seconds,
bytes), counters end in `_total`, and labels only from a small closed vocabulary. Label values that come from
outside (tool names, cluster names, codes) pass through a bounded label, so a hostile or buggy caller can never
blow up the number of series: unknown shapes become "other".
"""
