"""A rollback whose helm was cut off (killed, or stalled past its timeout) leaves the release
``pending-rollback``: the next run finishes it instead of refusing the release.

The cut-off is made with real Helm: a ResourceQuota that allows no pod keeps ``helm rollback
--wait`` waiting after it has written the pending revision, and the helm process is then
killed, as a crash or a timeout would leave it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from sandbox_waits import wait_until

from runbook_lib.record.facts import Outcome
from runbook_sandbox.expect import assert_evidence_verifies, assert_lock_free, assert_rolled_back

MANUAL = "test: a rollback cut off mid-way is finished"


def _newest(release: Any) -> dict[str, Any]:
    return max(release.history(), key=lambda r: r["revision"])


def _cut_off_rollback(release: Any, to_revision: int) -> None:
    """``helm rollback --wait`` to ``to_revision``, killed once Helm wrote the pending revision."""
    release.kubectl("create", "quota", "no-pods", "--hard=pods=0")
    hard = ("get", "quota", "no-pods", "-o", "jsonpath={.status.hard.pods}")
    wait_until(lambda: release.kubectl(*hard) == "0", "quota enforced", 60)
    sandbox = release.sandbox
    argv = [str(sandbox.bin_dir / "helm"), "--kube-context", sandbox.context,
            "--namespace", release.namespace, "rollback", release.name, str(to_revision),
            "--wait", "--timeout", "5m"]  # fmt: skip
    helm = subprocess.Popen(argv, env=sandbox.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        pending = "pending-rollback"
        wait_until(lambda: _newest(release)["status"] == pending, "pending-rollback revision", 60)
        assert helm.poll() is None, "helm ended by itself: the rollout was not held back"
    finally:
        helm.kill()
        helm.wait(timeout=30)
    release.kubectl("delete", "quota", "no-pods")


def test_a_rollback_cut_off_before_helm_marked_it_deployed_is_finished_by_the_next_run(
    release: Any, deploy: Callable[..., int], run_runbook: Any
) -> None:
    assert deploy("v1.1.0") == 2
    _cut_off_rollback(release, to_revision=1)
    assert [r["status"] for r in release.history()][-1] == "pending-rollback"

    ending = run_runbook(manual_reason=MANUAL)

    assert ending.outcome is Outcome.RECOVERED, ending.cluster_sentence
    assert_rolled_back(release, ending, to_revision=1)
    statuses = [(r["revision"], r["status"]) for r in release.history()]
    assert statuses[-2:] == [(3, "pending-rollback"), (4, "deployed")]
    assert run_runbook.last is not None
    folder = run_runbook.last.folder
    events = [json.loads(line) for line in (folder / "timeline.jsonl").read_text().splitlines()]
    said = [e["message"] for e in events if e["kind"] == "warning"]
    assert any("revision 3 is pending-rollback" in m and "finishes it" in m for m in said), said
    assert_evidence_verifies(folder)
    assert_lock_free(release)
