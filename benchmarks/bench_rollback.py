"""Decision -> rollout complete: the runbook's steps versus the raw commands, on the sandbox.

Raw: ``helm rollback app N`` then ``kubectl rollout status deployment/app`` (N looked up by
hand beforehand, as the runbook's reader would). Ours: ``preflight`` (guard, permissions,
revisions, Lease, plan), ``confirm``, ``notify``, ``helm_rollback``, ``wait_for_rollout``,
timed from the moment ``decide`` returned. Each of our runs is a fresh Python process, as a
papermill run is a fresh kernel: nothing warmed by an earlier rollback (client modules, API
connections) is counted as free. The bad version is redeployed before every measurement and the
two take turns going first, so drift on a shared machine hits both alike.

Run: ``RUNBOOK_SANDBOX_NAME=... .venv/bin/python benchmarks/bench_rollback.py --rounds 5``
(starts or reuses the sandbox named by the environment). Goal: overhead ratio <= 1.15.
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

import runbook_sandbox
from runbook_lib import steps
from runbook_lib.timeline import EventKind, Timeline

GOAL = 1.15
# Decision -> rollout complete: the runbook's steps from preflight to wait_for_rollout.
_ORDER = steps.ROLLBACK_STEPS
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


def _raw(sb: runbook_sandbox.Sandbox) -> float:
    rows = json.loads(sb.helm("history", "app", "-o", "json"))
    target = rows[-2]["revision"]  # the engineer picks the previous revision by reading it
    env = sb.env
    started = time.perf_counter()
    for argv in (
        [str(sb.bin_dir / "helm"), "--kube-context", sb.context, "rollback", "app", str(target)],
        [str(sb.bin_dir / "kubectl"), "--context", sb.context, "rollout", "status",
         "deployment/app", "--timeout=5m"],
    ):  # fmt: skip
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=330)
    return time.perf_counter() - started


def _ours_in_this_process(sb: runbook_sandbox.Sandbox, out_dir: Path, round_no: int) -> float:
    ctx = steps.start_run(
        expected_cluster=sb.context,
        kubeconfig=str(sb.kubeconfig),
        context=sb.context,
        helm_binary=str(sb.bin_dir / "helm"),
        prometheus_url=sb.prometheus_url,
        prometheus_rate_window="20s",
        metrics_step_s=5.0,
        manual_reason="benchmark",
        confirm=True,
        console=False,
        notify_file=str(out_dir / "channel.jsonl"),
        output_dir=str(out_dir),
        incident_id=f"bench-{round_no}",
        out=lambda _text: None,
    )
    for step in _ORDER[: _ORDER.index(steps.preflight)]:  # assess, decide: not timed
        step(ctx)
    started = time.perf_counter()
    for step in TIMED:
        step(ctx)
    elapsed = time.perf_counter() - started
    steps.finish(ctx)  # releases the Lease; not part of "decision -> rollout complete"
    return elapsed


def _ours(out_dir: Path, round_no: int) -> float:
    """One run of our steps in a fresh interpreter (``--one-run``); its measured seconds."""
    argv = [sys.executable, __file__, "--one-run", str(out_dir), str(round_no)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"round {round_no}: our run failed:\n{proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout.splitlines()[-1])["seconds"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="measurements of each (default 4)")
    parser.add_argument("--one-run", nargs=2, metavar=("DIR", "ROUND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one_run:  # the child: one measured run of our steps, seconds as JSON
        attached = runbook_sandbox.attach()
        if attached is None:
            print("the sandbox is not up", file=sys.stderr)
            return 1
        seconds = _ours_in_this_process(attached, Path(args.one_run[0]), int(args.one_run[1]))
        print(json.dumps({"seconds": seconds}))
        return 0
    sb = runbook_sandbox.attach() or runbook_sandbox.up()
    sb.reset()
    ours: list[float] = []
    raw: list[float] = []
    breakdown: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        # One unmeasured run of each first, so neither pays for a cold disk cache.
        for warm_up in (lambda: _ours(Path(tmp), -1), lambda: _raw(sb)):
            sb.deploy("v1.1.0")
            warm_up()
        for round_no in range(args.rounds):
            order = ("ours", "raw") if round_no % 2 == 0 else ("raw", "ours")
            for which in order:
                sb.deploy("v1.1.0")
                try:
                    if which == "ours":
                        ours.append(_ours(Path(tmp), round_no))
                        timeline = Path(tmp) / f"bench-{round_no}" / "timeline.jsonl"
                        breakdown.append(_step_seconds(timeline))
                    else:
                        raw.append(_raw(sb))
                except (RuntimeError, subprocess.CalledProcessError) as err:
                    print(f"round {round_no} {which}: failed: {err}", file=sys.stderr)
                    return 1
                print(
                    f"round {round_no} {which:4}: {(ours if which == 'ours' else raw)[-1]:6.2f} s"
                )
    sb.reset()
    med_ours, med_raw = statistics.median(ours), statistics.median(raw)
    ratio = med_ours / med_raw
    print(f"median decision -> rollout complete: ours {med_ours:.2f} s, raw {med_raw:.2f} s")
    print(f"overhead ratio {ratio:.3f} (goal <= {GOAL}); "
          f"{'met' if ratio <= GOAL else 'NOT met'}")  # fmt: skip
    print("median per step (ours), where the overhead goes:")
    for step in TIMED_STEPS:
        values = [b[step] for b in breakdown if step in b]
        if values:
            print(f"  {step:18} {statistics.median(values) * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
