"""The notebooks' summary banner (readable at a glance) and its error handler."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.display import summary as sm
from runbook_lib.errors import PreconditionFailed
from runbook_lib.record.facts import Decided, Finished, RunFacts


def _published() -> tuple[sm.Summary, list[tuple[dict[str, Any], dict[str, Any], bool]]]:
    seen: list[tuple[dict[str, Any], dict[str, Any], bool]] = []

    def publish(bundle: Any, metadata: Any, display_id: str, update: bool) -> None:
        seen.append((dict(bundle), dict(metadata), update))

    return sm.Summary(title="Rollback", publish=publish), seen


DECISION = {
    "verdict": "rollback",
    "rules": [
        {"rule": "error_rate", "metric": "error_ratio", "status": "fired",
         "reason": "above 1% for longer than 120 s"},
        {"rule": "latency_p99", "metric": "p99_latency_s", "status": "clear",
         "reason": "clear: breached 45 s, not longer than 120 s"},
        {"rule": "business", "metric": "orders", "status": "not_evaluated",
         "reason": "not judged: no baseline"},
    ],
}  # fmt: skip


def test_banner_colour_follows_the_verdict_and_updates_the_same_display() -> None:
    summary, seen = _published()
    summary.refresh()
    assert seen[0][2] is False
    assert "no verdict yet" in seen[0][0]["text/plain"]
    summary.note_decision(DECISION)
    bundle, metadata, update = seen[-1]
    assert update is True
    assert BANNER("rollback") in bundle["text/html"]
    assert "ROLL BACK" in bundle["text/html"]
    # the rule that fired comes first, the not-sustained breach says so, business names its metric
    text = bundle["text/plain"].splitlines()
    assert text[1].startswith("  error_rate: above 1%")
    assert "clear: breached 45 s, not longer than 120 s" in bundle["text/plain"]
    assert "business:orders: not judged" in bundle["text/plain"]
    assert metadata[sm.METADATA_KEY]["verdict"] == "rollback"
    for verdict in ("no_rollback", "inconclusive"):
        summary.note_decision({"verdict": verdict, "rules": []})
        assert BANNER(verdict) in seen[-1][0]["text/html"]


def BANNER(verdict: str) -> str:  # noqa: N802
    return f"background:{sm.BANNER_COLOURS[verdict][0]}"


def test_outcome_durations_steps_and_links_from_the_run(tmp_path: Path) -> None:
    summary, seen = _published()
    (tmp_path / "record.md").write_text("x")
    summary.note_start("INC-1", tmp_path)
    summary.note_step("helm_rollback")
    assert "helm_rollback (running)" in seen[-1][0]["text/html"]
    summary.note_step_end("helm_rollback", 1.25, "done")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    facts = RunFacts(
        decided=Decided("rollback", True, at, at, DECISION),
        decided_at=at,
        finished=Finished("recovered", 3.5, 42.0, 300.0),
    )
    summary.note_facts(facts)
    page = seen[-1][0]["text/html"]
    assert "recovered" in page
    assert "42.0 s (within the 300 s target)" in page
    assert "helm_rollback 1.2 s (done)" in page
    assert "href='record.md'" in page
    assert "timeline.jsonl" not in page
    assert seen[-1][1][sm.METADATA_KEY] == {
        "verdict": "rollback", "outcome": "recovered", "incident": "INC-1"
    }  # fmt: skip


def test_read_summary_finds_the_last_state_in_an_executed_notebook() -> None:
    nb = {"cells": [{"cell_type": "markdown"}, {"cell_type": "code", "outputs": [
        {"output_type": "display_data", "metadata": {sm.METADATA_KEY: {"verdict": "inconclusive"}}}
    ]}]}  # fmt: skip
    assert sm.read_summary(nb) == {"verdict": "inconclusive"}
    assert sm.read_summary({"cells": []}) is None


def test_error_handler_shows_the_message_and_saves_the_traceback(tmp_path: Path) -> None:
    summary, seen = _published()
    summary.folder = tmp_path
    sm._current = summary

    class Shell:
        def __init__(self) -> None:
            self.shown: list[list[str]] = []

        def _showtraceback(self, etype: object, value: object, stb: list[str]) -> None:
            self.shown.append(stb)

    shell = Shell()
    sm.set_redactor(lambda text: text.replace("s3cret", "[REDACTED]"))
    try:
        try:
            try:
                raise OSError("connection refused s3cret\nmore lines")
            except OSError as err:
                raise PreconditionFailed("wrong cluster: set expected_cluster") from err
        except PreconditionFailed as err:
            lines = sm._handle(shell, type(err), err, err.__traceback__)
    finally:
        sm._current = None
    # IPython ignores a custom handler's return value: the handler publishes it itself.
    assert shell.shown == [lines]
    assert "PreconditionFailed: wrong cluster: set expected_cluster" in lines[0]
    assert lines[1] == "  caused by OSError: connection refused s3cret"
    assert str(tmp_path / "traceback.txt") in lines[2]
    saved = (tmp_path / "traceback.txt").read_text()
    assert "Traceback" in saved
    assert "[REDACTED]" in saved
    assert "s3cret" not in saved
    assert "Stopped: PreconditionFailed" in seen[-1][0]["text/html"]
