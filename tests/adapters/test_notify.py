"""Notifications against a real HTTP server on 127.0.0.1 (answers 200, 500, or hangs)."""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from loopback_http import Loopback, QuietHandler

from runbook_lib.adapters.notify import ConsoleNotifier, FileNotifier, SlackWebhook
from runbook_lib.errors import AdapterError, ParameterError

SECRET_PATH = "/services/T000/B000/s3cr3tT0ken"
HANG_S = 3.0  # how long the "hang" handler holds a request; bounded so the server stops


class Webhook(Loopback):
    """A local stand-in for Slack: records bodies and answers as ``mode`` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.bodies: list[dict[str, object]] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                hook.bodies.append(
                    {"path": self.path, "type": self.headers["Content-Type"], **json.loads(raw)}
                )
                if hook.mode == "hang":
                    hook.release.wait(HANG_S)
                    return
                code, text = {"ok": (200, b"ok"), "500": (500, b"boom " + SECRET_PATH.encode())}[
                    hook.mode
                ]
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        super().__init__(Handler, SECRET_PATH)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def test_posts_slack_json_text(webhook: Webhook) -> None:
    SlackWebhook(webhook.url, timeout_s=5).post("Rolling back app from v1.1.0 to v1.0.0")
    assert webhook.bodies == [
        {
            "path": SECRET_PATH,
            "type": "application/json",
            "text": "Rolling back app from v1.1.0 to v1.0.0",
        }
    ]


def test_server_error_is_retryable_and_hides_the_url(webhook: Webhook) -> None:
    webhook.mode = "500"
    with pytest.raises(AdapterError) as info:
        SlackWebhook(webhook.url, timeout_s=5).post("hello")
    err = info.value
    assert err.retryable
    assert "HTTP 500" in str(err)
    assert "s3cr3t" not in str(err)
    assert "s3cr3t" not in repr(err.args)
    assert "127.0.0.1" in err.command  # still says which endpoint failed


def test_hanging_webhook_times_out_retryable(webhook: Webhook) -> None:
    webhook.mode = "hang"
    with pytest.raises(AdapterError, match=r"did not answer within 0\.5 s") as info:
        SlackWebhook(webhook.url, timeout_s=0.5).post("hello")
    assert info.value.retryable
    assert "s3cr3t" not in str(info.value)
    assert len(webhook.bodies) == 1  # the request did reach the server


def test_nothing_listening_is_retryable(webhook: Webhook) -> None:
    url = webhook.url
    webhook.stop()
    with pytest.raises(AdapterError, match="unreachable") as info:
        SlackWebhook(url, timeout_s=2).post("hello")
    assert info.value.retryable
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("mode", ["ok", "500", "hang", "down"])
def test_debug_logs_and_tracebacks_hide_the_secret(
    webhook: Webhook, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    # At DEBUG, urllib3 logs every request's path, and the path is the secret.
    url = webhook.url
    if mode == "down":
        webhook.stop()
    else:
        webhook.mode = mode
    shown = ""
    with caplog.at_level(logging.DEBUG):
        try:
            SlackWebhook(url, timeout_s=0.5).post("hello")
        except AdapterError as err:
            shown = "".join(traceback.format_exception(err))  # with every chained cause
    assert (shown == "") == (mode == "ok")
    assert "s3cr3t" not in shown
    assert [r for r in caplog.records if r.name.startswith("urllib3")]  # it did log
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://hooks.example/services/s3cr3t", id="not-http"),
        pytest.param("hooks.example/services/s3cr3t", id="no-scheme"),
    ],
)
def test_bad_url_rejected_without_echoing_it(url: str) -> None:
    with pytest.raises(ParameterError) as info:
        SlackWebhook(url)
    assert "s3cr3t" not in str(info.value)


def test_repr_hides_the_secret(webhook: Webhook) -> None:
    assert "s3cr3t" not in repr(SlackWebhook(webhook.url))


def test_file_notifier_appends_json_lines(tmp_path: Path) -> None:
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    path = tmp_path / "channel" / "notify.jsonl"
    notifier = FileNotifier(path, clock=lambda: at)
    notifier.post("first")
    notifier.post("second")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"at": "2026-11-27T10:00:00+00:00", "text": "first"},
        {"at": "2026-11-27T10:00:00+00:00", "text": "second"},
    ]


def test_file_notifier_unwritable_path_is_adapter_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AdapterError, match="cannot append"):
        FileNotifier(blocker / "notify.jsonl").post("x")


def test_console_notifier_prints_one_line() -> None:
    out = io.StringIO()
    ConsoleNotifier(out).post("Rolling back app")
    assert out.getvalue() == "[notify] Rolling back app\n"
