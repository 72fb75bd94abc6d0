"""The receiver's policy: who may roll back without a person, the breaker, the command."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from runbook_lib.core.alert_policy import (
    Action,
    Breaker,
    Policy,
    breaker_state,
    plan_run,
    rollback_command,
)
from runbook_lib.errors import ParameterError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = yaml.safe_load(
    """
parameters:
  expected_cluster: kwok-runbook
  prometheus_url: http://127.0.0.1:19090
  slack_webhook_url: https://hooks.slack.example/T0/B0/secret
releases:
  - {release: app, namespace: default, auto_rollback: true}
  - {release: "shop-*", namespace: prod, auto_rollback: false, parameters: {deployment: shop}}
circuit_breaker: {max_rollbacks: 2, period: 1h}
notify: {notify_file: /tmp/n.log, console: false}
"""
)


def test_an_allowed_release_rolls_back_with_confirm() -> None:
    plan = plan_run(Policy.from_mapping(POLICY), "app", "default", auto_rollbacks=[], now=NOW)
    assert plan.action is Action.AUTO_ROLLBACK
    assert plan.parameters["confirm"] is True
    assert "dry_run" not in plan.parameters
    assert plan.parameters["expected_cluster"] == "kwok-runbook"
    assert (plan.parameters["release"], plan.parameters["namespace"]) == ("app", "default")


def test_a_release_the_policy_does_not_allow_is_assessed_in_a_dry_run() -> None:
    plan = plan_run(Policy.from_mapping(POLICY), "shop-eu", "prod", auto_rollbacks=[], now=NOW)
    assert plan.action is Action.ASSESS_AND_NOTIFY
    assert plan.parameters["dry_run"] is True
    assert plan.parameters["deployment"] == "shop"
    assert "does not allow automatic rollback of shop-eu in prod" in plan.reason


def test_a_release_in_no_entry_is_only_notified() -> None:
    # Same name, other namespace: the entry does not match.
    plan = plan_run(Policy.from_mapping(POLICY), "app", "staging", auto_rollbacks=[], now=NOW)
    assert plan.action is Action.NOTIFY_ONLY
    assert "in no entry of the policy" in plan.reason


@pytest.mark.parametrize(
    ("ago_minutes", "open_"),
    [
        ([10, 20], True),  # two in the last hour: the limit is reached
        ([10], False),
        ([10, 60], False),  # exactly one period ago no longer counts
        ([10, 59], True),
        ([10, -5], False),  # a time after now (clock skew) does not count
    ],
)
def test_the_breaker_counts_automatic_rollbacks_within_the_period(
    ago_minutes: list[int], open_: bool
) -> None:
    times = [NOW - timedelta(minutes=m) for m in ago_minutes]
    reason = breaker_state(Breaker(max_rollbacks=2, period=3600.0), times, NOW)
    assert bool(reason) is open_
    plan = plan_run(Policy.from_mapping(POLICY), "app", "default", auto_rollbacks=times, now=NOW)
    assert (plan.action is Action.ASSESS_AND_NOTIFY) is open_
    if open_:
        assert plan.reason.startswith("circuit breaker open: 2 automatic rollback(s)")


def test_the_command_for_a_person_is_exact_and_leaves_secrets_out() -> None:
    plan = plan_run(Policy.from_mapping(POLICY), "shop-eu", "prod", auto_rollbacks=[], now=NOW)
    command = rollback_command({**plan.parameters, "incident_id": "x"})
    words = shlex.split(command)
    assert words[:3] == ["runbook", "run", "rollback"]
    pairs = dict(zip(words[4::3], words[5::3], strict=True))
    assert pairs["release"] == "shop-eu"
    assert pairs["confirm"] == "True"
    assert pairs["slack_webhook_url"] == "<set it>"
    assert "dry_run" not in pairs
    assert "incident_id" not in pairs
    assert "secret" not in command


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ({"releses": []}, "policy.releses: unknown key"),
        ({"parameters": {"confirm": True}}, "policy.parameters.confirm: set by the receiver"),
        ({"parameters": {"sustain": "90"}}, "policy.parameters.sustain: '90' has no unit"),
        ({"parameters": {"colour": "red"}}, "policy.parameters.colour: not a parameter"),
        ({"releases": [{"namespace": "x"}]}, "policy.releases[0].release: expected a name"),
        ({"releases": [{"release": "a", "auto_rollback": "yes"}]}, "auto_rollback: expected true"),
        ({"circuit_breaker": {"max_rollbacks": -1}}, "max_rollbacks: expected a count"),
        ({"circuit_breaker": {"period": "60"}}, "circuit_breaker.period: '60' has no unit"),
        ({"notify": {"pager": "x"}}, "policy.notify.pager: unknown key"),
        ([1, 2], "policy: expected a mapping"),
    ],
)
def test_a_bad_policy_names_each_problem(policy: object, problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        Policy.from_mapping(policy)
    assert problem in str(caught.value)


def test_an_empty_policy_allows_nothing() -> None:
    plan = plan_run(Policy.from_mapping(None), "app", "default", auto_rollbacks=[], now=NOW)
    assert plan.action is Action.NOTIFY_ONLY
