"""The game day, in the suite: headless runs on a bad deploy, faults at the worst moments.

Each scenario runs ``runbook run rollback`` as people and automations do, through the plugin a
team uses (``release``, ``deploy``, ``faults``, ``run_runbook``: docs/HARNESS.md), on a fresh
release of the sandbox's chart in a namespace of its own, against the sandbox's real API
server and helm, and checks what a person would: the cluster (``helm history``, the pods'
images), the exit status and message, the record's words, ``runbook verify-evidence``, and the
lock (the Lease free, or held by whom).

- two runs started together under ONE incident id: exactly one ``helm rollback``;
- two runs started together under two incident ids: the same;
- ``helm rollback`` that applies the rollback and then hangs until ``helm_timeout`` kills it:
  the run reads the cluster back and says the rollback was applied;
- the whole run SIGKILLed mid-rollback: a rerun takes the lock at once (the holder process is
  gone), reads the cluster back, seals the crashed run's evidence as what is so, and finishes
  within a minute;
- the wrong cluster: refused before anything is read or changed.

The decision is the manual rule (``manual_reason``), so no test waits for a breach.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.core.exit_status import REFUSED
from runbook_lib.record.facts import Outcome, RunFacts, attempts
from runbook_lib.record.timeline import Timeline
from runbook_sandbox.expect import assert_evidence_verifies, assert_lock_free
from runbook_sandbox.pytest_plugin import Runner
from runbook_sandbox.team import Faults, RunResult, Started, TeamRelease

GOOD_IMAGE = "registry.local/api:v1.0.0"


@pytest.fixture
def bad_deploy(release: TeamRelease, deploy: Callable[..., int]) -> TeamRelease:
    """Revision 1 v1.0.0 (good), revision 2 v1.1.0 (the bad deploy), no Lease: a release
    of its own, in its own namespace."""
    deploy("v1.1.0")
    return release


def _start(run_runbook: Runner, tmp_path: Path, incident: str, **extra: Any) -> Started:
    return run_runbook.start(
        incident_id=incident,
        manual_reason="game day: the on-call engineer rolls back",
        notify_file=str(tmp_path / f"channel-{incident}.txt"),
        **extra,
    )


def _rollbacks(release: TeamRelease) -> list[int]:
    """The revisions ``helm rollback`` made."""
    return [
        r["revision"] for r in release.history() if str(r["description"]).startswith("Rollback")
    ]


def _assert_pods_run_the_good_image(release: TeamRelease) -> None:
    release.wait_for_one_template()
    assert release.images() == {GOOD_IMAGE}


def _runs(folder: Path) -> dict[str, RunFacts]:
    """Every run in an incident's timeline, by run id, with its own facts."""
    events = Timeline(folder / "timeline.jsonl").events
    return {key: RunFacts.read(events, run=key) for key, _ in attempts(events)}


def _wait_for(path: Path, run: Started, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if run.proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name}: {run.proc.communicate()}")
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout_s} s"
        time.sleep(0.1)


def _assert_started_together_gave_one_rollback(
    release: TeamRelease, results: list[RunResult]
) -> tuple[RunResult, RunResult]:
    """One run rolled back and recovered; the other was refused naming the holder."""
    statuses = sorted(r.exit_status for r in results)
    assert statuses == [0, REFUSED], [r.stderr[-2000:] for r in results]
    assert _rollbacks(release) == [3]  # exactly one helm rollback: revision 3, "Rollback to 1"
    _assert_pods_run_the_good_image(release)
    assert_lock_free(release)
    winner = next(r for r in results if r.exit_status == 0)
    loser = next(r for r in results if r.exit_status == REFUSED)
    assert "outcome: recovered" in winner.stdout
    assert "cluster: rolled back by this run: revision 2 -> 1" in winner.stdout
    assert "outcome: refused" in loser.stdout
    # Refused by the lock, naming its holder as a process: preflight takes the Lease before
    # it reads helm history, so the loser never sees the winner's rollback half-made.
    assert "is being rolled back by 'GD-" in loser.stderr, loser.stderr
    assert " (pid " in loser.stderr, loser.stderr
    for folder in {r.folder for r in results}:
        assert_evidence_verifies(folder)
    return winner, loser


def test_two_runs_with_one_incident_id_started_together_roll_back_once(
    bad_deploy: TeamRelease, run_runbook: Runner, tmp_path: Path
) -> None:
    started = [_start(run_runbook, tmp_path, "GD-SAME") for _ in range(2)]
    results = [run.finish() for run in started]
    folder = started[0].folder
    _assert_started_together_gave_one_rollback(bad_deploy, results)
    # One timeline, two runs, each with its own story.
    runs = _runs(folder)
    assert len(runs) == 2
    outcomes = sorted(facts.outcome.value for facts in runs.values())
    assert outcomes == [Outcome.RECOVERED.value, Outcome.REFUSED.value]
    rolled = [facts for facts in runs.values() if facts.rolled_back is not None]
    assert len(rolled) == 1
    refused = next(facts for facts in runs.values() if facts.outcome is Outcome.REFUSED)
    assert refused.failure is not None
    assert refused.failure.error_type == "LockHeld"
    assert refused.lock is None
    assert rolled[0].lock is not None
    assert rolled[0].lock.holder in refused.failure.message
    md = (folder / "record.md").read_text()
    assert "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)" in md
    # The refused run collected nothing over the holder's evidence, and notified nobody.
    channel = (tmp_path / "channel-GD-SAME.txt").read_text()
    assert channel.count("Rolling back app from v1.1.0 to v1.0.0") == 1


def test_two_runs_with_two_incident_ids_started_together_roll_back_once(
    bad_deploy: TeamRelease, run_runbook: Runner, tmp_path: Path
) -> None:
    started = [_start(run_runbook, tmp_path, incident) for incident in ("GD-A", "GD-B")]
    results = [run.finish() for run in started]
    _assert_started_together_gave_one_rollback(bad_deploy, results)
    folders = [run.folder for run in started]
    records = {f.name: json.loads((f / "record.json").read_text()) for f in folders}
    assert sorted(r["outcome"] for r in records.values()) == ["recovered", "refused"]
    refused = next(f for f in folders if records[f.name]["outcome"] == "refused")
    assert records[refused.name]["rolled_back"] is False
    assert not (refused / "kubernetes").exists()  # the holder's business, not the refused run's


def test_a_rollback_applied_then_killed_by_helm_timeout_is_recorded_as_applied(
    bad_deploy: TeamRelease, faults: Faults, run_runbook: Runner, tmp_path: Path
) -> None:
    faults.helm_hanging(applies_first=True, timeout="2s")
    run = _start(run_runbook, tmp_path, "GD-TIMEOUT").finish()
    folder, out = run.folder, run.stdout
    assert run.exit_status == 1, run.stderr[-3000:]
    # The cluster: the rollback is in, whatever helm's exit said.
    history = bad_deploy.history()
    assert [(r["revision"], r["status"]) for r in history] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")
    ]  # fmt: skip
    assert history[-1]["description"] == "Rollback to 1"
    _assert_pods_run_the_good_image(bad_deploy)
    # The run says so: exit line, record, notification, all the same sentence.
    facts = next(iter(_runs(folder).values()))
    read = facts.read_back
    assert read is not None
    assert read.rollback_applied
    assert read.revision == 3
    assert read.reason.startswith("helm rollback was started at ")
    assert "killed after 1" in read.reason  # helm_timeout 2 s + 10 s of grace
    assert read.reason.endswith("(helm_timeout 2 s)")
    assert "the release is at revision 3 (v1.0.0, 'Rollback to 1', made at " in read.sentence
    assert ": the rollback was applied" in read.sentence
    assert f"cluster: {read.sentence}" in out
    assert "not changed by this run" not in out
    record = json.loads((folder / "record.json").read_text())
    assert record["rolled_back"] is True
    assert record["rolled_back_by_this_run"] is True
    assert record["cluster_read_back"]["sentence"] == read.sentence
    md = (folder / "record.md").read_text()
    assert read.sentence in md
    assert "Nothing was rolled back" not in md
    channel = (tmp_path / "channel-GD-TIMEOUT.txt").read_text()
    assert read.sentence in channel
    assert_lock_free(bad_deploy)  # given back when the step failed
    assert_evidence_verifies(folder)


def test_a_run_killed_mid_rollback_is_sealed_by_a_rerun_with_what_is_so(
    bad_deploy: TeamRelease, faults: Faults, run_runbook: Runner, tmp_path: Path
) -> None:
    # helm applies the rollback, then hangs far longer than the test waits: only the crash
    # ends the run.
    faults.helm_hanging(applies_first=True, timeout="10m")
    # A lock_ttl far longer than any run, however busy the machine: the rerun finishing before
    # the crashed run's Lease frees proves it never waited for it.
    ttl = {"lock_ttl": "10m"}
    crash = _start(run_runbook, tmp_path, "GD-CRASH", **ttl)
    _wait_for(faults.folder / "applied", crash)
    # The machine dies: the command, its kernel and the helm it started, all at once.
    crash.crash()
    killed_at = datetime.now(UTC)
    killed = time.monotonic()
    crashed = crash.folder
    with pytest.raises(AssertionError):  # its timeline went on after its last seal
        assert_evidence_verifies(crashed)
    lease = json.loads(bad_deploy.kubectl("get", "lease", bad_deploy.lease, "-o", "json"))
    assert lease["spec"]["holderIdentity"].startswith("GD-CRASH@")  # renewed < 1 min ago
    frees_at = datetime.fromisoformat(lease["spec"]["renewTime"]) + timedelta(
        seconds=lease["spec"]["leaseDurationSeconds"]
    )

    faults.overrides.clear()  # the rerun's helm is the real one
    rerun_run = _start(run_runbook, tmp_path, "GD-RERUN", **ttl).finish()
    elapsed = time.monotonic() - killed
    assert rerun_run.exit_status == 0, rerun_run.stderr[-3000:]
    assert "outcome: already_rolled_back" in rerun_run.stdout
    assert _rollbacks(bad_deploy) == [3]
    _assert_pods_run_the_good_image(bad_deploy)
    assert_lock_free(bad_deploy)

    # The rerun took the lock at once, while the crashed run's Lease was still live: its
    # holder's process was gone.
    rerun_events = Timeline(rerun_run.folder / "timeline.jsonl").events
    rerun = RunFacts.read(rerun_events)
    assert rerun.lock is not None
    assert rerun.lock.takeover == "gone"
    assert "no longer exists" in rerun.lock.reason
    taken_at = next(e.at for e in rerun_events if e.data.get("fact") == "lock_taken")
    assert taken_at < frees_at, (killed_at, taken_at, frees_at)
    # ... and finished before that Lease would have freed itself (the whole command, kernel
    # start and the notebook's rendering included, is printed for the record).
    assert rerun.finished is not None
    finished_at = next(e.at for e in rerun_events if e.data.get("fact") == "finished")
    assert finished_at < frees_at, (taken_at, finished_at, frees_at)
    print(f"rerun: lock taken {(taken_at - killed_at).total_seconds():.1f} s after the kill; "
          f"the whole command ended {elapsed:.1f} s after it")  # fmt: skip
    # ... and sealed the crashed run as what is so: its rollback was applied.
    crashed_facts = next(iter(_runs(crashed).values()))
    assert crashed_facts.outcome is Outcome.INTERRUPTED
    read = crashed_facts.read_back
    assert read is not None
    assert read.rollback_applied
    assert read.reason.startswith("helm rollback was started at ")
    assert "never reported back" in read.reason
    assert "the release is at revision 3 (v1.0.0, 'Rollback to 1'" in read.sentence
    record = json.loads((crashed / "record.json").read_text())
    assert record["outcome"] == "interrupted"
    assert record["rolled_back"] is True
    assert read.sentence in (crashed / "record.md").read_text()
    assert_evidence_verifies(crashed)
    (found,) = rerun.earlier_runs
    assert found.incident_id == "GD-CRASH"
    assert "the rollback was applied" in found.outcome
    # The rerun names the bad release from history, never the rollback revision as the bad one.
    rerun_record = json.loads((rerun_run.folder / "record.json").read_text())
    assert rerun_record["bad_revision"] == 2
    channel = tmp_path / "channel-GD-RERUN.txt"
    assert "from v1.0.0 to v1.0.0" not in (channel.read_text() if channel.exists() else "")
    assert_evidence_verifies(rerun_run.folder)


def test_the_wrong_cluster_is_refused_before_anything_is_read_or_changed(
    bad_deploy: TeamRelease, run_runbook: Runner, tmp_path: Path
) -> None:
    before = bad_deploy.snapshot()
    run = _start(run_runbook, tmp_path, "GD-WRONG", expected_cluster="kwok-production").finish()
    folder = run.folder
    assert run.exit_status == REFUSED
    assert f"refusing to act: kube context '{bad_deploy.sandbox.context}'" in run.stderr
    assert "is not the expected cluster 'kwok-production'" in run.stderr
    assert "outcome: refused" in run.stdout
    assert bad_deploy.snapshot() == before  # revisions, images, no Lease
    assert_lock_free(bad_deploy)
    assert not (folder / "kubernetes").exists()  # nothing read from a cluster not ours
    assert not (folder / "helm").exists()
    record = json.loads((folder / "record.json").read_text())
    assert (record["outcome"], record["rolled_back"]) == ("refused", False)
    assert "- Outcome: **refused**" in (folder / "record.md").read_text()
    assert_evidence_verifies(folder)
