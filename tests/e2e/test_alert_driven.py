"""From a Prometheus alert to a verified rollback with no person involved, on the sandbox.

Real parts only: the sandbox's Prometheus evaluates the rules ``runbook rules`` writes (demo
windows), its Alertmanager posts to ``runbook serve`` (a child process, the real receiver with
its journal and policy), which runs the real rollback notebook with papermill. Three cases:
a bad deploy rolled back automatically, a healthy deploy left alone, and a release the policy
does not allow: assessed in a dry run and notified with the command, nothing changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_sandbox import alerting, paths

RUNBOOK = str(Path(sys.executable).parent / "runbook")
# What each run adds to the service's profile (sandbox/profiles/app.yaml: the series and the
# demo's windows; the sandbox's alert rules come from the same file).
DEMO = {"recovery_poll": "2s"}


# Alertmanager retries a failed notification until the flush's deadline: the group interval
# (5 s here), raised to a 10 s minimum, plus margin.
AM_RETRY_S = 25.0


class Serve:
    """``runbook serve`` on the port the sandbox's Alertmanager posts to."""

    def __init__(self, sandbox: Any, tmp: Path, *, auto_rollback: bool) -> None:
        self.tmp = tmp
        self.notify_file = tmp / "notifications.jsonl"
        policy = {
            "parameters": {
                **sandbox.run_parameters,
                **DEMO,
            },
            "releases": [
                {
                    "release": "app",
                    "namespace": "default",
                    "auto_rollback": auto_rollback,
                    "profile": str(alerting.DEMO_PROFILE),
                }
            ],
            "notify": {"notify_file": str(self.notify_file), "console": False},
        }
        (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
        self.port = paths.ports().receiver
        argv = [
            RUNBOOK, "serve", "--policy", str(tmp / "policy.yaml"),
            "--token-file", str(alerting.token_file(sandbox.state_dir)),
            "--port", str(self.port), "--state-dir", str(tmp / "serve"),
            "--output-dir", str(tmp / "evidence"), "--cooldown", "0s",
            # A follow-up assessment may still run when the test ends: stopped and sealed.
            "--grace", "10s",
        ]  # fmt: skip
        self.log = (tmp / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **sandbox.env}, stdout=self.log, stderr=subprocess.STDOUT
        )
        _wait(lambda: self._get("/healthz") == "ok\n", 30, "runbook serve did not start")

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def runs(self) -> list[dict[str, Any]]:
        text = self._get("/runs?format=json")
        return list(json.loads(text)) if text else []

    def notes(self) -> list[str]:
        if not self.notify_file.exists():
            return []
        return [json.loads(line)["text"] for line in self.notify_file.read_text().splitlines()]

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(60) == 0  # SIGTERM: a graceful stop, exit 0
        self.log.close()


def _wait(predicate: Any, timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(message)


def _alerts_active(sandbox: Any) -> list[str]:
    """The runbook's alerts Prometheus has pending or firing for release app."""
    with urllib.request.urlopen(f"{sandbox.prometheus_url}/api/v1/alerts", timeout=5) as resp:
        alerts = json.load(resp)["data"]["alerts"]
    return [a["labels"]["alertname"] for a in alerts if a["labels"].get("release") == "app"]


def _alertmanager_active() -> list[str]:
    """The alerts for release app that Alertmanager still holds (it may deliver them late)."""
    from runbook_sandbox import paths

    url = f"http://127.0.0.1:{paths.ports().alertmanager}/api/v2/alerts?active=true"
    with urllib.request.urlopen(url, timeout=5) as resp:
        alerts = json.load(resp)
    return [a["labels"]["alertname"] for a in alerts if a["labels"].get("release") == "app"]


@pytest.fixture
def quiet_sandbox(clean_sandbox: Any) -> Any:
    """The sandbox at v1.0.0 with no runbook alert still active (each case starts clean).

    Alertmanager too: an alert an earlier test's bad deploy left there would otherwise reach
    this test's receiver and start a run before this test's deploy has breached. And for a
    while after it is gone: a notification that failed while no receiver listened is retried
    with the alerts as they were (firing) until its flush times out, so a stale "firing" can
    arrive after Alertmanager has resolved the alert (seen in CI).
    """
    quiet_since = [time.monotonic()]

    def quiet_long_enough() -> bool:
        if _alerts_active(clean_sandbox) or _alertmanager_active():
            quiet_since[0] = time.monotonic()
        return time.monotonic() - quiet_since[0] >= AM_RETRY_S

    _wait(quiet_long_enough, 360, "runbook alerts still active after the reset")
    return clean_sandbox


def _wait_rules_judged_since(sandbox: Any, since: float) -> None:
    """Wait until every runbook rule has been evaluated on a rate window, its ``for`` and two
    samples of data from after ``since`` (Unix seconds, the machine's clock)."""

    def rules() -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{sandbox.prometheus_url}/api/v1/rules", timeout=5) as r:
            groups = json.load(r)["data"]["groups"]
        return [rule for g in groups for rule in g["rules"] if rule["name"].startswith("Runbook")]

    found = rules()
    assert found, "no runbook rules loaded"
    profile = yaml.safe_load(alerting.DEMO_PROFILE.read_text())  # the rules' own windows
    window = float(profile["prometheus_rate_window"].removesuffix("s"))
    step = float(profile["step"].removesuffix("s"))
    needed = since + window + max(float(r.get("duration", 0)) for r in found) + 2 * step

    def judged() -> bool:
        return all(
            datetime.fromisoformat(r["lastEvaluation"]).timestamp() >= needed for r in rules()
        )

    _wait(judged, 300, "Prometheus did not evaluate the runbook's rules")


def _revisions(sandbox: Any) -> list[dict[str, Any]]:
    return list(json.loads(sandbox.helm("history", "app", "-o", "json")))


def test_a_bad_deploy_is_rolled_back_by_the_alert_alone(quiet_sandbox: Any, tmp_path: Path) -> None:
    serve = Serve(quiet_sandbox, tmp_path, auto_rollback=True)
    try:
        deployed = time.monotonic()
        quiet_sandbox.deploy("v1.1.0")
        # A run that judged too early (no_rollback) is followed by one for the alerts that
        # fired while it ran: wait for a run that acted.
        _wait(
            lambda: any(
                r["outcome"] not in ("running", "no_rollback", "inconclusive") for r in serve.runs()
            ),
            420,
            f"no run acted; notes: {serve.notes()}",
        )
        ended = time.monotonic()
    finally:
        serve.stop()
    journal = [
        json.loads(x) for x in (tmp_path / "serve" / "journal.jsonl").read_text().splitlines()
    ]
    *before, finished = [e for e in journal if e["event"] == "run_finished"]
    assert all(e["outcome"] == "no_rollback" for e in before), before
    assert finished["outcome"] == "recovered", serve.notes()
    first_run = next(
        e for e in journal if e["event"] == "run_started" and e["run_id"] == finished["run_id"]
    )
    assert first_run["action"] == "auto_rollback"
    history = _revisions(quiet_sandbox)
    assert history[-1]["app_version"] == "v1.0.0"
    incident = Path(first_run["incident_dir"])
    assert (incident / "alert.json").exists()
    assert (incident / "rollback.ipynb").exists()
    assert "alert.json" in (incident / "MANIFEST.sha256").read_text()
    notes = serve.notes()
    assert any(f"run {finished['run_id']} rolls back" in n for n in notes)
    assert "started by Alertmanager via runbook serve" in notes[0]
    assert any("outcome recovered" in n for n in notes)
    record = json.loads((incident / "record.json").read_text())
    # The run judged the rule whose alert started it, on the profile's series: the business
    # metric (orders) included, so a RunbookBusinessDrop alert is judged too.
    fired = json.loads((incident / "alert.json").read_text())["alert"]["labels"]
    judged = {(r["rule"], r["metric"]): r["status"] for r in record["rules"]}
    assert judged[(fired["runbook_rule"], fired["metric"])] != "not_evaluated", judged
    assert ("business", "business:orders") in judged, judged
    print(
        f"deploy to run end {ended - deployed:.0f} s; record: decision "
        f"{record.get('time_to_decision_s')} s after the deploy, recovery "
        f"{record.get('decision_to_recovery_s')} s after the decision"
    )


def test_a_healthy_deploy_is_left_alone(quiet_sandbox: Any, tmp_path: Path) -> None:
    serve = Serve(quiet_sandbox, tmp_path, auto_rollback=True)
    try:
        before = len(_revisions(quiet_sandbox))
        quiet_sandbox.deploy("v1.0.0", values={"replicaCount": "5"})
        # Prometheus has judged enough data from after the deploy for any runbook rule to be
        # pending or firing by now: a healthy deploy leaves none active, so none was sent.
        _wait_rules_judged_since(quiet_sandbox, time.time())
        assert serve.runs() == []
        assert not _alerts_active(quiet_sandbox)
    finally:
        serve.stop()
    assert len(_revisions(quiet_sandbox)) == before + 1  # the deploy, and no rollback


def test_a_release_the_policy_does_not_allow_is_only_notified(
    quiet_sandbox: Any, tmp_path: Path
) -> None:
    serve = Serve(quiet_sandbox, tmp_path, auto_rollback=False)
    try:
        quiet_sandbox.deploy("v1.1.0")
        _wait(
            lambda: any("without changing anything" in n for n in serve.notes()),
            420,
            f"no assessment reported; notes: {serve.notes()}",
        )
    finally:
        serve.stop()
    assert _revisions(quiet_sandbox)[-1]["app_version"] == "v1.1.0"  # nothing rolled back
    # The error, latency and business alerts may each lead to an assessment; none changes.
    note = next(n for n in serve.notes() if "without changing anything" in n)
    assert "verdict rollback" in note
    assert "runbook run rollback" in note
    assert "-p release app" in note
