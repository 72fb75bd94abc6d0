"""How a run is told: the headline of its ending and what happened, as sentences from facts.

The timelines are written as the steps write them (``test_run_facts.Run``); the record, the
post-mortem draft and the banner all take their words from these two functions.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_run_facts import ENDINGS, T0, Run

from runbook_lib.record.ending import Ending
from runbook_lib.record.facts import Decided, Outcome, Recovered, record_fact
from runbook_lib.record.story import Tone, headline, story
from runbook_lib.record.timeline import Timeline

HEADLINES = {
    Outcome.RECOVERED: ("Rolled back, recovered", Tone.GOOD),
    Outcome.NOT_RECOVERED: ("Rolled back, NOT recovered: escalated", Tone.BAD),
    Outcome.NO_ROLLBACK: ("Not rolled back: healthy", Tone.GOOD),
    Outcome.INCONCLUSIVE: ("Not rolled back: inconclusive, the data cannot be judged", Tone.WARN),
    Outcome.DECLINED: ("Not rolled back: declined at the prompt", Tone.WARN),
    Outcome.ALREADY_ROLLED_BACK: ("Already rolled back: nothing to do", Tone.GOOD),
    Outcome.REFUSED: ("Refused in preflight (WrongCluster): nothing changed", Tone.WARN),
    Outcome.FAILED: ("Failed in helm_rollback (CommandFailed): nothing changed", Tone.BAD),
    Outcome.INTERRUPTED: (
        "Rolled back, then interrupted in wait_for_rollout (KeyboardInterrupt)", Tone.BAD
    ),
    Outcome.INCOMPLETE: ("Stopped without an ending: nothing changed", Tone.BAD),
}  # fmt: skip


@pytest.mark.parametrize("outcome", list(HEADLINES), ids=[o.value for o in HEADLINES])
def test_the_headline_says_what_happened(tmp_path: Path, outcome: Outcome) -> None:
    run = ENDINGS[outcome](Run(tmp_path / "timeline.jsonl"))
    said = headline(Ending.read(run.read()))
    assert (said.words, said.tone) == HEADLINES[outcome]


def test_a_dry_run_says_its_verdict_and_that_nothing_changed(tmp_path: Path) -> None:
    run = ENDINGS[Outcome.DRY_RUN](Run(tmp_path / "timeline.jsonl"))
    said = headline(Ending.read(run.read()))
    assert said.words == "Dry run (verdict: roll back): nothing changed"


def test_what_happened_is_sentences_from_the_facts_in_time_order(tmp_path: Path) -> None:
    run = Run(tmp_path / "timeline.jsonl").start()
    fired = T0 - timedelta(minutes=2)
    trigger = {"rule": "error_rate", "metric": "error_ratio", "peak": 0.0579452541770352,
               "threshold": 0.05, "fired_at": fired.isoformat()}  # fmt: skip
    decided = Decided("rollback", True, T0 - timedelta(minutes=5), T0, {"triggers": [trigger]})
    run.fact("decide", decided).target().rolled_back().rolled_out()
    back = T0 + timedelta(minutes=3, seconds=10)
    with run.timeline.span("check_recovery"):
        record_fact(run.timeline, "check_recovery", Recovered(back, back, 0.0004), "recovered")
    events = Timeline(run.path).events
    told = story(events, recovery_threshold=0.05)
    sentences = [m.sentence for m in told]
    assert sentences[0] == "Rule error_rate fired on error_ratio: peak 5.79 %, threshold 5 %"
    assert "Rolled back revision 2 -> 1" in sentences
    assert "Rollout of deployment/app complete" in sentences
    assert sentences[-1] == "5xx ratio back under 5 % (last sample 0.04 %)"
    assert told[-1].at == back
    assert [m.at for m in told] == sorted(m.at for m in told)
    # A step's start and end are not news.
    assert not any(s.endswith(("finished", "started")) for s in sentences if s != "Run started")


def test_a_failure_is_told_with_its_error(tmp_path: Path) -> None:
    run = ENDINGS[Outcome.FAILED](Run(tmp_path / "timeline.jsonl"))
    told = [m.sentence for m in story(Timeline(run.path).events)]
    assert told[-1].startswith("helm_rollback failed: CommandFailed: exit 1")
