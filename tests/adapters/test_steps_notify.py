"""Rollback Steps, step 1 against a real local webhook server that fails or hangs.

A failed notification is retried once and then recorded as a warning; it never stops the
rollback, and the webhook URL (a secret) never reaches the timeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helm_history import revision
from loopback_http import Loopback, QuietHandler
from offline_run import offline_run

from runbook_lib.core.revisions import RollbackTarget
from runbook_lib.steps import notify
from runbook_lib.steps.context import RunContext

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
TARGET = RollbackTarget(
    current=revision(2, "v1.1.0", "deployed", "Upgrade complete", at=T0),
    target=revision(1, "v1.0.0", "superseded", "Install complete", at=T0),
)


class Webhook(Loopback):
    """A local webhook answering every POST with ``status`` (or never answering)."""

    def __init__(self, status: int, *, hang: bool = False) -> None:
        self.bodies: list[dict[str, str]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                if hang:
                    outer.release.wait(10)
                    return
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"internal error")

        super().__init__(Handler, "/services/T0/B0/s3cr3tH00kPath")


@pytest.fixture
def webhook_factory() -> Iterator[type[Webhook]]:
    made: list[Webhook] = []

    class Tracked(Webhook):
        def __init__(self, status: int, *, hang: bool = False) -> None:
            super().__init__(status, hang=hang)
            made.append(self)

    yield Tracked
    for hook in made:
        hook.stop()


def _ctx(tmp_path: Path, url: str, **over: object) -> RunContext:
    ctx = offline_run(
        tmp_path,
        "inc-n",
        slack_webhook_url=url,
        notify_file=str(tmp_path / "channel.jsonl"),
        console=False,
        notify_timeout="500ms",
        sleep=lambda _s: None,
        **over,
    )
    ctx.live.target = TARGET
    return ctx


def test_delivered_message_names_both_versions(
    tmp_path: Path, webhook_factory: type[Webhook]
) -> None:
    hook = webhook_factory(200)
    result = notify(_ctx(tmp_path, hook.url))
    assert result.delivered == ("slack", "file")
    assert len(hook.bodies) == 1
    assert hook.bodies[0]["text"].startswith("Rolling back app from v1.1.0 to v1.0.0")


@pytest.mark.parametrize(
    ("status", "hang"),
    [pytest.param(500, False, id="http-500"), pytest.param(200, True, id="hanging")],
)
def test_failing_webhook_is_retried_once_then_recorded(
    tmp_path: Path, webhook_factory: type[Webhook], status: int, hang: bool
) -> None:
    hook = webhook_factory(status, hang=hang)
    ctx = _ctx(tmp_path, hook.url)
    result = notify(ctx)  # must return, not raise
    assert len(hook.bodies) == 2  # first attempt and one retry
    assert result.failed == ("slack",)
    assert result.delivered == ("file",)  # the other channel still got the message
    channel = (tmp_path / "channel.jsonl").read_text()
    assert "Rolling back app from v1.1.0 to v1.0.0" in channel
    warnings = [e for e in ctx.timeline.events if e.kind == "warning" and e.step == "notify"]
    assert len(warnings) == 2
    timeline_text = ctx.timeline.path.read_text()  # type: ignore[union-attr]
    assert "s3cr3tH00kPath" not in timeline_text
    assert ctx.timeline.last("notify", "step_end") is not None


def test_dry_run_posts_nothing(tmp_path: Path, webhook_factory: type[Webhook]) -> None:
    hook = webhook_factory(200)
    ctx = _ctx(tmp_path, hook.url, dry_run=True)
    result = notify(ctx)
    assert result.dry_run
    assert hook.bodies == []
    assert not (tmp_path / "channel.jsonl").exists()


def test_a_release_already_on_the_target_announces_no_rollback(
    tmp_path: Path, webhook_factory: type[Webhook]
) -> None:
    # A re-run under another incident id after the rollback: the release runs revision 3,
    # made by the rollback to 1; nothing will change, so nothing is announced.
    hook = webhook_factory(200)
    ctx = _ctx(tmp_path, hook.url)
    ctx.live.target = RollbackTarget(
        current=revision(3, "v1.0.0", "deployed", "Rollback to 1", at=T0),
        target=revision(1, "v1.0.0", "superseded", "Install complete", at=T0),
        already_rolled_back=True,
    )
    result = notify(ctx)
    assert result.skipped
    assert hook.bodies == []
    assert not (tmp_path / "channel.jsonl").exists()
    assert "Rolling back" not in ctx.timeline.path.read_text()  # type: ignore[union-attr]
