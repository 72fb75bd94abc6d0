"""A rollback whose helm was cut off (killed, or stalled past its timeout) leaves the release
``pending-rollback``: the next run finishes it instead of refusing the release.

The cut-off is the plugin's fault ``faults.rollback_cut_off``, made with real Helm: a
ResourceQuota that allows no pod keeps ``helm rollback --wait`` waiting after it has written
the pending revision, and the helm process is then killed, as a crash or a timeout would leave
it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from runbook_lib.record.facts import Outcome
from runbook_sandbox.expect import assert_evidence_verifies, assert_lock_free, assert_rolled_back

MANUAL = "test: a rollback cut off mid-way is finished"


def test_a_rollback_cut_off_before_helm_marked_it_deployed_is_finished_by_the_next_run(
    release: Any, deploy: Callable[..., int], faults: Any, run_runbook: Any
) -> None:
    assert deploy("v1.1.0") == 2
    assert faults.rollback_cut_off(to_revision=1) == 3
    assert release.pending_revision() == 3
    assert "runbook-no-pods" not in release.kubectl("get", "quota", "-o", "name")

    ending = run_runbook(manual_reason=MANUAL)

    assert ending.outcome is Outcome.RECOVERED, ending.cluster_sentence
    assert_rolled_back(release, ending, to_revision=1)
    statuses = [(r["revision"], r["status"]) for r in release.history()]
    assert statuses[-2:] == [(3, "pending-rollback"), (4, "deployed")]
    assert release.pending_revision() is None
    assert run_runbook.last is not None
    folder = run_runbook.last.folder
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    said = [e["message"] for e in events if e["kind"] == "warning"]
    assert any("revision 3 is pending-rollback" in m and "finishes it" in m for m in said), said
    assert_evidence_verifies(folder)
    assert_lock_free(release)
