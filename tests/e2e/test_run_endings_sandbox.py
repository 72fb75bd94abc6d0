"""``runbook run rollback`` on the sandbox: every ending leaves a truthful, sealed, clean bundle.

Each test has a bad release of its own (the plugin's ``release``, in a namespace of its own),
and runs ``runbook run rollback`` through ``run_runbook``, as a team's tests do. The bad
release carries the planted-secret corpus in its Helm values, a Secret of the release
and the api pods' env; the pods' logs, the parameters, the environment and a business metric's
name carry it too. A failing run (recovery not verified: escalation), a run interrupted with
SIGINT during ``check_recovery`` and its re-run that finds the work done each leave evidence in
which ``grep -r`` finds none of it. A full evidence disk after the rollback (a real tmpfs,
filled while the run works) still tells what happened to the cluster, with exit 5.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sandbox_waits import pods_have_logged
from secret_corpus import CORPUS, leaks

from runbook_sandbox import traffic_control
from runbook_sandbox.expect import assert_evidence_verifies
from runbook_sandbox.pytest_plugin import Runner
from runbook_sandbox.team import RunResult, Started, TeamRelease

SHORT = {
    "sustain": "10s",
    "step": "2s",
    "recovery_poll": "2s",
    "recovery_within": "2m",
    "prometheus_rate_window": "10s",
    "business_smoothing": "30s",
}
# A business metric named like a Stripe key: its column, CSV header and plot labels must not
# carry it.
METRIC_NAME = next(p.text for p in CORPUS if p.text.startswith("rk_live_"))


@pytest.fixture
def planted_bad_release(
    release: TeamRelease,
    deploy: Callable[..., int],
    tmp_path: Path,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> TeamRelease:
    """A release of its own: v1.1.0 (5xx by its image's behaviour) deployed with the corpus in
    its values, Secret and pod env, and in its pods' logs; the runs' environment carries it
    too, and their TMPDIR is ``scratch``."""
    values = tmp_path / "planted-values.yaml"
    values.write_text(yaml.safe_dump({
        "env": {f"V{i}": p.text for i, p in enumerate(CORPUS)},
        "secret": {f"k{i}": p.text for i, p in enumerate(CORPUS)},
    }))  # fmt: skip
    deploy("v1.1.0", values_file=values)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = [line for p in CORPUS for line in p.text.splitlines() if line.strip()]
    with (release.sandbox.state_dir / "logs" / "inject.log").open("a") as fh:
        fh.writelines(f"{stamp} stdout F debug: {line}\n" for line in lines)
    # The planted lines are in the logs the run will capture, beside the pods' 5xx.
    pods_have_logged(release.sandbox, "v1.1.0", containing=lines[-1], failures=True,
                     namespace=release.namespace)  # fmt: skip
    for i, p in enumerate(CORPUS):
        monkeypatch.setenv(f"PLANTED_API_TOKEN_{i}", p.text)
    monkeypatch.setenv("TMPDIR", str(scratch))
    return release


def _start(run_runbook: Runner, **extra: Any) -> Started:
    return run_runbook.start(
        incident_id="INC-E2E",
        business_counters=f"{METRIC_NAME}=orders_total",
        slack_webhook_url="https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDhook1",
        root_cause_hypothesis="\n".join(p.text for p in CORPUS),
        # These runs are about how a run ends, not about the decision (tests/unit,
        # tests/e2e/test_alert_driven.py and the recovered run in tests/notebooks judge real
        # breaches): the on-call's call, so no run waits for the bad version to breach.
        manual_reason="e2e: on-call decided to roll back",
        **{**SHORT, **extra},
    )


def _assert_clean(folder: Path, *streams: str) -> None:
    grep = subprocess.run(["grep", "-r", "-l", "PLANTED", str(folder)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert grep.stdout == ""
    for path in folder.rglob("*"):
        if path.is_file():
            assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path
    for text in streams:
        assert leaks(text) == []
        assert "PLANTED" not in text


def _record(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "record.json").read_text())
    return data


def _wait_for(path: Path, text: str, run: Started, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if run.proc.poll() is not None:
            raise AssertionError(f"the run ended before {text!r}: {run.proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path}")


def _rolled_back_then(
    run: Started, text: str, then: Callable[[], None], *, status: int, timeout_s: float
) -> RunResult:
    """Once the run's timeline says ``text``, ``then`` happens to it; the run ends with exit
    ``status``, no traceback, and says it rolled the release back."""
    try:
        _wait_for(run.folder / "timeline.jsonl", text, run)
        then()
    finally:
        ended = run.finish(timeout_s)
    assert ended.exit_status == status, ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr
    assert "cluster: rolled back by this run: revision 2 -> 1" in ended.stdout
    return ended


@contextlib.contextmanager
def _good_pods_failing(release: TeamRelease, error_ratio: float = 0.01) -> Iterator[None]:
    """While inside, the pods of revision 1 (whose template the rollback brings back) fail
    ``error_ratio`` of their requests: a recovery to less than that is never verified."""
    sets = json.loads(release.kubectl("get", "replicasets", "-l", "app=api", "-o", "json"))
    (first,) = [
        r for r in sets["items"]
        if r["metadata"]["annotations"].get("deployment.kubernetes.io/revision") == "1"
    ]  # fmt: skip
    where = {"release": release.name, "namespace": release.namespace,
             "pod_template_hash": first["metadata"]["labels"]["pod-template-hash"]}  # fmt: skip
    traffic_control.set_behaviour(release.sandbox.traffic_url, error_ratio=error_ratio, **where)
    try:
        yield
    finally:
        traffic_control.clear_behaviour(release.sandbox.traffic_url, **where)


def test_failing_run_escalates_with_a_clean_bundle(
    planted_bad_release: TeamRelease, run_runbook: Runner, scratch: Path
) -> None:
    # The bad version's errors stay in the 1-minute rate window after the rollout: recovery
    # to 0.001% within 20 s cannot be verified, the run escalates and fails.
    result = _start(run_runbook, recovery_error_ratio="0.001%", recovery_within="20s",
                    prometheus_rate_window="1m").finish(900)  # fmt: skip
    folder = result.folder
    assert result.exit_status == 1, result.stderr[-3000:]
    assert "outcome: not_recovered" in result.stdout
    assert "cluster: rolled back by this run: revision 2 -> 1" in result.stdout
    record = _record(folder)
    assert (record["bad_version"], record["good_version"]) == ("v1.1.0", "v1.0.0")
    md = (folder / "record.md").read_text()
    assert "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)" in md
    # It says what happened first, and tells the escalation; the failed step says so.
    assert md.splitlines()[2] == "**Rolled back, NOT recovered: escalated**"
    happened = md.split("## What happened (UTC)")[1].split("##")[0]
    assert "Rolled back revision 2 -> 1" in happened
    assert "Recovery NOT verified:" in happened
    steps = md.split("## Steps")[1].split("##")[0]
    assert "| check_recovery |" in steps
    assert "FAILED: check_recovery failed: VerificationFailed" in steps
    assert "running" not in steps
    # The planted values did reach the evidence's sources, redacted.
    assert "[REDACTED]" in (folder / "helm" / "values-diff.txt").read_text()
    assert "app-credentials" in (folder / "helm" / "manifest-diff.txt").read_text()
    # The escalation path still draws the picture after the rollback.
    assert (folder / "plots" / "before_after.png").stat().st_size > 1000
    assert "seal: sealed" in result.stdout
    assert_evidence_verifies(folder)
    _assert_clean(folder, result.stdout, result.stderr)
    assert list(scratch.iterdir()) == []


def test_interrupted_run_then_a_rerun_that_finds_the_work_done(
    planted_bad_release: TeamRelease, run_runbook: Runner, scratch: Path
) -> None:
    # Recovery to 0.001% cannot be reached: check_recovery polls for its whole 2 minutes.
    with _good_pods_failing(planted_bad_release):
        run = _start(run_runbook, recovery_error_ratio="0.001%")
        folder = run.folder
        # Ctrl-C, while check_recovery polls.
        interrupted = _rolled_back_then(run, "check_recovery started",
                                        lambda: run.proc.send_signal(signal.SIGINT),
                                        status=130, timeout_s=180)  # fmt: skip
    out, err = interrupted.stdout, interrupted.stderr
    assert "outcome: interrupted" in out
    record = _record(folder)
    assert record["outcome"] == "interrupted"
    assert (
        "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)"
        in (folder / "record.md").read_text()
    )
    assert "KeyboardInterrupt" in (folder / "rollback.ipynb").read_text()
    assert_evidence_verifies(folder)
    _assert_clean(folder, out, err)
    assert list(scratch.iterdir()) == []

    # The same incident again: the release already runs the good version.
    rerun = _start(run_runbook).finish(900)
    assert rerun.exit_status == 0, rerun.stderr[-3000:]
    assert "outcome: already_rolled_back" in rerun.stdout
    assert "cluster: rolled back earlier in this incident: revision 2 -> 1" in rerun.stdout
    text = (folder / "record.md").read_text()
    assert (
        "Rolled back by an earlier attempt of this incident: v1.1.0 (revision 2) to v1.0.0 "
        "(revision 1); this attempt changed nothing" in text
    )
    # Both attempts' notebooks, side by side, and the record lists both.
    assert "KeyboardInterrupt" in (folder / "rollback.ipynb").read_text()
    assert (folder / "rollback.attempt-2.ipynb").exists()
    attempts = _record(folder)["attempts"]
    assert [a["outcome"] for a in attempts] == ["interrupted", "already_rolled_back"]
    # Nothing to announce: the re-run changes nothing.
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    latest = events[max(i for i, e in enumerate(events) if e["step"] == "start_run") :]
    said = [e["message"] for e in latest if e["step"] == "notify"]
    assert any(m.startswith("not sent: app already runs revision 1") for m in said)
    assert not any(m.startswith("posted:") for m in said)
    assert_evidence_verifies(folder)
    _assert_clean(folder, rerun.stdout, rerun.stderr)


@pytest.fixture
def evidence_disk(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("64m")


def _fill(folder: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    chunk = b"\0" * (1 << 20)
    with (folder / "filler").open("wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    for size in (4096, 512, 1):  # the last blocks too
        try:
            with (folder / f"filler-{size}").open("wb") as fh:
                while True:
                    fh.write(b"\0" * size)
                    fh.flush()
        except OSError:
            continue


def test_disk_full_after_the_rollback_still_says_what_happened(
    planted_bad_release: TeamRelease, run_runbook: Runner, scratch: Path, evidence_disk: Path
) -> None:
    run = _start(run_runbook, output_dir=str(evidence_disk))
    folder = run.folder
    assert folder == evidence_disk / "INC-E2E"
    ended = _rolled_back_then(run, '"fact": "rolled_back"', lambda: _fill(evidence_disk),
                              status=5, timeout_s=600)  # fmt: skip
    out, err = ended.stdout, ended.stderr
    # The kernel's events the full disk refused were put back: the true ending.
    assert "outcome: recovered" in out
    assert "EVIDENCE LOST" in err
    assert "seal: " in out
    if "seal: sealed" in out:  # never said of a bundle that does not verify
        assert_evidence_verifies(folder)
    planted_bad_release.wait_for_one_template()
    assert planted_bad_release.images() == {"registry.local/api:v1.0.0"}
    assert list(scratch.iterdir()) == []
