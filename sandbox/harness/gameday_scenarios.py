"""The standard game-day scenarios, run by ``runbook gameday`` through the pytest plugin.

Each scenario is a test on a fresh release of the team's chart in its own namespace, with the
team's profile and notebook, and says what it expected and what it saw (``record_property``:
``expected``, ``seen``, ``evidence``), which the report shows one row each. The rollbacks not
about the decision are the on-call engineer's call (``manual_reason``), so only the bad-deploy
and healthy-deploy scenarios wait for the series.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.core.verdict import Verdict
from runbook_lib.record.ending import Cluster, Ending
from runbook_lib.record.facts import Outcome
from runbook_sandbox.expect import (
    assert_evidence_verifies,
    assert_lock_free,
    assert_nothing_changed,
    assert_recovered,
    assert_rolled_back,
)
from runbook_sandbox.pytest_plugin import Runner
from runbook_sandbox.team import RunResult, SigningKey, TeamRelease

Record = Callable[[str, object], None]
MANUAL = "game day: the on-call engineer rolls back"
BAD_VERSION = "v1.1.0"


def _ending(ending: Ending) -> str:
    failure = f" ({ending.failure.step}: {ending.failure.error_type})" if ending.failure else ""
    return f"outcome {ending.outcome}{failure}; cluster {ending.cluster_sentence}"


def _said(record: Record, expected: str, run: RunResult | None) -> None:
    record("expected", expected)
    if run is not None:
        record("seen", _ending(run.ending))
        record("evidence", str(run.folder))


@pytest.fixture
def bad_deploy(release: TeamRelease, deploy: Callable[..., int]) -> TeamRelease:
    """The fresh release with ``v1.1.0`` deployed over its good ``v1.0.0``: revision 2."""
    deploy(BAD_VERSION)
    return release


def _changes_nothing(
    release: TeamRelease,
    run_runbook: Runner,
    record: Record,
    expected: str,
    outcome: Outcome,
    **parameters: Any,
) -> Ending:
    """A run that must end with ``outcome`` and leave the release as it found it (revisions,
    images, Lease); the report says what was expected and seen."""
    before = release.snapshot()
    ending = run_runbook(**parameters)
    _said(record, expected, run_runbook.last)
    assert ending.outcome is outcome, _ending(ending)
    assert_nothing_changed(release, before)
    return ending


def test_bad_deploy_rolled_back(
    release: TeamRelease,
    deploy: Callable[..., int],
    break_release: Callable[..., str],
    wait_for_verdict: Callable[..., Any],
    run_runbook: Runner,
    signing_key: SigningKey,
    record_property: Record,
) -> None:
    record_property("expected", "the profile's rules fire; rolled back to revision 1, recovered")
    deploy(BAD_VERSION)
    break_release(error_ratio=0.3)
    wait_for_verdict(Verdict.ROLLBACK)
    ending = run_runbook(signing_key=str(signing_key.key))
    _said(
        record_property,
        "rolled back to revision 1, recovered, evidence sealed and signed, signature verified",
        run_runbook.last,
    )
    assert_rolled_back(release, ending, to_revision=1)
    assert_recovered(ending)
    assert_lock_free(release)
    assert run_runbook.last is not None
    assert ending.seal is not None, "the run's evidence was not sealed"
    assert ending.seal.signed, f"the run did not sign its manifest: {ending.seal.why}"
    assert_evidence_verifies(run_runbook.last.folder, allowed_signers=signing_key.allowed_signers)


def test_healthy_deploy_left_alone(
    release: TeamRelease,
    deploy: Callable[..., int],
    wait_for_verdict: Callable[..., Any],
    run_runbook: Runner,
    record_property: Record,
) -> None:
    deploy(BAD_VERSION.replace("1.1", "1.2"))
    wait_for_verdict(Verdict.NO_ROLLBACK)
    _changes_nothing(release, run_runbook, record_property, "no rollback; nothing changed",
                     Outcome.NO_ROLLBACK)  # fmt: skip


@pytest.mark.usefixtures("bad_deploy")
def test_metrics_down_changes_nothing(
    release: TeamRelease,
    faults: Any,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    faults.prometheus_down()
    ending = _changes_nothing(release, run_runbook, record_property,
                              "inconclusive (metrics unreachable); nothing changed",
                              Outcome.INCONCLUSIVE)  # fmt: skip
    assert ending.verdict is Verdict.INCONCLUSIVE, _ending(ending)
    assert ending.cluster is Cluster.NOT_CHANGED, _ending(ending)


@pytest.mark.usefixtures("bad_deploy")
def test_two_runs_at_once_roll_back_once(
    release: TeamRelease,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    started = [run_runbook.start(manual_reason=MANUAL) for _ in range(2)]
    runs = [s.finish() for s in started]
    record_property("expected", "one run rolls back (one helm rollback), the other is refused")
    record_property("seen", " | ".join(_ending(r.ending) for r in runs))
    record_property("evidence", " ".join(str(r.folder) for r in runs))
    outcomes = sorted(str(r.ending.outcome) for r in runs)
    assert outcomes == ["recovered", "refused"], outcomes
    assert release.rollbacks() == ["Rollback to 1"]
    assert_lock_free(release)


def _wait_for(path: Path, run: Any, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert run.proc.poll() is None, "the run ended before its helm rollback"
        assert time.monotonic() < deadline, f"no helm rollback within {timeout_s:.0f} s"
        time.sleep(0.2)


@pytest.mark.usefixtures("bad_deploy")
def test_killed_mid_rollback_rerun_finishes_within_a_minute(
    release: TeamRelease,
    faults: Any,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    faults.helm_hanging(applies_first=True, timeout="2m")
    crashed = run_runbook.start(manual_reason=MANUAL)
    _wait_for(faults.folder / "applied", crashed)
    crashed.crash()
    faults.overrides.clear()  # the rerun's helm is the real one
    began = time.monotonic()
    ending = run_runbook(manual_reason=MANUAL)
    took = time.monotonic() - began
    _said(record_property, "the rerun takes the lock at once and finishes in < 60 s",
          run_runbook.last)  # fmt: skip
    record_property("seen", f"{_ending(ending)}; rerun took {took:.0f} s")
    assert ending.outcome is Outcome.ALREADY_ROLLED_BACK, _ending(ending)
    assert took < 60, f"the rerun took {took:.0f} s"
    assert release.rollbacks() == ["Rollback to 1"]
    assert_lock_free(release)
    assert_evidence_verifies(crashed.folder)  # sealed by the rerun as what is so


@pytest.mark.usefixtures("bad_deploy")
def test_helm_cut_off_rerun_finishes_the_rollback(
    release: TeamRelease,
    faults: Any,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    pending = faults.rollback_cut_off(to_revision=1)
    ending = run_runbook(manual_reason=MANUAL)
    _said(record_property, f"helm left revision {pending} pending-rollback; the run finishes "
          "the rollback and recovers", run_runbook.last)  # fmt: skip
    assert ending.outcome is Outcome.RECOVERED, _ending(ending)
    assert_rolled_back(release, ending, to_revision=1)
    assert release.pending_revision() is None
    assert_lock_free(release)
    assert run_runbook.last is not None
    assert_evidence_verifies(run_runbook.last.folder)


@pytest.mark.usefixtures("bad_deploy")
def test_evidence_disk_full_refused_before_any_change(
    release: TeamRelease,
    faults: Any,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    faults.evidence_disk_full()
    before = release.snapshot()
    ending = run_runbook(manual_reason=MANUAL)
    _said(record_property, "refused before any change (no room for the evidence)",
          run_runbook.last)  # fmt: skip
    assert run_runbook.last is not None
    # The full disk goes with the test: its evidence is kept beside the other scenarios'.
    kept = run_runbook.out / run_runbook.last.folder.name
    shutil.copytree(run_runbook.last.folder, kept)
    record_property("evidence", str(kept))
    assert ending.outcome is Outcome.REFUSED, _ending(ending)
    assert ending.cluster is Cluster.NOT_CHANGED
    assert_nothing_changed(release, before)


@pytest.mark.usefixtures("bad_deploy")
def test_helm_hanging_killed_lock_freed(
    release: TeamRelease,
    faults: Any,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    faults.helm_hanging(timeout="3s")
    ending = run_runbook(manual_reason=MANUAL)
    _said(record_property, "helm killed after helm_timeout; the run fails, lock freed",
          run_runbook.last)  # fmt: skip
    assert ending.outcome is Outcome.FAILED, _ending(ending)
    assert ending.failure is not None
    assert ending.failure.step == "helm_rollback", _ending(ending)
    assert release.rollbacks() == []
    assert_lock_free(release)


@pytest.mark.usefixtures("bad_deploy")
def test_wrong_cluster_refused(
    release: TeamRelease,
    run_runbook: Runner,
    record_property: Record,
) -> None:
    _changes_nothing(release, run_runbook, record_property,
                     "refused: not the expected cluster; nothing changed", Outcome.REFUSED,
                     manual_reason=MANUAL, expected_cluster="kwok-production")  # fmt: skip
