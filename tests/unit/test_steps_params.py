"""Parameter validation and the incident timeline of ``start_run`` (no cluster needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.errors import ParameterError
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps import Settings, start_run

SECRET_HOOK = "https://chat.example.test/services/T0AAA/B0BBB/s3cr3tW3bh00kT0ken"


def _base(tmp_path: Path, **over: object) -> dict[str, object]:
    params: dict[str, object] = {
        "expected_cluster": "kwok-runbook",
        "prometheus_url": "http://127.0.0.1:19090",
        "output_dir": str(tmp_path),
        "incident_id": "inc-1",
    }
    params.update(over)
    return params


def _fixed_clock() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_defaults_are_the_runbooks_values() -> None:
    s = Settings()
    # An empty pod_selector means the Deployment's own selector.
    assert (s.target.release, s.target.deployment, s.target.pod_selector) == ("app", "app", "")
    assert s.acting.rollout_timeout == 300.0  # kubectl rollout status --timeout=5m
    assert s.acting.target == 300.0  # "under 5 minutes from decision"
    assert s.migrations.migrate_command.format(n=1) == "./migrate down 1"
    assert s.migrations.migrations_to_revert == 0
    assert s.recovery.recovery_error_ratio == 0.001
    assert s.recovery.recovery_within == 120.0


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        start_run(
            release="App_Prod",
            namespace="Default",
            pod_selector="app",
            expected_cluster="",
            prometheus_url=None,
            replay_csv=None,
            migrations_to_revert=-1,
            rollout_timeout="0s",
            sustain=120,
            request_rate_rps=-1,
            postmortem_organizer="oncall@example.com\r\nATTACH:https://evil.example/x",
            deployed_at="2026-01-01T10:00:00",
            output_dir=str(tmp_path),
            colour="blue",
        )
    named = {problem.split(":")[0] for problem in caught.value.problems}
    assert named == {
        "release",
        "namespace",
        "pod_selector",
        "expected_cluster",
        "prometheus_url / replay_csv",
        "migrations_to_revert",
        "rollout_timeout",
        "sustain",
        "request_rate_rps",
        "postmortem_organizer",
        "deployed_at",
        "colour",
    }
    # Nothing was written: validation comes before the timeline.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("release", "a" * 54, id="release-too-long"),
        pytest.param("release", "app;rm -rf /", id="release-shell"),
        pytest.param("namespace", "-default", id="namespace-leading-dash"),
        pytest.param("pod_selector", "app=api,tier", id="selector-half-term"),
        pytest.param("pod_selector", "app=$(whoami)", id="selector-injection"),
        pytest.param("migrator_selector", "", id="migrator-empty"),
        pytest.param("deployment", "App", id="deployment-uppercase"),
        pytest.param("incident_id", "../../etc", id="incident-path-traversal"),
        pytest.param("migrate_command", "./migrate down {count}", id="bad-placeholder"),
        pytest.param("manual_reason", "  ", id="blank-reason"),
        pytest.param("dry_run", "yes", id="dry-run-not-bool"),
        pytest.param("prometheus_selector", "job=api", id="selector-unquoted-promql"),
    ],
)
def test_bad_value_is_named(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(ParameterError) as caught:
        start_run(**_base(tmp_path, **{name: value}))
    assert [p.split(":")[0] for p in caught.value.problems] == [name]


def test_rule_problems_are_listed_with_the_others(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        start_run(**_base(tmp_path, release="BAD", error_ratio="200%", recovery_consecutive=0))
    fields = {p.split(":")[0] for p in caught.value.problems}
    assert fields == {"release", "error_ratio", "recovery_consecutive"}


def test_webhook_problem_does_not_echo_the_secret(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as caught:
        start_run(**_base(tmp_path, slack_webhook_url="ftp://hooks/s3cr3tW3bh00k"))
    assert "s3cr3tW3bh00k" not in str(caught.value)
    assert "slack_webhook_url" in str(caught.value)


def test_timeline_is_created_under_incident_and_redacts_the_webhook(tmp_path: Path) -> None:
    ctx = start_run(
        **_base(tmp_path, slack_webhook_url=SECRET_HOOK),
        clock=_fixed_clock,
        environ={},
    )
    ctx.timeline.record(
        "notify", EventKind.WARNING, f"post to {SECRET_HOOK} failed", url=SECRET_HOOK
    )
    path = tmp_path / "inc-1" / "timeline.jsonl"
    text = path.read_text()
    assert "s3cr3tW3bh00kT0ken" not in text
    first = json.loads(text.splitlines()[0])
    assert first["step"] == "start_run"
    assert first["at"] == "2026-01-02T03:04:05+00:00"
    assert first["data"]["params"]["release"] == "app"


def test_default_incident_id_is_release_and_utc_time(tmp_path: Path) -> None:
    ctx = start_run(**_base(tmp_path, incident_id=""), clock=_fixed_clock, environ={})
    assert ctx.settings.records.incident_id == "rollback-app-20260102T030405Z"
    assert ctx.timeline.path == tmp_path / "rollback-app-20260102T030405Z" / "timeline.jsonl"
    assert ctx.settings.lock.lock_holder.startswith("rollback-app-20260102T030405Z@")


def test_time_parameters_accept_iso_text(tmp_path: Path) -> None:
    ctx = start_run(**_base(tmp_path, deployed_at="2026-01-01T10:00:00Z"), environ={})
    assert ctx.settings.sources.deployed_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
