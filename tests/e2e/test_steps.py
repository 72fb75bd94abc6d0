"""The rollback steps end to end on the sandbox: happy path, idempotent re-run, dry run.

Each test starts from the sandbox's bad deploy (revision 1 = v1.0.0, revision 2 = v1.1.0,
schema at v1.1.0) and runs the steps exactly as the notebook does, one call each.
The helpers here are shared with ``test_faults.py`` and ``test_rbac.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sandbox_runs import lease_holder, sandbox_run

from runbook_lib import steps
from runbook_lib.errors import WrongCluster
from runbook_lib.record.facts import Outcome

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


GOOD_IMAGE = "registry.local/api:v1.0.0"
BAD_IMAGE = "registry.local/api:v1.1.0"


def run_params(sb: Sandbox, tmp_path: Path, **over: Any) -> dict[str, Any]:
    """Parameters for a run against the sandbox, scaled for tests (short steps and windows)."""
    params = sandbox_run(
        sb,
        tmp_path,
        "e2e-incident",
        step="5s",  # sample spacing, also the recovery check's
        recovery_poll="2s",
        notify_file=str(tmp_path / "channel.jsonl"),
        migrations_to_revert=1,
        lock_release_grace="5s",
    )
    return params | over


def start(sb: Sandbox, tmp_path: Path, **over: Any) -> steps.RunContext:
    return steps.start_run(**run_params(sb, tmp_path, **over))


def run_all(ctx: steps.RunContext) -> dict[str, Any]:
    """Every rollback step in the runbook's order; results by step name."""
    return {step.__name__: step(ctx) for step in steps.ROLLBACK_STEPS}


def history(sb: Sandbox) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(sb.helm("history", "app", "-o", "json"))
    return rows


def serving_pods(sb: Sandbox) -> dict[str, str]:
    """Pod name -> image of the non-terminating pods labelled app=api."""
    pods = json.loads(sb.kubectl("get", "pods", "-l", "app=api", "-o", "json"))["items"]
    return {
        p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def schema_version(sb: Sandbox) -> int:
    return int(sb.migrate("version").split()[0])


def events(ctx: steps.RunContext) -> list[dict[str, Any]]:
    assert ctx.timeline.path is not None
    return [json.loads(line) for line in ctx.timeline.path.read_text().splitlines()]


def snapshot(sb: Sandbox) -> dict[str, Any]:
    """What a run must not change when it is not supposed to change anything."""
    return {
        "history": [(r["revision"], r["status"], r["app_version"]) for r in history(sb)],
        "pods": serving_pods(sb),
        "lease": lease_holder(sb),
        "schema": schema_version(sb),
    }


def deploy_bad_version(sb: Sandbox) -> Sandbox:
    """Revision 1 v1.0.0, revision 2 v1.1.0 (the bad one) rolled out, schema for v1.1.0."""
    sb.reset()
    sb.deploy("v1.1.0")
    assert set(serving_pods(sb).values()) == {BAD_IMAGE}
    return sb


@pytest.fixture
def bad_deploy(sandbox: Sandbox) -> Sandbox:
    return deploy_bad_version(sandbox)


@pytest.mark.parametrize("helm", ["helm", "helm4"])
def test_rollback_restores_good_version_and_second_run_changes_nothing(
    bad_deploy: Sandbox, tmp_path: Path, helm: str
) -> None:
    sb = bad_deploy
    assert schema_version(sb) == 2
    ctx = start(sb, tmp_path, helm_binary=str(sb.bin_dir / helm))
    results = run_all(ctx)

    assert results["preflight"].target.startswith("1 ")
    assert results["helm_rollback"].action == "rolled back"
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}
    assert results["verify_image"].expected == (GOOD_IMAGE,)
    assert results["check_recovery"].recovered  # seen in the sandbox's Prometheus
    assert results["revert_migrations"].version_before == 2
    assert schema_version(sb) == 1
    assert lease_holder(sb) is None
    rows = history(sb)
    assert [r["app_version"] for r in rows] == ["v1.0.0", "v1.1.0", "v1.0.0"]
    assert rows[-1]["description"] == "Rollback to 1"
    channel = (tmp_path / "channel.jsonl").read_text()
    assert "Rolling back app from v1.1.0 to v1.0.0" in channel

    recorded = events(ctx)
    finish = next(e for e in recorded if e["data"].get("fact") == "finished")
    assert finish["data"]["outcome"] == "recovered"
    assert 0 < finish["data"]["decision_to_recovery_s"] <= finish["data"]["target_s"]
    assert results["finish"].outcome is Outcome.RECOVERED
    assert results["finish"].within_target is True
    assert ctx.facts.rolled_back is not None
    ended = {e["step"] for e in recorded if e["kind"] == "step_end"}
    assert ended >= {s.__name__ for s in steps.ROLLBACK_STEPS}

    # A second run (someone re-executes the notebook) finds the work done.
    again = start(
        sb, tmp_path, incident_id="e2e-incident-rerun", helm_binary=str(sb.bin_dir / helm)
    )
    second = run_all(again)
    assert second["helm_rollback"].action == "already rolled back"
    assert second["revert_migrations"].action == "skipped: already rolled back"
    assert second["finish"].outcome is Outcome.ALREADY_ROLLED_BACK
    assert again.facts.rolled_back is None
    rows = history(sb)
    assert len(rows) == 3
    assert sum(r["description"].startswith("Rollback to") for r in rows) == 1
    assert schema_version(sb) == 1
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}
    assert lease_holder(sb) is None


def test_dry_run_changes_nothing(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    before = snapshot(sb)
    ctx = start(sb, tmp_path, dry_run=True, confirm=False)
    results = run_all(ctx)

    assert snapshot(sb) == before
    assert results["helm_rollback"].action == "dry run"
    assert results["revert_migrations"].action == "dry run"
    assert results["revert_migrations"].version_before == 2
    assert "DRY RUN" in results["preflight"].render()
    assert not (tmp_path / "channel.jsonl").exists()
    would = {e["step"] for e in events(ctx) if e["kind"] == "dry_run"}
    assert would >= {
        "preflight", "notify", "helm_rollback", "wait_for_rollout", "verify_image",
        "check_recovery", "revert_migrations",
    }  # fmt: skip
    assert results["finish"].outcome is Outcome.DRY_RUN
    assert not ctx.facts.changed_cluster


def test_wrong_cluster_stops_before_any_call_that_changes_something(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    before = snapshot(sb)
    ctx = start(sb, tmp_path, expected_cluster="kwok-production")
    steps.assess(ctx)
    steps.decide(ctx)
    with pytest.raises(WrongCluster, match="kwok-production"):
        steps.preflight(ctx)
    assert snapshot(sb) == before
    assert any(e["kind"] == "step_failed" and e["step"] == "preflight" for e in events(ctx))
