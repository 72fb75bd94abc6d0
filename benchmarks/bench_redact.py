"""What redaction costs: every value of the evidence goes through it.

Four numbers, each the median of several rounds, on text made here:

- a short string (a timeline message, a notebook line): most calls;
- a timeline event carrying 60 parameters (``start_run``), redacted structurally;
- 1 MB of pod log lines without secrets, and the same with a credential on every other line;
- 2.7 MB of HTML with an embedded plot (the rendered notebook): images are skipped.

Run: ``.venv/bin/python benchmarks/bench_redact.py --rounds 5``.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import time
from collections.abc import Callable

from runbook_lib.core.redact import Redactor

LOG_LINE = (
    '2026-11-27T10:00:00.123Z stdout F 127.0.0.1 - - "GET /api/orders?id=42 HTTP/1.1" 200 0.023 '
    "version=v1.1.0 pod=app-7d9f8c6b5-x2x9k\n"
)
SECRET_LINE = '{"name": "DB_PASSWORD", "value": "x"} token=abc123 password: hunter2\n'


def _median_s(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    redactor = Redactor.build(secrets=["plantedKnownValue1"], env={"API_TOKEN": "plantedEnv22"})
    redactor("warm up: load the detect-secrets plugins once")
    shorts = [
        "step helm_rollback finished",
        "/work/main/evidence/INC-1/timeline.jsonl",
        "helm rollback app 3 --namespace default --kubeconfig /x/kubeconfig",
    ] * 1000
    params = {f"p{i}": f"value {i} /path/x" for i in range(60)}
    clean_log = LOG_LINE * (1_000_000 // len(LOG_LINE))
    secret_log = (LOG_LINE + SECRET_LINE) * (1_000_000 // (len(LOG_LINE) + len(SECRET_LINE)))
    image = base64.b64encode(os.urandom(2_000_000)).decode()
    page = f'<html><p>release app</p><img src="data:image/png;base64,{image}"></html>'

    short_s = _median_s(lambda: [redactor(s) for s in shorts], rounds) / len(shorts)
    event_s = _median_s(lambda: redactor.redact_value({"params": params}), rounds)
    print(f"short string             {short_s * 1e6:8.1f} us")
    print(f"60-parameter event       {event_s * 1e3:8.2f} ms")
    print(f"1 MB log, no secrets     {_median_s(lambda: redactor(clean_log), rounds):8.2f} s")
    print(f"1 MB log, secrets        {_median_s(lambda: redactor(secret_log), rounds):8.2f} s")
    page_s = _median_s(lambda: redactor(page), rounds)
    print(f"{len(page) / 1e6:.1f} MB HTML with a plot {page_s:8.2f} s")


if __name__ == "__main__":
    main()
