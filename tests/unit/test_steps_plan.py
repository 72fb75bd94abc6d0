"""The plan preflight shows, and the confirm gate (pure values; no cluster needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helm_history import revision
from offline_run import offline_run

from runbook_lib.core.revisions import RollbackTarget
from runbook_lib.core.settings import Entry, from_flat
from runbook_lib.errors import PreconditionFailed
from runbook_lib.record.facts import Outcome
from runbook_lib.steps import confirm
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.plan import build_plan, rollout_message

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
GOOD = revision(1, "v1.0.0", "superseded", "Install complete", at=T0)
BAD = revision(2, "v1.1.0", "deployed", "Upgrade complete", at=T0)
COMMAND = "helm rollback app 1 --timeout 120s --namespace default --kube-context kwok-runbook"


def _plan(**over: object) -> str:
    settings = from_flat(
        {"expected_cluster": "kwok-runbook", "replay_csv": "x.csv", "incident_id": "inc-9"} | over,
        used_by=Entry.ROLLBACK,
    )
    return build_plan(
        settings,
        cluster="kwok-runbook",
        server="https://127.0.0.1:19043",
        target=RollbackTarget(current=BAD, target=GOOD),
        expected_images=("registry.local/api:v1.0.0",),
        notifiers=("slack", "console"),
        rollback_command=COMMAND,
        pod_selector="app=api",
    ).render()


def test_plan_names_cluster_revisions_commands_and_images() -> None:
    text = _plan()
    assert "kwok-runbook (https://127.0.0.1:19043)" in text
    assert "current:  revision 2 (app-0.1.0, v1.1.0)" in text
    assert "target:   revision 1 (app-0.1.0, v1.0.0)" in text
    assert COMMAND in text
    assert "registry.local/api:v1.0.0" in text
    assert "verify pods app=api run exactly" in text
    assert "migrations: none" in text
    assert "DRY RUN" not in text


def test_plan_gives_its_waits_and_limits_with_units() -> None:
    text = _plan()  # the defaults: ttl 60s, rollout 5m, recovery 0.1% within 2m, target 5m
    assert "(ttl 1 min)" in text
    assert "timeout 5 min)" in text
    assert "check 5xx ratio < 0.1 % within 2 min for 2 consecutive samples" in text
    assert "against 5 min" in text
    assert "0.001" not in text


def test_plan_shows_the_migration_command_when_asked() -> None:
    text = _plan(migrations_to_revert=2, migrator_selector="app=migrator")
    assert "kubectl exec <pod app=migrator> -- ./migrate down 2" in text


def test_dry_run_plan_says_nothing_will_change() -> None:
    assert "DRY RUN: nothing will change" in _plan(dry_run=True)


def test_notification_text_names_both_versions() -> None:
    settings = from_flat(
        {"expected_cluster": "c", "replay_csv": "x.csv", "incident_id": "i"},
        used_by=Entry.ROLLBACK,
    )
    message = rollout_message(settings, RollbackTarget(current=BAD, target=GOOD))
    assert message.startswith("Rolling back app from v1.1.0 to v1.0.0")


def _ctx_with_plan(tmp_path: Path, answer: str | None, **over: object) -> RunContext:
    ctx = offline_run(tmp_path, "inc-c", ask=lambda _question: answer, **over)
    ctx.live.plan = build_plan(
        ctx.settings,
        cluster="kwok-runbook",
        server="https://127.0.0.1:19043",
        target=RollbackTarget(current=BAD, target=GOOD),
        expected_images=("registry.local/api:v1.0.0",),
        notifiers=(),
        rollback_command=COMMAND,
        pod_selector="app=api",
    )
    return ctx


def test_headless_run_without_confirm_stops_before_any_change(tmp_path: Path) -> None:
    ctx = _ctx_with_plan(tmp_path, answer=None)
    with pytest.raises(PreconditionFailed, match="confirm=True"):
        confirm(ctx)
    assert ctx.facts.confirmed is None
    assert ctx.timeline.last("confirm", "step_failed") is not None
    assert ctx.facts.outcome is Outcome.REFUSED


@pytest.mark.parametrize(
    ("answer", "over", "proceeds"),
    [
        pytest.param("yes", {}, True, id="person-says-yes"),
        pytest.param("no", {}, False, id="person-says-no"),
        pytest.param(None, {"confirm": True}, True, id="confirm-parameter"),
        pytest.param(None, {"dry_run": True}, True, id="dry-run"),
    ],
)
def test_confirm_gate(
    tmp_path: Path, answer: str | None, over: dict[str, bool], proceeds: bool
) -> None:
    ctx = _ctx_with_plan(tmp_path, answer, **over)
    if proceeds:
        assert confirm(ctx).proceed
        confirmed = ctx.facts.confirmed
        assert confirmed is not None
        assert confirmed.go_ahead
    else:
        with pytest.raises(PreconditionFailed, match="declined"):
            confirm(ctx)
        confirmed = ctx.facts.confirmed
        assert confirmed is not None
        assert not confirmed.go_ahead
        assert ctx.facts.outcome is Outcome.DECLINED
