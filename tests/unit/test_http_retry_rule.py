"""The HTTP client's one retry rule as a table (pure: no request is made).

tests/adapters/test_http_client.py shows the same rule against a real local server.
"""

from __future__ import annotations

import pytest

from runbook_lib.adapters.http import ErrorKind, classify_status


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(200, None, id="200-ok"),
        pytest.param(204, None, id="204-ok"),
        pytest.param(304, ErrorKind.REJECTED, id="304-not-an-answer"),
        pytest.param(400, ErrorKind.REJECTED, id="400-bad-query"),
        pytest.param(401, ErrorKind.REJECTED, id="401"),
        pytest.param(403, ErrorKind.REJECTED, id="403-revoked-webhook"),
        pytest.param(404, ErrorKind.REJECTED, id="404"),
        pytest.param(422, ErrorKind.REJECTED, id="422-query-failed"),
        pytest.param(429, ErrorKind.UNAVAILABLE, id="429-too-many"),
        pytest.param(500, ErrorKind.UNAVAILABLE, id="500"),
        pytest.param(502, ErrorKind.UNAVAILABLE, id="502-proxy"),
        pytest.param(503, ErrorKind.UNAVAILABLE, id="503"),
        pytest.param(504, ErrorKind.UNAVAILABLE, id="504"),
    ],
)
def test_status_kind(status: int, kind: ErrorKind | None) -> None:
    assert classify_status(status) is kind


@pytest.mark.parametrize(
    ("kind", "retryable"),
    [
        pytest.param(ErrorKind.UNREACHABLE, True, id="refused"),
        pytest.param(ErrorKind.DROPPED, True, id="reset-or-closed"),
        pytest.param(ErrorKind.TIMEOUT, True, id="timeout"),
        pytest.param(ErrorKind.UNAVAILABLE, True, id="429-or-5xx"),
        pytest.param(ErrorKind.REJECTED, False, id="other-4xx"),
        pytest.param(ErrorKind.MALFORMED, False, id="not-http"),
        pytest.param(ErrorKind.BAD_ADDRESS, False, id="unknown-host"),
    ],
)
def test_which_kinds_are_retryable(kind: ErrorKind, retryable: bool) -> None:
    assert kind.retryable is retryable
