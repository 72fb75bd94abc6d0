"""Labels are untrusted: Kubernetes names checked, ids unique and bounded, text escaped (pure)."""

from __future__ import annotations

import string
from datetime import UTC, datetime

import pytest
from alert_payloads import alert, payload
from hypothesis import given
from hypothesis import strategies as st

from runbook_lib.core.alert_policy import incident_id_for
from runbook_lib.core.alerts import parse_webhook
from runbook_lib.core.escape import console_text, html_text, line, slack_text
from runbook_lib.core.names import namespace_problem, release_problem
from runbook_lib.core.receiver_state import Disposition, ReceiverState
from runbook_lib.core.run_job import job_name

NOW = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
_NAME_CHARS = string.ascii_lowercase + string.digits + "-"
valid_release = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize(
    "name",
    ["shop-../../x", "a" * 54, "App", "app\n", "app\x1b[31m", "", "-app", "app.v2", "app\ud800"],
    ids=[
        "traversal",
        "54-chars",
        "upper",
        "newline",
        "escape",
        "empty",
        "dash",
        "dot",
        "surrogate",
    ],
)
def test_a_release_label_that_is_no_helm_release_name_is_refused(name: str) -> None:
    problem = release_problem(name)
    assert problem.startswith("not a Helm release name")
    assert problem.isascii()
    assert "\n" not in problem


def test_a_253_character_namespace_is_refused_and_quoted_short() -> None:
    problem = namespace_problem("a" * 253)
    assert "at most 63" in problem
    assert len(problem) < 200


def test_a_hostile_label_is_invalid_before_it_is_matched_or_remembered() -> None:
    state = ReceiverState()
    hostile = parse_webhook(payload(alert("shop-../../x"))).alerts[0]
    assert state.offer(hostile, NOW) is Disposition.INVALID
    assert state.waiting == {}
    assert hostile.key not in state.seen


@given(valid_release, valid_release)
def test_incident_ids_are_unique_and_bounded_for_every_valid_name(a: str, b: str) -> None:
    first = incident_id_for(a, "default", "k@1", NOW)
    second = incident_id_for(b, "default", "k@1", NOW)
    assert len(first) <= 63
    assert (first == second) == (a == b)
    assert first.startswith("alert-")
    assert set(first) <= set(string.ascii_letters + string.digits + "-.")
    # A Job name from it is just as unique and bounded.
    assert (job_name(first) == job_name(second)) == (a == b)
    assert len(job_name(first)) <= 63


def test_two_53_character_releases_that_share_64_characters_get_two_incidents() -> None:
    a, b = "a" * 52 + "1", "a" * 52 + "2"
    assert incident_id_for(a, "ns", "k", NOW) != incident_id_for(b, "ns", "k", NOW)
    # Same release, two alerts in the same microsecond, or another namespace: still two.
    assert incident_id_for(a, "ns", "k1", NOW) != incident_id_for(a, "ns", "k2", NOW)
    assert incident_id_for(a, "ns1", "k", NOW) != incident_id_for(a, "ns2", "k", NOW)


FORGED = "Err\nINFO ok\r\x1b[2J\x07\u202etxt\u2028<!channel> <https://x|y> & \ud800"


def test_one_visible_line_for_every_medium() -> None:
    shown = line(FORGED)
    assert shown == (
        "Err\\x0aINFO ok\\x0d\\x1b[2J\\x07\\u202etxt\\u2028<!channel> <https://x|y> & \\ud800"
    )
    assert shown.encode("utf-8")  # no lone surrogate left
    assert line("a" * 300, limit=10) == "a" * 10 + "..."


def test_slack_text_can_neither_mention_nor_link() -> None:
    text = slack_text(f"runbook: {line(FORGED)}")
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!channel&gt;" in text
    assert "&amp;" in text


def test_console_text_keeps_the_messages_own_lines_only() -> None:
    assert console_text("one\ntwo\x1b[31m") == "one\ntwo\\x1b[31m"


def test_html_text_escapes_markup_and_control_characters() -> None:
    assert html_text('<script>"x"\n') == "&lt;script&gt;&quot;x&quot;\\x0a"


@given(st.text(alphabet=_NAME_CHARS + "./\n\x1b<>&\u202e\ud800", max_size=300))
def test_no_text_gets_past_the_escapes(text: str) -> None:
    # Label text goes through line() when a message is made; the channel escapes the message.
    for escaped in (line(text), slack_text(line(text)), console_text(line(text)), html_text(text)):
        assert "\n" not in escaped
        assert "\x1b" not in escaped
        assert "\u202e" not in escaped
        escaped.encode("utf-8")
    assert "<" not in slack_text(text)
    assert "<" not in html_text(text)
