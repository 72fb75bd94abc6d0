"""Decision -> first change, and decision -> rollout complete, on the sandbox.

Two numbers, each the median of several rounds:

- **before the first change**: from the moment ``decide`` returned to the moment ``helm
  rollback`` is started: ``preflight`` (cluster guard, permissions, a fresh ``helm history``, the
  values and manifest it needs, the Lease, the plan), ``confirm``, ``notify`` and the start of
  ``helm_rollback``. Goal: under 1 s on this machine. Nothing in the release has changed yet,
  so this is the time the runbook adds before acting.
- **decision -> rollout complete**: the same start, to the end of ``wait_for_rollout``: the
  part of the 5-minute target (DESIGN.md) the rollback itself takes.

Each run is a fresh Python process, as a papermill run is a fresh kernel: nothing warmed by an
earlier rollback (imported modules, API connections) is counted as free. The bad version is
redeployed before every round. For context only, the same rollback done by hand (``helm
rollback app N`` then ``kubectl rollout status``, N read beforehand) is timed too.

Run: ``RUNBOOK_SANDBOX_NAME=... .venv/bin/python benchmarks/bench_rollback.py --rounds 5``
(starts or reuses the sandbox named by the environment).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import runbook_sandbox
from runbook_lib import steps
from runbook_lib.record.timeline import EventKind, Timeline

GOAL_BEFORE_CHANGE_S = 1.0
_ORDER = steps.ROLLBACK_STEPS
# Decision -> rollout complete: the runbook's steps from preflight to wait_for_rollout.
TIMED = _ORDER[_ORDER.index(steps.preflight) : _ORDER.index(steps.wait_for_rollout) + 1]
TIMED_STEPS = tuple(step.__name__ for step in TIMED)


def _step_seconds(timeline_path: Path) -> dict[str, float]:
    """Each timed step's duration, from its start and end events on the run's timeline."""
    timeline = Timeline(timeline_path)
    seconds = {}
    for step in TIMED_STEPS:
        start = timeline.first(step, EventKind.STEP_START)
        end = timeline.last(step, EventKind.STEP_END)
        if start and end:
            seconds[step] = (end.at - start.at).total_seconds()
    return seconds


def _by_hand(sb: runbook_sandbox.Sandbox) -> float:
    """``helm rollback`` + ``kubectl rollout status``, the revision looked up beforehand."""
    rows = json.loads(sb.helm("history", "app", "-o", "json"))
    target = rows[-2]["revision"]  # the engineer picks the previous revision by reading it
    started = time.perf_counter()
    for argv in (
        [str(sb.bin_dir / "helm"), "--kube-context", sb.context, "rollback", "app", str(target)],
        [str(sb.bin_dir / "kubectl"), "--context", sb.context, "rollout", "status",
         "deployment/app", "--timeout=5m"],
    ):  # fmt: skip
        subprocess.run(argv, env=sb.env, check=True, capture_output=True, timeout=330)
    return time.perf_counter() - started


def _one_run(sb: runbook_sandbox.Sandbox, out_dir: Path, round_no: int) -> dict[str, float]:
    """Our steps in this process; seconds to the first change and to rollout complete."""
    ctx = steps.start_run(
        expected_cluster=sb.context,
        kubeconfig=str(sb.kubeconfig),
        context=sb.context,
        helm_binary=str(sb.bin_dir / "helm"),
        prometheus_url=sb.prometheus_url,
        prometheus_rate_window="20s",
        manual_reason="benchmark",  # the decision itself is not what is measured here
        confirm=True,
        console=False,
        notify_file=str(out_dir / "channel.jsonl"),
        output_dir=str(out_dir),
        incident_id=f"bench-{round_no}",
        out=lambda _text: None,
    )
    for step in _ORDER[: _ORDER.index(steps.preflight)]:  # assess, decide: before the clock
        step(ctx)
    first_change: list[float] = []
    helm = ctx.helm
    rollback = helm.rollback

    def timed_rollback(*args: Any, **kwargs: Any) -> None:
        first_change.append(time.perf_counter())  # the moment the first change is started
        rollback(*args, **kwargs)

    helm.rollback = timed_rollback  # type: ignore[method-assign]
    started = time.perf_counter()
    for step in TIMED:
        step(ctx)
    done = time.perf_counter()
    steps.finish(ctx)  # releases the Lease; not part of "decision -> rollout complete"
    if not first_change:
        raise RuntimeError("helm rollback was never started")
    return {"before_change": first_change[0] - started, "to_rollout": done - started}


def _ours(out_dir: Path, round_no: int) -> dict[str, float]:
    """One run of our steps in a fresh interpreter (``--one-run``); its measured seconds."""
    argv = [sys.executable, __file__, "--one-run", str(out_dir), str(round_no)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"round {round_no}: our run failed:\n{proc.stderr[-2000:]}")
    measured: dict[str, float] = json.loads(proc.stdout.splitlines()[-1])
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--one-run", nargs=2, metavar=("DIR", "ROUND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_run:  # the child: one measured run of our steps, seconds as JSON
        attached = runbook_sandbox.attach()
        if attached is None:
            print("the sandbox is not up", file=sys.stderr)
            return 1
        print(json.dumps(_one_run(attached, Path(args.one_run[0]), int(args.one_run[1]))))
        return 0
    sb = runbook_sandbox.attach() or runbook_sandbox.up()
    sb.reset()
    ours: list[dict[str, float]] = []
    by_hand: list[float] = []
    breakdown: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        sb.deploy("v1.1.0")
        _ours(Path(tmp), -1)  # unmeasured: the first run after a deploy pays for a cold disk
        for round_no in range(args.rounds):
            try:
                sb.deploy("v1.1.0")
                ours.append(_ours(Path(tmp), round_no))
                breakdown.append(_step_seconds(Path(tmp) / f"bench-{round_no}" / "timeline.jsonl"))
                sb.deploy("v1.1.0")
                by_hand.append(_by_hand(sb))
            except (RuntimeError, subprocess.CalledProcessError) as err:
                print(f"round {round_no}: failed: {err}", file=sys.stderr)
                return 1
            before_ms = ours[-1]["before_change"] * 1000
            print(
                f"round {round_no}: before the first change {before_ms:5.0f} ms, "
                f"decision -> rollout complete {ours[-1]['to_rollout']:5.2f} s "
                f"(by hand: {by_hand[-1]:5.2f} s)"
            )
    sb.reset()
    before = statistics.median(r["before_change"] for r in ours)
    to_rollout = statistics.median(r["to_rollout"] for r in ours)
    print(f"median of {len(ours)} rounds, each a fresh Python process:")
    print(
        f"  decision -> first change (helm rollback started): {before * 1000:.0f} ms "
        f"(goal < {GOAL_BEFORE_CHANGE_S * 1000:.0f} ms: "
        f"{'met' if before < GOAL_BEFORE_CHANGE_S else 'NOT met'})"
    )
    print(f"  decision -> rollout complete: {to_rollout:.2f} s")
    print(f"  for context, helm rollback + kubectl rollout status by hand: "
          f"{statistics.median(by_hand):.2f} s")  # fmt: skip
    print("median per step:")
    for step in TIMED_STEPS:
        values = [b[step] for b in breakdown if step in b]
        if values:
            print(f"  {step:18} {statistics.median(values) * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
