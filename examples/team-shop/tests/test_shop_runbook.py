"""The shop team's runbook, tested with the runbook pytest plugin only.

Its chart (storefront and order worker), its OpenTelemetry-named series and its copy of the
rollback notebook, which pauses the new checkout before the rollback (shop_steps.py).
"""

from __future__ import annotations

import json
from importlib import resources

from runbook_lib.core.exit_status import INCONCLUSIVE
from runbook_lib.core.verdict import Verdict
from runbook_lib.record.ending import Cluster
from runbook_lib.record.facts import Outcome
from runbook_sandbox.expect import (
    assert_evidence_verifies,
    assert_lock_free,
    assert_nothing_changed,
    assert_recovered,
    assert_rolled_back,
)


def test_a_bad_storefront_is_rolled_back_after_the_checkout_is_paused(
    release, deploy, break_release, wait_for_verdict, run_runbook, signing_key
):
    assert deploy("v1.1.0") == 2
    break_release(error_ratio=0.3)
    decision = wait_for_verdict(Verdict.ROLLBACK)
    assert [t.rule.value for t in decision.triggers] == ["error_rate"]

    # The evidence is signed as the on-call's laptop signs it (an SSH key).
    ending = run_runbook(signing_key=str(signing_key.key))

    assert_rolled_back(release, ending, to_revision=1)
    assert_recovered(ending)
    # Every file matches the manifest, and the manifest's signature is the team's key's.
    assert_evidence_verifies(run_runbook.last.folder, allowed_signers=signing_key.allowed_signers)
    assert_lock_free(release)
    # The team's own step ran, before helm rollback, and says so on the timeline.
    events = [json.loads(line) for line in
              (run_runbook.last.folder / "timeline.jsonl").read_text().splitlines()]  # fmt: skip
    steps = [e["step"] for e in events if e["kind"] == "step_end"]
    assert steps.index("pause_feature_flag") < steps.index("helm_rollback")
    paused = next(e for e in events if e["data"].get("fact") == "feature_flag_paused")
    assert paused["data"]["was"] == "on"


def test_with_prometheus_down_nothing_changes(release, deploy, faults, run_runbook):
    deploy("v1.1.0")
    faults.prometheus_down()
    before = release.snapshot()

    ending = run_runbook()

    # Nothing can be judged without metrics: inconclusive, stopped before any change.
    assert ending.verdict is Verdict.INCONCLUSIVE
    assert ending.outcome is Outcome.INCONCLUSIVE
    assert ending.exit_status == INCONCLUSIVE
    assert ending.cluster is Cluster.NOT_CHANGED
    assert_nothing_changed(release, before)
    assert_evidence_verifies(run_runbook.last.folder)


def test_a_lease_held_by_someone_else_refuses_the_rollback(release, deploy, faults, run_runbook):
    deploy("v1.1.0")
    holder = faults.lease_held_by_someone_else("alice@laptop/INC-7")
    before = release.snapshot()

    ending = run_runbook(manual_reason="game day: the on-call engineer rolls back")

    assert ending.outcome is Outcome.REFUSED
    assert ending.failure is not None
    assert ending.failure.error_type == "LockHeld"
    assert holder in ending.failure.message
    assert_nothing_changed(release, before)


def test_the_profile_judges_the_bundled_bad_deploy_replay(evaluate):
    replay = resources.files("runbook_lib.notebooks") / "data" / "bad_deploy.csv"
    with resources.as_file(replay) as path:
        decision = evaluate(replay_csv=str(path), deployed_at="2026-11-20T14:00:00+00:00")
    assert decision.verdict is Verdict.ROLLBACK
