#!/usr/bin/env python3
"""Write the bundled replay files of a bad and a healthy deploy (DESIGN.md "Replay CSV").

    python scripts/make_replay.py [--out-dir notebooks/data]

Deterministic: the wiggle on each series is a sum of sines of the sample number, not a random
generator, so the output is byte-identical on every machine and numpy version (a test checks
that the committed files match this script's output).

Bad deploy (``bad_deploy.csv``): deploy at 14:00 UTC; 45 min of healthy traffic before it; from
14:03 the 5xx ratio is about 5%, from 14:04 p99 latency about 1.8 s, and from 14:03 orders drop
about 30% while logins stay flat. Healthy deploy (``healthy_deploy.csv``): the same service and
times, with one 60-second burst of errors after the deploy that is too short to fire.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEPLOYED_AT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
STEP_S = 15
BEFORE_S = 45 * 60
AFTER_S = 30 * 60
HEADER = "timestamp,error_ratio,p99_latency_s,business:orders,business:logins"


def _wiggle(i: int, scale: float) -> float:
    return scale * (0.6 * math.sin(0.7 * i) + 0.4 * math.sin(0.13 * i + 1.0))


def _row(i: int, offset_s: int, *, bad: bool) -> str:
    error = 0.002 + _wiggle(i, 0.0008)
    latency = 0.25 + _wiggle(i + 3, 0.04)
    orders = 120.0 + _wiggle(i + 7, 5.0)
    logins = 40.0 + _wiggle(i + 11, 2.0)
    if bad:
        if offset_s >= 180:
            error = 0.05 + _wiggle(i, 0.006)
            orders = 84.0 + _wiggle(i + 7, 3.5)
        if offset_s >= 240:
            latency = 1.8 + _wiggle(i + 3, 0.15)
    elif 300 <= offset_s < 360:
        error = 0.03 + _wiggle(i, 0.004)  # 4 samples, 45 s: too short to fire
    moment = (DEPLOYED_AT + timedelta(seconds=offset_s)).isoformat()
    return f"{moment},{error:.6f},{latency:.4f},{orders:.2f},{logins:.2f}"


def render(*, bad: bool) -> str:
    """The CSV text of one replay."""
    offsets = range(-BEFORE_S, AFTER_S + 1, STEP_S)
    lines = [HEADER, *(_row(i, offset, bad=bad) for i, offset in enumerate(offsets))]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parents[1] / "notebooks" / "data"
    parser.add_argument("--out-dir", type=Path, default=default_dir)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, bad in (("bad_deploy.csv", True), ("healthy_deploy.csv", False)):
        path = args.out_dir / name
        path.write_text(render(bad=bad), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
