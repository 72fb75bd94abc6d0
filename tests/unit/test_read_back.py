"""The cluster read back after ``helm rollback`` was cut off: one sentence that says what is so,
and the record, the summary and the facts that repeat it.

The sandbox side (a helm that applies the rollback then hangs until ``helm_timeout`` kills it;
a whole run killed mid-rollback) is in ``tests/e2e/test_game_day.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from runbook_lib.core.read_back import read_back
from runbook_lib.core.revisions import Revision
from runbook_lib.display.summary import Summary
from runbook_lib.evidence.incident_record import build_record, render_markdown
from runbook_lib.record.facts import (
    ClusterReadBack,
    Decided,
    Outcome,
    RollbackStarted,
    RunFacts,
    TargetResolved,
    record_fact,
)
from runbook_lib.record.timeline import EventKind, Timeline

T0 = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)
GOOD, BAD = "registry.local/api:v1.0.0", "registry.local/api:v1.1.0"
REASON = "helm rollback was started at 14:00:00 UTC and killed after 40 s"


def _rev(number: int, version: str, status: str, description: str, at_s: float) -> Revision:
    return Revision(number, status, f"app-{version}", version, T0 + timedelta(seconds=at_s),
                    description)  # fmt: skip


INSTALL = _rev(1, "v1.0.0", "superseded", "Install complete", -600)
UPGRADE = _rev(2, "v1.1.0", "superseded", "Upgrade complete", -300)


def _read(*history: Revision, pods: tuple[str, ...] = (GOOD, GOOD)) -> tuple[bool, int, str]:
    found = read_back(
        history, reason=REASON, started_from=2, target=1, pod_images=pods,
        expected_images=(GOOD,), helm_started_at=T0,
    )  # fmt: skip
    return found.rollback_applied, found.revision, found.sentence


def test_a_rollback_helm_applied_before_it_was_killed_is_read_back_as_applied() -> None:
    applied, revision, sentence = _read(
        INSTALL, UPGRADE, _rev(3, "v1.0.0", "deployed", "Rollback to 1", 2)
    )
    assert (applied, revision) == (True, 3)
    assert sentence == (
        f"{REASON}; the release is at revision 3 (v1.0.0, 'Rollback to 1', made at 14:00:02 UTC, "
        "2 s after helm started): the rollback was applied; its pods run "
        "registry.local/api:v1.0.0 (2) (the target's images)"
    )


def test_a_release_still_at_the_bad_revision_says_nothing_changed() -> None:
    deployed = _rev(2, "v1.1.0", "deployed", "Upgrade complete", -300)
    applied, revision, sentence = _read(INSTALL, deployed, pods=(BAD,))
    assert (applied, revision) == (False, 2)
    assert "the release is still at revision 2 (v1.1.0, 'Upgrade complete'" in sentence
    assert sentence.endswith(
        ": nothing changed; its pods run registry.local/api:v1.1.0 (the target runs "
        "registry.local/api:v1.0.0)"
    )


@pytest.mark.parametrize(
    ("later", "applied", "words"),
    [
        pytest.param(
            [_rev(3, "v1.0.0", "pending-rollback", "Rollback to 1", 1)], False,
            "still pending-rollback: helm was cut off while applying the rollback",
            id="cut-off-mid-apply",
        ),
        pytest.param(
            [_rev(3, "v1.0.0", "failed", "Rollback to 1", 1)], False,
            "status failed: the rollback failed", id="failed",
        ),
        pytest.param(
            [_rev(3, "v1.0.0", "superseded", "Rollback to 1", 1),
             _rev(4, "v1.1.0", "deployed", "Upgrade complete", 9)], True,
            "the rollback was applied as revision 3, and the release changed again since: it is "
            "at revision 4",
            id="applied-then-redeployed",
        ),
        pytest.param(
            [_rev(3, "v1.2.0", "deployed", "Upgrade complete", 5)], False,
            "it changed since revision 2, but not by this rollback", id="someone-else",
        ),
    ],
)  # fmt: skip
def test_every_other_state_is_named_as_it_is(
    later: list[Revision], applied: bool, words: str
) -> None:
    got_applied, _, sentence = _read(INSTALL, UPGRADE, *later)
    assert got_applied is applied
    assert words in sentence
    assert sentence.startswith(REASON + "; ")


def test_no_pods_and_no_history_are_said_too() -> None:
    found = read_back([], reason=REASON, started_from=None, target=None, pod_images=())
    assert not found.rollback_applied
    assert "helm history is empty" in found.sentence
    assert "no pod of the release is running" in found.sentence


def _cut_off_run(tmp_path_timeline: Timeline, *, applied: bool) -> Timeline:
    tl = tmp_path_timeline
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    record_fact(tl, "decide", Decided("rollback", True, T0, T0), "verdict rollback")
    record_fact(tl, "preflight", TargetResolved(2, "v1.1.0", 1, "v1.0.0", False, (GOOD,), 2,
                                                "v1.1.0"), "revisions")  # fmt: skip
    record_fact(tl, "helm_rollback", RollbackStarted(2, 1, "helm rollback app 1"), "running")
    history = [INSTALL, UPGRADE]
    if applied:
        history.append(_rev(3, "v1.0.0", "deployed", "Rollback to 1", 2))
    found = read_back(history, reason=REASON, started_from=2, target=1,
                      pod_images=(GOOD,) if applied else (BAD,), expected_images=(GOOD,),
                      helm_started_at=T0)  # fmt: skip
    fact = ClusterReadBack.of(found, reason=REASON, read_at=T0 + timedelta(seconds=41))
    record_fact(tl, "helm_rollback", fact, found.sentence)
    tl.record("helm_rollback", EventKind.STEP_FAILED, "helm_rollback failed: CommandFailed",
              error_type="CommandFailed", error_kind="other")  # fmt: skip
    return tl


@pytest.mark.parametrize("applied", [True, False], ids=["applied", "nothing-changed"])
def test_the_record_and_the_summary_say_what_the_read_back_says(applied: bool) -> None:
    tl = _cut_off_run(Timeline(clock=lambda: T0, run="run-1"), applied=applied)
    facts = RunFacts.read(tl.events)
    assert facts.read_back is not None
    assert facts.rollback_applied is applied
    assert facts.changed_cluster is applied
    assert not facts.cut_off  # read back: no one needs to read it again
    assert facts.outcome is Outcome.FAILED
    record = build_record(
        tl.events, pd.DataFrame(), incident_id="inc", release="app", namespace="default",
        now=T0 + timedelta(minutes=1),
    )  # fmt: skip
    assert record.rolled_back is applied
    assert record.rolled_back_by_this_run is applied
    assert (record.bad_revision, record.good_revision) == (2, 1)
    md = render_markdown(record)
    sentence = facts.read_back.sentence
    assert f"- Cluster read back at 2026-12-01 14:00:41 UTC: {sentence}" in md
    if applied:
        assert "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)" in md
        assert "Nothing was rolled back" not in md
    else:
        assert "- Rollback not applied (the cluster read back below): v1.1.0 (revision 2)" in md
    assert record.to_json_dict()["cluster_read_back"]["sentence"] == sentence
    summary = Summary("Rollback")
    summary.note_facts(facts)
    assert f"cluster: {sentence}" in summary.text()


def test_a_rollback_that_started_and_never_reported_back_is_cut_off() -> None:
    tl = Timeline(clock=lambda: T0, run="run-1")
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    record_fact(tl, "helm_rollback", RollbackStarted(2, 1, "helm rollback app 1"), "running")
    facts = RunFacts.read(tl.events)
    assert facts.cut_off
    assert not facts.rollback_applied  # not known: only a read-back may say so
