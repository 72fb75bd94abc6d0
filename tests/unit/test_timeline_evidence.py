"""The timeline as evidence: nested values redacted, a damaged line skipped and reported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from secret_corpus import CORPUS, leaks

from runbook_lib.core.redact import PLACEHOLDER, Redactor
from runbook_lib.record.timeline import EventKind, Timeline


def test_nested_parameter_values_are_redacted(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    tl = Timeline(path, redact=Redactor.build())
    params = {
        "expected_cluster": "https://admin:PLANTEDclusterPw@api:6443",
        "prometheus_url": "http://ops:PLANTEDpromPw@127.0.0.1:19090",
        "manual_reason": "Bearer PLANTEDbearer0123abc, xoxb-1234567890-1234567890123-PLANTEDx",
        "thresholds": {"password": 12345678, "nested": [{"api_token": "PLANTEDnestedTok"}]},
        "replay_csv": "/work/main/notebooks/data/bad-deploy.csv",
        "corpus": [p.text for p in CORPUS],
    }
    tl.record("start_run", EventKind.INFO, "run started", params=params)
    text = path.read_text()
    assert "PLANTED" not in text  # every planted value is gone
    assert leaks(text) == []
    event = json.loads(text)
    assert event["data"]["params"]["thresholds"]["password"] == PLACEHOLDER
    assert event["data"]["params"]["replay_csv"] == "/work/main/notebooks/data/bad-deploy.csv"
    assert event["data"]["params"]["expected_cluster"] == f"https://admin:{PLACEHOLDER}@api:6443"


def test_objects_with_secrets_in_their_text_are_redacted(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Target:
        url: str

    tl = Timeline(tmp_path / "t.jsonl", redact=Redactor.build())
    tl.record("plan", EventKind.INFO, "plan", target=Target("postgres://u:PLANTEDobj@h/db"), n=3)
    text = (tmp_path / "t.jsonl").read_text()
    assert "PLANTEDobj" not in text
    assert '"n": 3' in text


def test_a_truncated_last_line_is_skipped_reported_and_does_not_swallow_the_next(
    tmp_path: Path,
) -> None:
    path = tmp_path / "timeline.jsonl"
    tl = Timeline(path)
    tl.record("start_run", EventKind.INFO, "first run")
    tl.record("helm_rollback", EventKind.STEP_START, "rolling back")
    whole = path.read_text()
    path.write_text(whole[: len(whole) - 25])  # killed mid-write: half a line, no newline
    rerun = Timeline(path)
    assert [e.message for e in rerun.events] == ["first run"]
    assert len(rerun.damaged) == 1
    assert rerun.damaged[0].startswith("line 2:")
    rerun.record("start_run", EventKind.INFO, "second run")
    again = Timeline(path)
    assert again.events[0].message == "first run"
    assert [e.step for e in again.events][1:] == ["timeline", "start_run"]
    assert again.events[1].kind == EventKind.WARNING
    assert "1 damaged timeline line(s) skipped: line 2" in again.events[1].message
    assert len(again.damaged) == 1  # the broken line stays as evidence, still skipped


def test_undecodable_bytes_do_not_stop_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "timeline.jsonl"
    Timeline(path).record("start_run", EventKind.INFO, "ok")
    with path.open("ab") as fh:
        fh.write(b"\xff\xfe not json\n")
    tl = Timeline(path)
    assert [e.message for e in tl.events] == ["ok"]
    assert tl.damaged
