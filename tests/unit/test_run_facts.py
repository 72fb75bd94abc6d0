"""``RunFacts.read``: the one reader of a run's timeline, for every way a run can end.

Each timeline is built the way the steps write it (typed facts, step spans with error kinds),
then read back from its file, as the record, ``finish``, the post-mortem and the salvage path do.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clocks import TickingClock

from runbook_lib.record.facts import (
    Confirmed,
    Decided,
    Fact,
    Finished,
    NotRecovered,
    Outcome,
    Recovered,
    RolledBack,
    RolloutCompleted,
    RunFacts,
    TargetResolved,
    record_fact,
)
from runbook_lib.record.timeline import EventKind, Timeline

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
DEPLOYED = T0 - timedelta(minutes=30)


class Run:
    """A timeline written as the steps write it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.timeline = Timeline(path, clock=TickingClock(T0))

    def start(self, *, dry_run: bool = False) -> Run:
        self.timeline.record("start_run", EventKind.INFO, "run started", params={},
                             dry_run=dry_run)  # fmt: skip
        return self

    def fact(self, step: str, fact: Fact) -> Run:
        with self.timeline.span(step):
            record_fact(self.timeline, step, fact, f"{step}: {fact.NAME}")
        return self

    def fails(self, step: str, error: BaseException) -> Run:
        with pytest.raises(type(error)), self.timeline.span(step):
            raise error
        return self

    def decided(self, verdict: str, *, rollback: bool | None = None) -> Run:
        act = verdict == "rollback" if rollback is None else rollback
        return self.fact("decide", Decided(verdict, act, DEPLOYED, T0))

    def target(self, *, already: bool = False) -> Run:
        revision = 1 if already else 2
        return self.fact("preflight", TargetResolved(revision, "v1.1.0", 1, "v1.0.0", already))

    def rolled_back(self) -> Run:
        return self.fact("helm_rollback", RolledBack(2, 1, "helm rollback app 1"))

    def rolled_out(self) -> Run:
        return self.fact("wait_for_rollout", RolloutCompleted("app", T0))

    def recovered(self) -> Run:
        return self.fact("check_recovery", Recovered(T0, T0, 0.0))

    def read(self) -> RunFacts:
        # Read back from the file: what a later process (salvage, the record) sees.
        return RunFacts.read(Timeline(self.path).events)


def _healthy(run: Run) -> Run:
    return run.start().decided("no_rollback")


def _inconclusive(run: Run) -> Run:
    return run.start().decided("inconclusive", rollback=False)


def _declined(run: Run) -> Run:
    from runbook_lib.errors import PreconditionFailed

    run.start().decided("rollback").target()
    run.fact("confirm", Confirmed(False, "person at the prompt"))
    return run.fails("confirm", PreconditionFailed("confirm: rollback declined (answer 'no')"))


def _dry_run(run: Run) -> Run:
    run.start(dry_run=True).decided("rollback").target()
    run.fact("confirm", Confirmed(True, "dry run"))
    run.timeline.record("helm_rollback", EventKind.DRY_RUN, "would run: helm rollback app 1")
    return run


def _already_rolled_back(run: Run) -> Run:
    # An earlier attempt of the same incident rolled back, then crashed; this attempt finds
    # the release already on the target revision and only checks recovery.
    run.start().decided("rollback").target().rolled_back()
    run.fails("wait_for_rollout", RuntimeError("kernel died"))
    return run.start().decided("rollback").target(already=True).recovered()


def _recovered(run: Run) -> Run:
    return run.start().decided("rollback").target().rolled_back().rolled_out().recovered()


def _not_recovered(run: Run) -> Run:
    from runbook_lib.errors import VerificationFailed

    run.start().decided("rollback").target().rolled_back().rolled_out()
    run.fact("check_recovery", NotRecovered("5xx ratio still 4% after 120 s"))
    return run.fails("check_recovery", VerificationFailed("recovery not verified"))


def _refused(run: Run) -> Run:
    from runbook_lib.errors import WrongCluster

    run.start().decided("rollback")
    return run.fails("preflight", WrongCluster("context prod is not the expected kwok-runbook"))


def _failed(run: Run) -> Run:
    from runbook_lib.errors import CommandFailed

    run.start().decided("rollback").target()
    return run.fails("helm_rollback", CommandFailed("exit 1", command="helm rollback app 1"))


def _interrupted(run: Run) -> Run:
    run.start().decided("rollback").target().rolled_back()
    return run.fails("wait_for_rollout", KeyboardInterrupt())


def _incomplete(run: Run) -> Run:
    return run.start().decided("rollback").target()


ENDINGS: dict[Outcome, Callable[[Run], Run]] = {
    Outcome.RECOVERED: _recovered,
    Outcome.NO_ROLLBACK: _healthy,
    Outcome.INCONCLUSIVE: _inconclusive,
    Outcome.DECLINED: _declined,
    Outcome.DRY_RUN: _dry_run,
    Outcome.ALREADY_ROLLED_BACK: _already_rolled_back,
    Outcome.NOT_RECOVERED: _not_recovered,
    Outcome.REFUSED: _refused,
    Outcome.FAILED: _failed,
    Outcome.INTERRUPTED: _interrupted,
    Outcome.INCOMPLETE: _incomplete,
}

if "release_changed" in {o.value for o in Outcome}:  # being added alongside this test
    from runbook_lib.record import facts as _facts

    def _release_changed(run: Run) -> Run:
        _recovered(run)
        changed = _facts.ReleaseChanged(1, 3, "v1.2.0", T0)  # type: ignore[attr-defined]
        return run.fact("check_recovery", changed)

    ENDINGS[Outcome("release_changed")] = _release_changed


def test_every_outcome_has_a_case() -> None:
    # "assessed" ends the read-only assessment notebook, which keeps no timeline.
    assert set(ENDINGS) == set(Outcome) - {Outcome.ASSESSED}


@pytest.mark.parametrize("outcome", list(ENDINGS), ids=[o.value for o in ENDINGS])
def test_outcome_of_each_ending(tmp_path: Path, outcome: Outcome) -> None:
    facts = ENDINGS[outcome](Run(tmp_path / "timeline.jsonl")).read()
    assert facts.outcome is outcome
    unchanged = (Outcome.NO_ROLLBACK, Outcome.INCONCLUSIVE, Outcome.DECLINED, Outcome.DRY_RUN,
                 Outcome.REFUSED, Outcome.FAILED, Outcome.INCOMPLETE)  # fmt: skip
    changed = outcome not in unchanged
    assert facts.changed_cluster is changed
    # Steps after the decision run only when it says to act.
    rolling = outcome not in (Outcome.NO_ROLLBACK, Outcome.INCONCLUSIVE)
    assert facts.rolling_back is rolling


def test_already_rolled_back_names_the_earlier_attempts_rollback(tmp_path: Path) -> None:
    facts = _already_rolled_back(Run(tmp_path / "timeline.jsonl")).read()
    assert facts.rolled_back is None  # not this attempt ...
    assert facts.earlier_rollback == RolledBack(2, 1, "helm rollback app 1")  # ... an earlier one
    assert facts.failures == ()  # the earlier attempt's crash is not this attempt's
    assert facts.target is not None
    assert facts.target.already_rolled_back


def test_a_recorded_finish_is_the_outcome(tmp_path: Path) -> None:
    run = _recovered(Run(tmp_path / "timeline.jsonl"))
    run.fact("finish", Finished("recovered", 40.0, 100.0, 300.0))
    # A later failure (of a post-rollback step) does not rewrite how the rollback ended.
    run.fails("write_record", OSError("disk full"))
    facts = run.read()
    assert facts.outcome is Outcome.RECOVERED
    assert facts.finished == Finished("recovered", 40.0, 100.0, 300.0)


def test_times_from_the_decision(tmp_path: Path) -> None:
    facts = _recovered(Run(tmp_path / "timeline.jsonl")).read()
    assert facts.decided_at is not None
    assert facts.deployed_at == DEPLOYED
    assert facts.seconds_from_decision(facts.decided_at + timedelta(seconds=90)) == 90.0
    assert facts.seconds_from_decision(None) is None


def test_a_fact_from_another_version_is_ignored_not_guessed(tmp_path: Path) -> None:
    run = _healthy(Run(tmp_path / "timeline.jsonl"))
    run.timeline.record("decide", EventKind.FACT, "from the future", fact="decided", colour="red")
    run.timeline.record("decide", EventKind.FACT, "unknown", fact="teleported")
    facts = run.read()
    assert facts.outcome is Outcome.NO_ROLLBACK
    assert facts.decided is not None
    assert facts.decided.verdict == "no_rollback"
