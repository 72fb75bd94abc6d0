"""``runbook run rollback`` on the sandbox: every ending leaves a truthful, sealed, clean bundle.

The bad release carries the planted-secret corpus in its Helm values, a Secret of the release
and the api pods' env; the pods' logs, the parameters, the environment and a business metric's
name carry it too. A failing run (recovery not verified: escalation), a run interrupted with
SIGINT during ``check_recovery`` and its re-run that finds the work done each leave evidence in
which ``grep -r`` finds none of it. A full evidence disk after the rollback (a real tmpfs,
filled while the run works) still tells what happened to the cluster, with exit 5.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from sandbox_runs import RUNBOOK, rollback_argv
from sandbox_waits import pods_have_logged
from secret_corpus import CORPUS, leaks

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

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
def planted_bad_release(clean_sandbox: Sandbox, tmp_path: Path) -> Sandbox:
    """v1.1.0 deployed with the corpus in its values, Secret and pod env, and in pod logs."""
    values = tmp_path / "planted-values.yaml"
    values.write_text(yaml.safe_dump({
        "env": {f"V{i}": p.text for i, p in enumerate(CORPUS)},
        "secret": {f"k{i}": p.text for i, p in enumerate(CORPUS)},
    }))  # fmt: skip
    clean_sandbox.deploy("v1.1.0", values_file=values)
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = [line for p in CORPUS for line in p.text.splitlines() if line.strip()]
    with (clean_sandbox.state_dir / "logs" / "inject.log").open("a") as fh:
        fh.writelines(f"{stamp} stdout F debug: {line}\n" for line in lines)
    # The planted lines are in the logs the run will capture, beside the pods' 5xx.
    pods_have_logged(clean_sandbox, "v1.1.0", containing=lines[-1], failures=True)
    return clean_sandbox


def _params(sandbox: Sandbox, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": "INC-E2E",
        **sandbox.run_parameters,
        "business_counters": f"{METRIC_NAME}=orders_total",
        "slack_webhook_url": "https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDhook1",
        "root_cause_hypothesis": "\n".join(p.text for p in CORPUS),
        "confirm": True,
        # These runs are about how a run ends, not about the decision (tests/unit,
        # tests/e2e/test_alert_driven.py and the recovered run in tests/notebooks judge real
        # breaches): the on-call's call, so no run waits for the bad version to breach.
        "manual_reason": "e2e: on-call decided to roll back",
        "output_dir": str(tmp_path / "ev"),
        **SHORT,
        **extra,
    }


def _env(sandbox: Sandbox, scratch: Path) -> dict[str, str]:
    planted = {f"PLANTED_API_TOKEN_{i}": p.text for i, p in enumerate(CORPUS)}
    return {**os.environ, **sandbox.env, **planted, "TMPDIR": str(scratch)}


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


def _verify(folder: Path) -> int:
    done = subprocess.run([str(RUNBOOK), "verify-evidence", str(folder)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return done.returncode


def _record(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "record.json").read_text())
    return data


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {text!r}: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_failing_run_escalates_with_a_clean_bundle(
    planted_bad_release: Sandbox, tmp_path: Path, scratch: Path
) -> None:
    # The bad version's errors stay in the 1-minute rate window after the rollout: recovery
    # to 0.001% within 20 s cannot be verified, the run escalates and fails.
    params = _params(planted_bad_release, tmp_path, recovery_error_ratio="0.001%",
                     recovery_within="20s", prometheus_rate_window="1m")  # fmt: skip
    result = subprocess.run(rollback_argv(params), capture_output=True, text=True, timeout=900,
                            env=_env(planted_bad_release, scratch), check=False)  # fmt: skip
    folder = tmp_path / "ev" / "INC-E2E"
    assert result.returncode == 1, result.stderr[-3000:]
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
    assert _verify(folder) == 0
    _assert_clean(folder, result.stdout, result.stderr)
    assert list(scratch.iterdir()) == []


def test_interrupted_run_then_a_rerun_that_finds_the_work_done(
    planted_bad_release: Sandbox, tmp_path: Path, scratch: Path
) -> None:
    env = _env(planted_bad_release, scratch)
    folder = tmp_path / "ev" / "INC-E2E"
    # Recovery to 0.001% cannot be reached: check_recovery polls for its whole 2 minutes.
    params = _params(planted_bad_release, tmp_path, recovery_error_ratio="0.001%")
    proc = subprocess.Popen(rollback_argv(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        _wait_for(folder / "timeline.jsonl", "check_recovery started", proc)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, while check_recovery polls
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    assert "outcome: interrupted" in out
    assert "cluster: rolled back by this run: revision 2 -> 1" in out
    record = _record(folder)
    assert record["outcome"] == "interrupted"
    assert (
        "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)"
        in (folder / "record.md").read_text()
    )
    assert "KeyboardInterrupt" in (folder / "rollback.ipynb").read_text()
    assert _verify(folder) == 0
    _assert_clean(folder, out, err)
    assert list(scratch.iterdir()) == []

    # The same incident again: the release already runs the good version.
    again = rollback_argv(_params(planted_bad_release, tmp_path))
    rerun = subprocess.run(again, capture_output=True, text=True, timeout=900, env=env, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
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
    assert _verify(folder) == 0
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
    planted_bad_release: Sandbox, tmp_path: Path, scratch: Path, evidence_disk: Path
) -> None:
    params = _params(planted_bad_release, tmp_path, output_dir=str(evidence_disk))
    folder = evidence_disk / "INC-E2E"
    proc = subprocess.Popen(rollback_argv(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(planted_bad_release, scratch))  # fmt: skip
    try:
        _wait_for(folder / "timeline.jsonl", '"fact": "rolled_back"', proc)
        _fill(evidence_disk)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 5, err[-3000:]
    assert "Traceback" not in err
    assert "cluster: rolled back by this run: revision 2 -> 1" in out
    # The kernel's events the full disk refused were put back: the true ending.
    assert "outcome: recovered" in out
    assert "EVIDENCE LOST" in err
    assert "seal: " in out
    if "seal: sealed" in out:  # never said of a bundle that does not verify
        assert _verify(folder) == 0
    assert {image for image in planted_bad_release.kubectl(
        "get", "pods", "-l", "app=api", "-o", "jsonpath={.items[*].spec.containers[*].image}"
    ).split()} == {"registry.local/api:v1.0.0"}  # fmt: skip
    assert list(scratch.iterdir()) == []
