"""The Jaeger adapter's failures: down, hanging, garbage, server errors.

A real Jaeger answers correctly (tests/e2e/test_traces.py); what it cannot be made to do
on demand (hang, answer garbage or 500) is played by a small local server here.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from runbook_lib.adapters.traces import JaegerSource, resolve_service
from runbook_lib.errors import ParameterError, TracesError
from runbook_lib.evidence.traces import SUMMARY, collect_traces

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        code, body = self.answers.get(path, (404, b"{}"))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_backend() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}
    handler = type("H", (_Handler,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()


def test_bad_url_names_tracing_url() -> None:
    with pytest.raises(ParameterError, match="tracing_url"):
        JaegerSource("127.0.0.1:16686")


def test_service_defaults_to_the_release() -> None:
    assert resolve_service("", "app") == "app"
    assert resolve_service("checkout", "app") == "checkout"


def test_backend_down_is_a_retryable_traces_error() -> None:
    source = JaegerSource(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    with pytest.raises(TracesError, match="not reachable") as err:
        source.find_traces("app", T0, T0 + timedelta(minutes=1))
    assert err.value.retryable


def test_a_hanging_backend_times_out() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        source = JaegerSource(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.5)
        with pytest.raises(TracesError) as err:
            source.services()
    assert err.value.retryable


def test_garbage_and_server_errors(fake_backend: tuple[str, dict[str, tuple[int, bytes]]]) -> None:
    url, answers = fake_backend
    source = JaegerSource(url, timeout_s=2)
    answers["/api/traces"] = (200, b"<html>not json</html>")
    with pytest.raises(TracesError, match="not JSON"):
        source.find_traces("app", T0, T0 + timedelta(minutes=1))
    answers["/api/traces"] = (200, b'{"data": [{"spans": "x"}]}')
    with pytest.raises(TracesError, match="malformed"):
        source.find_traces("app", T0, T0 + timedelta(minutes=1))
    answers["/api/traces"] = (500, b'{"errors": [{"code": 500, "msg": "boom"}]}')
    with pytest.raises(TracesError, match="HTTP 500") as err:
        source.find_traces("app", T0, T0 + timedelta(minutes=1))
    assert err.value.retryable
    answers["/api/traces"] = (400, b'{"errors": [{"code": 400, "msg": "bad"}]}')
    with pytest.raises(TracesError, match="HTTP 400") as err:
        source.find_traces("app", T0, T0 + timedelta(minutes=1))
    assert not err.value.retryable


def test_empty_answer_is_a_warning(fake_backend: tuple[str, dict[str, tuple[int, bytes]]]) -> None:
    url, answers = fake_backend
    answers["/api/traces"] = (200, b'{"data": [], "errors": null}')
    result = JaegerSource(url).find_traces("app", T0, T0 + timedelta(minutes=1))
    assert result.traces == ()
    assert any("no traces of service 'app'" in w for w in result.warnings)


def test_window_and_service_are_checked(
    fake_backend: tuple[str, dict[str, tuple[int, bytes]]],
) -> None:
    source = JaegerSource(fake_backend[0])
    with pytest.raises(ParameterError) as err:
        source.find_traces(" ", T0, T0 - timedelta(seconds=1), limit=0)
    text = str(err.value)
    assert "tracing_service" in text
    assert "before it starts" in text
    assert "limit" in text


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        pytest.param(None, "tracing_url is empty", id="no-tracing-url"),
        pytest.param("down", "could not be queried", id="backend-down"),
    ],
)
def test_evidence_says_why_traces_were_not_collected(
    tmp_path: Path, backend: str | None, reason: str
) -> None:
    source = JaegerSource(f"http://127.0.0.1:{_free_port()}", timeout_s=2) if backend else None
    result = collect_traces(
        tmp_path,
        source,
        service="app",
        deployed_at=T0,
        rollback_at=T0 + timedelta(minutes=3),
        end=T0 + timedelta(minutes=6),
        redact=str,
    )
    assert not result.collected
    assert reason in result.reason
    assert result.report.written == (SUMMARY,)
    assert bool(result.report.problems) == (backend is not None)
    text = (tmp_path / SUMMARY).read_text()
    assert f"Traces were not collected: {result.reason}" in text
    assert not (tmp_path / "traces" / "failing.json").exists()
