"""A real Prometheus (Debian package) and promtool for tests: own config, own TSDB dir, random port."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import REPO_ROOT, Proc, find_binary, free_port, start_process, wait_until

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
METRIC_NAME = re.compile(r"\b(proxmox_mcp_[a-z0-9_]+|proxmox_mcp:[a-z0-9_:]+)\b")


def promtool(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    binary = find_binary("promtool")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)


@dataclass
class PrometheusServer:
    proc: Proc
    url: str
    port: int

    def query(self, expr: str) -> dict[str, Any]:
        """The raw /api/v1/query answer (status, data or error)."""
        response = httpx2.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return response.json()

    def vector(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_for(self, expr: str, *, timeout: float = 20, what: str | None = None) -> list[dict[str, Any]]:
        """Poll until the query returns samples (a new target's first sample takes ~6 s to show)."""
        found: list[dict[str, Any]] = []

        def has_samples() -> bool:
            nonlocal found
            found = self.vector(expr)
            return bool(found)

        wait_until(has_samples, timeout=timeout, what=what or f"samples for {expr}", proc=self.proc, interval=0.25)
        return found

    def targets(self) -> list[dict[str, Any]]:
        body = httpx2.get(f"{self.url}/api/v1/targets", timeout=10).json()
        return list(body["data"]["activeTargets"])


def scrape_config(jobs: Mapping[str, Sequence[str]], *, interval: str = "1s",
                  rule_files: Iterable[Path] = ()) -> str:
    """A Prometheus config scraping static targets ("127.0.0.1:PORT") per job name."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": "900ms"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]} for job, targets in jobs.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(workdir: Path, config_text: str, *, timeout: float = 30) -> PrometheusServer:
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    proc = start_process(f"prometheus-{port}", argv, workdir)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx2.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_until(ready, timeout=timeout, what="prometheus /-/ready", proc=proc, interval=0.05)
    except BaseException:
        proc.stop()
        raise
    return PrometheusServer(proc=proc, url=url, port=port)


def referenced_metrics(expr: str) -> set[str]:
    """proxmox_mcp_* sample names and proxmox_mcp:* recording rules an expression reads."""
    return set(METRIC_NAME.findall(expr))


def rule_documents() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in RULE_FILES]


def recording_rules() -> dict[str, str]:
    """Each recording rule's name and expression."""
    return {rule["record"]: rule["expr"] for doc in rule_documents() for group in doc["groups"]
            for rule in group["rules"] if "record" in rule}


def recording_rule_names() -> set[str]:
    return set(recording_rules())


def scraped_sample_names(url: str) -> set[str]:
    """The sample names a /metrics page holds samples for (a family announced without samples is not counted:
    a panel plotting it would stay empty)."""
    text = httpx2.get(url, timeout=5).text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def alert_rules() -> list[dict[str, Any]]:
    return [rule for doc in rule_documents() for group in doc["groups"] for rule in group["rules"] if "alert" in rule]

