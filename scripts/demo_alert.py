"""`make demo-alert`: a bad deploy rolled back by an alert, with no person involved.

1. `runbook sandbox up` (cluster, release `app` v1.0.0, Prometheus with the rules `runbook
   rules` writes for the demo's windows, Alertmanager, Jaeger), reset to one good revision,
   then wait until the metrics before the deploy are clean: no runbook alert pending or
   firing, and the notebook's pre-deploy window (``business_baseline``, 2 minutes here) free
   of breaches, so an earlier demo's bad release is not in this one's record.
2. Start `runbook serve` on the port the sandbox's Alertmanager posts to, with a policy that
   lets `app` roll back automatically with the sandbox's service profile (the file its alert
   rules come from: the same series, the business metric included), notifications to a file,
   and traces from the sandbox's Jaeger in the evidence.
3. Deploy v1.1.0 and wait: Prometheus fires, Alertmanager posts, the receiver runs the rollback
   notebook headlessly. Print where each second went: breach start -> alert received ->
   decision -> rollback started -> rollout complete -> recovery verified.

The sandbox is chosen by RUNBOOK_SANDBOX_NAME / _STATE / _PORT_BASE like `runbook sandbox`.
Evidence goes to ./evidence/alert-demo/ (or RUNBOOK_DEMO_OUTPUT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = str(Path(sys.executable).parent / "runbook")
# What each run adds to the service's profile (sandbox/profiles/app.yaml: its series and the
# demo's windows, the same file the sandbox's alert rules come from).
DEMO = {
    "recovery_poll": "2s",
    # The window before the deploy the notebook reads (baseline, pre-deploy breaches): short,
    # so the demo need not wait half an hour after an earlier one for a clean record.
    "business_baseline": "2m",
    "request_rate_rps": 200,
    "root_cause_hypothesis": "v1.1.0 (demo): slow and failing requests under load",
}
RUN_TIMEOUT_S = 420.0
CLEAN_WINDOW = "2m"  # DEMO["business_baseline"], in PromQL


def say(text: str) -> None:
    print(f"[demo-alert {datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def _at(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def main() -> int:
    import runbook_sandbox
    from runbook_sandbox import alerting, paths

    say("bringing the sandbox up")
    subprocess.run([RUNBOOK, "sandbox", "up"], check=True)
    subprocess.run([RUNBOOK, "sandbox", "reset"], check=True)
    sandbox = runbook_sandbox.attach()
    if sandbox is None or not sandbox.prometheus_url:
        raise SystemExit("the sandbox is not running with its metrics stack")
    if not sandbox.tracing_url:
        raise SystemExit("the sandbox is not running its tracing backend (Jaeger)")
    # The reset restarts pods (orders dip), and an earlier demo's bad release may still be in
    # the recent metrics: start from a clean window, or the record warns of a breach before
    # the deploy and that dip's alert is the one that starts the run.
    say(f"waiting until no runbook alert is active and the last {CLEAN_WINDOW} are clean")
    _wait_quiet(sandbox.prometheus_url)
    output = Path(os.environ.get("RUNBOOK_DEMO_OUTPUT", REPO / "evidence")) / "alert-demo"
    work = output / f"serve-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    work.mkdir(parents=True, exist_ok=True)
    policy = {
        "parameters": {
            **sandbox.run_parameters,
            "tracing_url": sandbox.tracing_url,  # traces/ of the deploy window and after
            **DEMO,
        },
        "releases": [
            {
                "release": "app",
                "namespace": "default",
                "auto_rollback": True,
                # The service described once: the rule that fired and the notebook judge the
                # same series, the business metric (orders) included.
                "profile": str(alerting.DEMO_PROFILE),
            }
        ],
        "circuit_breaker": {"max_rollbacks": 2, "period": "1h"},
        "notify": {"notify_file": str(work / "notifications.jsonl"), "console": True},
    }
    (work / "policy.yaml").write_text(yaml.safe_dump(policy))
    port = paths.ports().receiver
    argv = [
        RUNBOOK, "serve", "--policy", str(work / "policy.yaml"),
        "--token-file", str(alerting.token_file(sandbox.state_dir)), "--port", str(port),
        "--state-dir", str(work / "state"), "--output-dir", str(output),
        # At the end a follow-up assessment may still run: stopped and sealed, not awaited.
        "--grace", "10s",
    ]  # fmt: skip
    say(f"runbook serve on 127.0.0.1:{port} (policy {work / 'policy.yaml'})")
    serve = subprocess.Popen(argv, env={**os.environ, **sandbox.env})
    try:
        time.sleep(3)
        say("deploying v1.1.0, the bad release; nobody touches anything from here")
        subprocess.run([RUNBOOK, "sandbox", "deploy", "v1.1.0"], check=True)
        journal = work / "state" / "journal.jsonl"
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # A run that found nothing to roll back is followed by one for the alerts that fired
        # while it ran (journal "reassess"): wait for a run that acted, else report the last.
        done: list[dict[str, Any]] = []
        acted: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not acted:
            time.sleep(2)
            events = (
                [json.loads(x) for x in journal.read_text().splitlines()]
                if journal.exists()
                else []
            )
            done = [e for e in events if e["event"] == "run_finished"]
            acted = [e for e in done if e["outcome"] not in ("no_rollback", "inconclusive")]
        if not done:
            say("no run finished in time")
            return 1
        finished = (acted or done)[-1]
    finally:
        serve.terminate()
        serve.wait(60)
    events = [json.loads(x) for x in journal.read_text().splitlines()]
    started = next(
        e for e in events if e["event"] == "run_started" and e["run_id"] == finished["run_id"]
    )
    for earlier in events:
        if earlier["event"] == "run_finished" and earlier["run_id"] != finished["run_id"]:
            say(f"earlier run {earlier['run_id']}: outcome {earlier['outcome']}")
    received = _at(
        next(e for e in events if e["event"] == "alert" and e["key"] == started["alert_key"])["at"]
    )
    incident = Path(started["incident_dir"])
    record = json.loads((incident / "record.json").read_text())
    triggers = record.get("triggers") or []
    breach = _at(triggers[0].get("started_at")) if triggers else None
    rollback_started = next(
        (
            _at(s.get("started_at"))
            for s in record.get("steps", [])
            if s.get("step") == "helm_rollback" and s.get("status") == "done"
        ),
        None,
    )
    moments = [
        ("breach start (first breaching sample)", breach),
        ("alert received by runbook serve", received),
        ("decision (verdict rollback)", _at(record.get("decision_at"))),
        ("rollback started (helm rollback)", rollback_started),
        ("rollout complete", _at(record.get("rollout_done_at"))),
        ("recovery verified", _at(record.get("recovered_at"))),
    ]
    print()
    print("=" * 78)
    print(f"outcome {finished['outcome']}; evidence {incident}")
    fired = json.loads((incident / "alert.json").read_text())["alert"]["labels"]
    judged = ", ".join(f"{r['rule']} ({r['metric']}) {r['status']}" for r in record["rules"])
    print(f"started by {fired.get('alertname')} (rule {fired.get('runbook_rule')}); "
          f"the notebook judged: {judged}")  # fmt: skip
    known = [(name, t) for name, t in moments if t is not None]
    total = (known[-1][1] - known[0][1]).total_seconds() if len(known) > 1 else 0.0
    previous = None
    for name, moment in moments:
        if moment is None:
            print(f"  {name:40s} n/a")
            continue
        step = (moment - previous).total_seconds() if previous else 0.0
        share = f"{step / total:5.0%}" if total and previous else "     "
        print(f"  {name:40s} {moment:%H:%M:%S.%f}"[:-3] + f"  +{step:5.1f} s {share}")
        previous = moment
    if received and rollback_started:
        print(
            "alert received -> rollback started: "
            f"{(rollback_started - received).total_seconds():.1f} s (goal < 10 s)"
        )
    if breach and record.get("recovered_at"):
        span = (_at(record["recovered_at"]) - breach).total_seconds()  # type: ignore[operator]
        print(
            f"breach start -> verified recovery: {span:.0f} s (goal < sustain 20 s + 60 s = 80 s)"
        )
    return 0 if finished["outcome"] == "recovered" else 1


def _clean(prometheus_url: str) -> bool:
    """No runbook alert active for app, and no breach of the error or latency threshold in
    the last CLEAN_WINDOW (the recorded series the alerts use)."""
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/alerts", timeout=5) as resp:
        alerts = json.load(resp)["data"]["alerts"]
    if [a for a in alerts if a["labels"].get("release") == "app"]:
        return False
    selector = '{release="app",namespace="default"}'
    for series, limit in (("runbook:error_ratio", 0.01), ("runbook:p99_latency_seconds", 1.0)):
        query = urllib.parse.quote(f"max_over_time({series}{selector}[{CLEAN_WINDOW}])")
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?query={query}", timeout=5) as r:
            result = json.load(r)["data"]["result"]
        if not result or float(result[0]["value"][1]) > limit:
            return False
    return True


def _wait_quiet(prometheus_url: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _clean(prometheus_url):
            return
        time.sleep(2)
    say(f"the metrics are still not clean after {timeout_s:.0f} s; going on")


if __name__ == "__main__":
    sys.exit(main())
