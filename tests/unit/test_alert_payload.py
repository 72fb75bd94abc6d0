"""Alertmanager's webhook payload (version 4): what the receiver reads and what it refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from alert_payloads import alert, payload

from runbook_lib.core.alerts import parse_webhook
from runbook_lib.errors import ParameterError


def test_a_firing_alert_names_its_release_and_when_it_started() -> None:
    notification = parse_webhook(json.dumps(payload(alert("shop", "prod"))).encode())
    (first,) = notification.alerts
    assert (first.release, first.namespace, first.name) == ("shop", "prod", "RunbookErrorRatioHigh")
    # Alertmanager's nanosecond times are read exactly; the zero endsAt means "not ended".
    assert first.starts_at.isoformat().startswith("2026-12-01T12:00:00.123456")
    assert first.starts_at.astimezone(UTC) <= datetime(2026, 12, 1, 12, 0, 0, 123457, tzinfo=UTC)
    assert first.ends_at is None
    assert notification.receiver == "runbook"


def test_the_same_alert_delivered_again_has_the_same_key_and_a_new_episode_another() -> None:
    once = parse_webhook(payload(alert())).alerts[0]
    again = parse_webhook(payload(alert())).alerts[0]
    later = parse_webhook(payload(alert(starts_at="2026-12-01T13:00:00Z"))).alerts[0]
    assert once.key == again.key
    assert later.key != once.key


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "body: not JSON"),
        (b"[1, 2]", "body: expected a JSON object"),
        (json.dumps({**payload(alert()), "version": "3"}).encode(), 'version: expected "4"'),
        (json.dumps({"version": "4"}).encode(), "alerts: expected a list"),
        (
            json.dumps(payload({**alert(), "status": "exploding"})).encode(),
            "alerts[0].status: expected 'firing' or 'resolved'",
        ),
        (
            json.dumps(payload(alert(), {**alert("b"), "startsAt": "yesterday"})).encode(),
            "alerts[1].startsAt:",
        ),
        (
            json.dumps(payload({**alert(), "labels": {"release": 7}})).encode(),
            "alerts[0].labels: expected an object of strings",
        ),
        (
            json.dumps(payload({**alert(), "startsAt": None})).encode(),
            "alerts[0].startsAt: missing",
        ),
    ],
)
def test_malformed_payloads_name_the_field(body: bytes, problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_webhook(body)
    assert problem in str(caught.value)


def test_an_alert_without_release_labels_is_valid_and_says_so() -> None:
    (first,) = parse_webhook(payload(alert(release="", namespace=""))).alerts
    assert first.release == first.namespace == ""
