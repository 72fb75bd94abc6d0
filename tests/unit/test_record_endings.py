"""The record tells what happened in every ending: never "rolled back" when nothing was."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clocks import ManualClock
from test_record import DEPLOY, _decided, _start, _step, samples

from runbook_lib.errors import LockHeld
from runbook_lib.evidence.incident_record import (
    IncidentRecord,
    Outcome,
    build_record,
    render_markdown,
)
from runbook_lib.record.facts import (
    Recovered,
    RollbackStarted,
    RolledBack,
    RolloutCompleted,
    TargetResolved,
    record_fact,
)
from runbook_lib.record.timeline import Timeline

BAD = TargetResolved(2, "v1.1.0", 1, "v1.0.0", already_rolled_back=False)


def _record(tl: Timeline, clock: ManualClock) -> tuple[str, IncidentRecord]:
    record = build_record(tl.events, samples(bad_from=12, bad_until=30), incident_id="INC-1",
                          release="app", namespace="default", now=clock.now)  # fmt: skip
    return render_markdown(record), record


def _new_run() -> tuple[Timeline, ManualClock]:
    clock = ManualClock(DEPLOY + timedelta(minutes=4))
    tl = Timeline(clock=clock)
    _start(tl)
    _step(tl, clock, "decide", 1, _decided(clock))
    return tl, clock


def _failing(tl: Timeline, step: str, err: BaseException) -> None:
    try:
        with tl.span(step):
            raise err
    except BaseException:
        pass


def test_refused_by_a_held_lock_says_nothing_was_rolled_back() -> None:
    tl, clock = _new_run()
    held = LockHeld("release 'app' is being rolled back by 'other'", holder="other")
    try:
        with tl.span("preflight"):
            record_fact(tl, "preflight", BAD, "revisions")
            raise held
    except LockHeld:
        pass
    text, record = _record(tl, clock)
    assert record.outcome is Outcome.REFUSED
    assert record.rolled_back is False
    assert "Nothing was rolled back: current v1.1.0 (revision 2)" in text
    assert "rolled back to" not in text


@pytest.mark.parametrize(
    ("started", "rolled_back", "says", "never_says"),
    [
        pytest.param(
            False, False, "- Nothing was rolled back", ("Bad release",), id="before-helm-started"
        ),
        # helm started (RollbackStarted) and was killed; the cluster could not be read back: it
        # may have applied the rollback, so the record never says "nothing was rolled back".
        pytest.param(
            True,
            None,
            "- Cluster: NOT KNOWN: helm rollback was started and did not end cleanly",
            ("Nothing was rolled back", "Bad release"),
            id="cut-off-and-not-read-back",
        ),
    ],
)
def test_helm_killed_is_a_failure_that_claims_no_rollback(
    started: bool, rolled_back: bool | None, says: str, never_says: tuple[str, ...]
) -> None:
    tl, clock = _new_run()
    _step(tl, clock, "preflight", 2, BAD)
    if started:
        record_fact(tl, "helm_rollback", RollbackStarted(2, 1, "helm rollback app 1"), "started")
    _failing(tl, "helm_rollback", RuntimeError("helm: signal: killed"))
    text, record = _record(tl, clock)
    assert record.outcome is Outcome.FAILED
    assert record.rolled_back is rolled_back
    assert says in text
    for words in never_says:
        assert words not in text


def test_interrupted_after_the_rollback_names_it() -> None:
    tl, clock = _new_run()
    _step(tl, clock, "preflight", 2, BAD)
    _step(tl, clock, "helm_rollback", 5, RolledBack(2, 1, "helm rollback app 1"))
    _failing(tl, "check_recovery", KeyboardInterrupt())
    text, record = _record(tl, clock)
    assert record.outcome is Outcome.INTERRUPTED
    assert "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)" in text


def test_rerun_that_finds_the_work_done_names_the_earlier_rollback() -> None:
    tl, clock = _new_run()
    _step(tl, clock, "preflight", 2, BAD)
    _step(tl, clock, "helm_rollback", 5, RolledBack(2, 1, "helm rollback app 1"))
    _failing(tl, "check_recovery", KeyboardInterrupt())
    # The same incident again: the release now runs revision 3, a rollback to revision 1.
    _start(tl)
    _step(tl, clock, "decide", 1, _decided(clock))
    done = TargetResolved(3, "v1.0.0", 1, "v1.0.0", already_rolled_back=True)
    _step(tl, clock, "preflight", 2, done)
    _step(tl, clock, "wait_for_rollout", 1, RolloutCompleted("app", clock.now))
    _step(tl, clock, "check_recovery", 1, Recovered(clock.now, clock.now, 0.0))
    text, record = _record(tl, clock)
    assert record.bad_version == "v1.1.0"
    assert record.good_version == "v1.0.0"
    assert record.rolled_back_by_this_run is False
    assert (
        "Rolled back by an earlier attempt of this incident: v1.1.0 (revision 2) to v1.0.0 "
        "(revision 1); this attempt changed nothing" in text
    )
    assert "v1.0.0 (revision 3); rolled back" not in text
