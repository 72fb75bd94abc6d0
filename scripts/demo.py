"""`make demo`: break the sandbox, roll it back with the notebook, show the evidence.

1. `runbook sandbox up` (local cluster, release `app` at v1.0.0, Prometheus, traffic), then reset
   it to one good revision.
2. Deploy v1.1.0, the bad version, and wait until Prometheus shows the breach that the
   "When to Rollback" rules (with the demo settings below) fire on.
3. Run the rollback notebook headlessly (`runbook run rollback ... confirm True`, with the
   sandbox's Jaeger as `tracing_url`), then print where the evidence is, a one-screen summary
   (with what was captured before the rollback and the traces), the total time and papermill's
   overhead.

Demo settings: the runbook's windows are minutes long (2 minutes sustained, rates over
1 minute, 15-second samples); the demo shortens them so it finishes in a few minutes. They are
passed as parameters; the notebook's defaults stay the runbook's.

The sandbox is chosen by RUNBOOK_SANDBOX_NAME / _STATE / _PORT_BASE like `runbook sandbox`.
Evidence goes to ./evidence/<incident id>/ (or RUNBOOK_DEMO_OUTPUT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNBOOK = str(BIN / "runbook")

DEMO_SUSTAIN_S = 20.0  # runbook: 120 s of sustained breach
DEMO_RATE_WINDOW = "15s"  # rate() window (runbook-sized: 1m)
# Notebook parameters, in the runbook's vocabulary (durations with their unit).
DEMO_SETTINGS: dict[str, str] = {
    "sustain": f"{DEMO_SUSTAIN_S:g}s",
    "step": "2s",  # runbook: 15 s samples (also the recovery check's spacing)
    "prometheus_rate_window": DEMO_RATE_WINDOW,
    "recovery_poll": "2s",
    "recovery_within": "2m",  # the runbook's own 2 minutes
    "business_smoothing": "30s",
}
BREACH_TIMEOUT_S = 300.0


def say(text: str) -> None:
    print(f"[demo {datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def runbook(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([RUNBOOK, *args], check=True, env=env)


def summary(incident_dir: Path) -> list[str]:
    record = json.loads((incident_dir / "record.json").read_text())
    impact = record["impact"]
    files = [p for p in incident_dir.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256"]

    def secs(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f} s"

    return [
        f"incident        {record['incident_id']}  outcome: {record['outcome']}",
        f"release         {record['release']}: {record['bad_version']} (rev "
        f"{record['bad_revision']}) -> {record['good_version']} (rev {record['good_revision']})",
        f"detection       first rule fired {secs(record['time_to_detection_s'])} after the deploy",
        f"decision        {secs(record['time_to_decision_s'])} after the deploy",
        f"recovery        {secs(record['decision_to_recovery_s'])} after the decision "
        f"(5-minute target met: {record['within_target']})",
        f"impact          {impact['minutes_above_threshold']:.1f} min above 1% 5xx; peak "
        f"{(impact['peak_error_ratio'] or 0):.2%}",
        f"triggers        {', '.join(t['rule'] for t in record['triggers']) or 'none'}",
        f"before rollback {_captured(incident_dir)}",
        f"traces          {_traces(incident_dir)}",
        f"evidence        {len(files)} files, sealed by MANIFEST.sha256",
    ]


def _captured(incident_dir: Path) -> str:
    """The bad pods kept before the rollback (kubernetes/before-rollback/capture.json)."""
    path = incident_dir / "kubernetes/before-rollback/capture.json"
    if not path.exists():
        return "nothing captured"
    capture = json.loads(path.read_text())
    return (
        f"{len(capture['pods'])} pods of {capture['release_revision']}, "
        f"{capture['bytes_captured']} bytes of logs, {len(capture['gaps'])} gap(s)"
        " (kubernetes/before-rollback/)"
    )


def _traces(incident_dir: Path) -> str:
    path = incident_dir / "traces/summary.md"
    if not path.exists():
        return "none"
    if "Traces were not collected" in path.read_text():
        return "not collected (see traces/summary.md)"
    failing = json.loads((incident_dir / "traces/failing.json").read_text())["data"]
    return f"{len(failing)} failing traces kept in full (traces/summary.md)"


def main() -> int:
    total_started = time.monotonic()
    env = dict(os.environ)
    say("bringing the sandbox up (first run builds the binaries: that takes a while)")
    runbook("sandbox", "up")
    runbook("sandbox", "reset")
    import runbook_sandbox

    sandbox = runbook_sandbox.attach()
    if sandbox is None or not sandbox.prometheus_url:
        raise SystemExit("the sandbox is not running with its metrics stack")
    if not sandbox.tracing_url:
        raise SystemExit("the sandbox is not running its tracing backend (Jaeger)")
    sandbox_env = {**env, **sandbox.env}

    say("deploying v1.1.0, the bad release")
    runbook("sandbox", "deploy", "v1.1.0")
    from runbook_lib.core.settings import Rules
    from runbook_sandbox.breach import last_deploy_time, wait_for_breach

    deployed_at = last_deploy_time(sandbox.helm("history", "app", "-o", "json"))
    decision, waited = wait_for_breach(
        sandbox.prometheus_url,
        deployed_at,
        rules=Rules(sustain=DEMO_SUSTAIN_S),
        rate_window=DEMO_RATE_WINDOW,
        timeout_s=BREACH_TIMEOUT_S,
        progress=say,
    )
    say(f"breach confirmed: {', '.join(t.rule for t in decision.triggers)}")

    output = Path(os.environ.get("RUNBOOK_DEMO_OUTPUT", REPO / "evidence"))
    incident = f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    params = {
        **sandbox.run_parameters,
        "tracing_url": sandbox.tracing_url,  # traces/ of the deploy window and after
        "confirm": True,
        "incident_id": incident,
        "notify_file": str(output / incident / "notifications.txt"),
        "root_cause_hypothesis": "v1.1.0 (demo): slow and failing requests under load",
        "request_rate_rps": 200,  # the traffic model's rate (sandbox/traffic/versions.yaml)
        **DEMO_SETTINGS,
    }
    argv = [RUNBOOK, "run", "rollback", "--output-dir", str(output)]
    for name, value in params.items():
        argv += ["-p", name, str(value)]
    say("running notebooks/rollback.ipynb headlessly (papermill)")
    run_started = time.monotonic()
    result = subprocess.run(argv, env=sandbox_env, capture_output=True, text=True, check=False)
    run_s = time.monotonic() - run_started
    sys.stderr.write(result.stderr[-3000:] if result.returncode else "")
    overhead = next(
        (line for line in result.stdout.splitlines() if line.startswith("papermill:")), ""
    )
    incident_dir = output / incident
    print()
    print("=" * 78)
    print(f"evidence: {incident_dir}")
    if (incident_dir / "record.json").exists():
        print("\n".join(summary(incident_dir)))
    verify = subprocess.run([RUNBOOK, "verify-evidence", str(incident_dir)], check=False,
                            capture_output=True, text=True)  # fmt: skip
    print(f"verify          {verify.stdout.strip() or verify.stderr.strip()}")
    print(f"timing          total demo {time.monotonic() - total_started:.0f} s; waiting for "
          f"the breach {waited:.0f} s; rollback notebook {run_s:.0f} s")  # fmt: skip
    print(f"                {overhead}")
    print("=" * 78)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
