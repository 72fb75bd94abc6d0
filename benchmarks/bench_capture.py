"""How long capturing the bad release's pods holds up the rollback, on the sandbox.

The capture before ``helm rollback`` may delay it by at most a second. Two numbers,
each the median of several rounds after a fresh ``deploy v1.1.0`` and some traffic:

- **listing**: ``start_capture`` returning (it lists the pods, then reads the logs in a
  thread): what the rollback waits for when the capture runs in the background;
- **full capture**: ``capture_release_pods`` from start to end (status, 4 pods' logs since the
  deploy, bounded 1 MiB per pod, written to disk): what it waits for when run synchronously.

Run: ``RUNBOOK_SANDBOX_NAME=... .venv/bin/python benchmarks/bench_capture.py --rounds 5``
(starts or reuses the sandbox named by the environment).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import runbook_sandbox
from runbook_lib.adapters.kube import Kube
from runbook_lib.evidence.capture import capture_release_pods, start_capture

GOAL_S = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traffic-s", type=float, default=10.0, help="traffic before capturing")
    args = parser.parse_args()
    sb = runbook_sandbox.up()
    listing, full, sizes = [], [], []
    with Kube(kubeconfig=sb.kubeconfig, context=sb.context) as kube:
        for _ in range(args.rounds):
            sb.reset()
            deployed_at = datetime.now(UTC)
            sb.deploy("v1.1.0")
            time.sleep(args.traffic_s)
            with tempfile.TemporaryDirectory() as tmp:
                pods = {"namespace": "default", "selector": "app=api", "since": deployed_at}
                started = time.perf_counter()
                job = start_capture(kube, **pods, output_dir=Path(tmp) / "bg", redact=str)
                listing.append(time.perf_counter() - started)
                job.wait(60)
                started = time.perf_counter()
                report = capture_release_pods(
                    kube, **pods, output_dir=Path(tmp) / "sync", redact=str
                )
                full.append(time.perf_counter() - started)
                sizes.append(report.bytes_captured)
    sb.reset()
    print(
        f"rounds: {args.rounds}, captured per round: median {statistics.median(sizes):,.0f} bytes"
    )
    print(f"start_capture (listing only): median {statistics.median(listing) * 1000:.0f} ms")
    print(f"capture_release_pods (all):   median {statistics.median(full) * 1000:.0f} ms"
          f" (goal < {GOAL_S:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
