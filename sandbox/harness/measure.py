"""Measure the sandbox: warm ``up`` time, resident memory, deploy-to-breach time, reset time.

Run ``python -m runbook_sandbox.measure`` with the binaries built; it stops this
environment's sandbox first (so ``up`` is measured from nothing running), prints one JSON
object and leaves the sandbox up at v1.0.0. The numbers in sandbox/README.md come from here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from runbook_sandbox import cluster
from runbook_sandbox.sandbox import Sandbox, down, up

# The runbook's error rule: more than 1% of requests answered 5xx.
ERROR_RATIO = (
    'sum(rate(http_requests_total{code=~"5.."}[10s])) / sum(rate(http_requests_total[10s]))'
)


def _rss_mib(pids: tuple[int, ...]) -> dict[str, float]:
    page_kib = os.sysconf("SC_PAGE_SIZE") / 1024
    per_process: dict[str, float] = {}
    for pid in pids:
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        per_process[name] = per_process.get(name, 0.0) + resident * page_kib / 1024
    return per_process


def _error_ratio(prometheus_url: str) -> float:
    query = urllib.parse.urlencode({"query": ERROR_RATIO})
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=5) as resp:
        result = json.load(resp)["data"]["result"]
    return float(result[0]["value"][1]) if result else math.nan


def _deploy_to_breach_s(sb: Sandbox, *, timeout_s: float = 120.0) -> float | None:
    """Seconds from the start of ``deploy v1.1.0`` until Prometheus shows > 1% errors."""
    started = time.monotonic()
    deploy = threading.Thread(target=sb.deploy, args=("v1.1.0",))
    deploy.start()
    breach = None
    while time.monotonic() - started < timeout_s:
        if _error_ratio(sb.prometheus_url) > 0.01:
            breach = time.monotonic() - started
            break
        time.sleep(0.25)
    deploy.join()
    return breach


def main() -> int:
    down(progress=lambda _msg: None)
    started = time.monotonic()
    sb = up(progress=lambda _msg: None)
    result: dict[str, Any] = {"warm_up_s": round(time.monotonic() - started, 1)}
    time.sleep(5)  # let the components settle before reading their memory
    rss = _rss_mib(cluster.leftovers(sb).pids)
    result["rss_mib"] = {k: round(v) for k, v in sorted(rss.items())}
    result["rss_total_mib"] = round(sum(rss.values()))
    if sb.prometheus_url:
        breach = _deploy_to_breach_s(sb)
        result["deploy_to_breach_s"] = None if breach is None else round(breach, 1)
    started = time.monotonic()
    sb.reset()
    result["reset_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
