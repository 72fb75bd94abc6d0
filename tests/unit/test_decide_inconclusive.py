"""``decide`` on an inconclusive verdict (DESIGN.md): ask by hand, stop headless, or roll back.

The replay's samples all precede the deploy, so no rule can be judged. The ``ask`` seam of
``start_run`` stands for the person at the notebook: ``None`` is a headless run (papermill,
cron), text is an answer. No cluster is needed: nothing after ``decide`` may reach for one
unless the run rolls back (the kubeconfig names no cluster, so any attempt fails).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from replay_files import write_replay

from runbook_lib import steps
from runbook_lib.core.decision import Verdict
from runbook_lib.errors import ParameterError
from runbook_lib.record.facts import Outcome
from runbook_lib.steps import Skipped

DEPLOYED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# 30 min of healthy samples, all before the deploy.
BEFORE_THE_DEPLOY = range(-1800, 0, 15)
INCONCLUSIVE_REASON = "skipped: stopped before any change, the verdict is inconclusive"
# The change steps: every step after the decision up to ``finish``.
AFTER_DECIDE = steps.ROLLBACK_STEPS[steps.ROLLBACK_STEPS.index(steps.decide) + 1 : -1]


class Asker:
    """The person at the notebook: answers each question with ``answer``, and remembers it."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.questions: list[str] = []

    def __call__(self, question: str) -> str | None:
        self.questions.append(question)
        return self.answer


def _start(tmp_path: Path, ask: Asker, **over: object) -> steps.RunContext:
    kubeconfig = tmp_path / "empty-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    params: dict[str, object] = {
        "expected_cluster": "kwok-runbook",
        "kubeconfig": str(kubeconfig),
        "replay_csv": str(
            write_replay(tmp_path / "replay.csv", DEPLOYED, BEFORE_THE_DEPLOY, 0.0005)
        ),
        "deployed_at": DEPLOYED.isoformat(),
        "output_dir": str(tmp_path / "out"),
        "incident_id": "inc-doubt",
    }
    shown: list[str] = []
    return steps.start_run(ask=ask, out=shown.append, environ={}, **(params | over))


def test_headless_run_stops_and_every_later_step_says_why(tmp_path: Path) -> None:
    ask = Asker(None)
    ctx = _start(tmp_path, ask)
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert made.decision.verdict is Verdict.INCONCLUSIVE
    assert not made.rollback
    assert made.override == ""
    assert len(ask.questions) == 1  # it tried to ask; nobody could answer
    assert "roll back anyway" in ask.questions[0].lower()
    assert "stopped before any change" in repr(made)

    results = [step(ctx) for step in AFTER_DECIDE]
    assert results == [Skipped(s.__name__, INCONCLUSIVE_REASON) for s in AFTER_DECIDE]
    finished = steps.finish(ctx)
    assert finished.outcome is Outcome.INCONCLUSIVE
    assert ctx.facts.outcome is Outcome.INCONCLUSIVE

    decided = ctx.facts.decided
    assert decided is not None
    assert (decided.verdict, decided.rollback, decided.manual_reason) == (
        "inconclusive",
        False,
        "",
    )
    # Which rules could not be judged, and why, is on the timeline.
    warnings = [
        e.message for e in ctx.timeline.events if e.step == "decide" and e.kind == "warning"
    ]
    stop = next(w for w in warnings if w.startswith("inconclusive and headless"))
    assert "error_rate" in stop
    assert "on_inconclusive=rollback" in stop
    not_judged = [r for r in decided.decision["rules"] if r["status"] == "not_evaluated"]
    assert {r["rule"] for r in not_judged} >= {"error_rate", "latency_p99"}
    assert all(r["reason"].startswith("not judged") for r in not_judged)


def test_person_says_yes_rolls_back_with_the_manual_reason_recorded(tmp_path: Path) -> None:
    ask = Asker("yes")
    ctx = _start(tmp_path, ask)
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert made.rollback
    assert made.decision.verdict is Verdict.ROLLBACK
    assert [str(t.rule) for t in made.decision.triggers] == ["manual"]
    assert made.override.startswith("rolled back by hand on an inconclusive verdict")
    decided = ctx.facts.decided
    assert decided is not None
    assert decided.rollback
    assert decided.manual_reason == made.override
    assert decided.override == made.override
    assert "error_rate" in decided.manual_reason  # names what could not be judged
    assert ctx.facts.rolling_back
    # The next step needs the cluster; the kubeconfig names none, so it fails before any change.
    with pytest.raises(ParameterError, match="kubeconfig"):
        steps.preflight(ctx)


@pytest.mark.parametrize("answer", ["no", "", "not sure"])
def test_any_other_answer_stops(tmp_path: Path, answer: str) -> None:
    ctx = _start(tmp_path, Asker(answer))
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert not made.rollback
    assert made.decision.verdict is Verdict.INCONCLUSIVE
    assert isinstance(steps.preflight(ctx), Skipped)
    assert ctx.facts.outcome is Outcome.INCONCLUSIVE
    assert any(
        f"answered {answer.strip()!r}" in e.message
        for e in ctx.timeline.events
        if e.step == "decide"
    )


def test_on_inconclusive_rollback_rolls_back_without_asking(tmp_path: Path) -> None:
    ask = Asker("no")  # would stop the run if it were asked
    ctx = _start(tmp_path, ask, on_inconclusive="rollback")
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert ask.questions == []
    assert made.rollback
    assert made.override.startswith("on_inconclusive=rollback")
    decided = ctx.facts.decided
    assert decided is not None
    assert decided.manual_reason == made.override
    with pytest.raises(ParameterError, match="kubeconfig"):
        steps.preflight(ctx)


def test_on_inconclusive_takes_only_its_two_values(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="on_inconclusive: expected one of stop, rollback"):
        _start(tmp_path, Asker(None), on_inconclusive="ask")


def test_a_judged_verdict_asks_nobody(tmp_path: Path) -> None:
    ask = Asker("yes")
    ctx = _start(tmp_path, ask, deployed_at=(DEPLOYED - timedelta(minutes=10)).isoformat())
    steps.assess(ctx)
    made = steps.decide(ctx)
    assert made.decision.verdict is Verdict.NO_ROLLBACK
    assert ask.questions == []
    assert steps.preflight(ctx) == Skipped("preflight", "skipped: no rollback needed")
