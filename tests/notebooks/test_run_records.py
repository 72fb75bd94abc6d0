"""A record for every run: ``runbook run rollback`` on replays, no cluster touched.

A replay whose samples all precede the deploy cannot be judged: the headless run stops before
any change, exits 4 and still leaves the record (verdict inconclusive, each rule not judged
with its reason), the plots, the samples and a manifest that verifies. A healthy replay exits
0 with a "no rollback" record. ``expected_cluster`` names a cluster that does not exist: a run
that reached for the cluster would fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "notebooks" / "data" / "bad_deploy.csv"
HEALTHY = REPO / "notebooks" / "data" / "healthy_deploy.csv"
RUNBOOK = [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())"]


def _run(tmp_path: Path, replay: Path, deployed_at: str, incident: str
         ) -> tuple[subprocess.CompletedProcess[str], Path]:  # fmt: skip
    out = tmp_path / "evidence"
    result = subprocess.run(
        [*RUNBOOK, "run", "rollback", "--quiet", "--output-dir", str(out),
         "-r", "replay_csv", str(replay), "-r", "deployed_at", deployed_at,
         "-r", "expected_cluster", "no-such-cluster", "-r", "incident_id", incident],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip
    return result, out / incident


def _unchanged_record(incident: Path, ended: str) -> dict[str, Any]:
    """record.json, checked to say the run ended ``ended`` (its verdict too) and that nothing
    was rolled back."""
    record: dict[str, Any] = json.loads((incident / "record.json").read_text())
    assert (record["outcome"], record["verdict"], record["rolled_back"]) == (ended, ended, False)
    return record


def _verify(directory: Path) -> None:
    verified = subprocess.run(
        [*RUNBOOK, "verify-evidence", str(directory)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = {
        line.split(maxsplit=1)[1].lstrip("*")
        for line in (directory / "MANIFEST.sha256").read_text().splitlines()
    }
    for name in ("record.md", "record.json", "timeline.jsonl", "metrics/samples.csv"):
        assert name in listed, f"{name} not sealed in MANIFEST.sha256"


def test_samples_before_the_deploy_stop_with_exit_4_and_a_record(tmp_path: Path) -> None:
    # The bundled replay ends at 14:30; a deploy at 15:00 leaves nothing to judge.
    result, incident = _run(tmp_path, BAD, "2026-11-20T15:00:00Z", "inc-nodata")
    assert result.returncode == 4, result.stdout[-3000:] + result.stderr[-3000:]
    assert "outcome: inconclusive" in result.stdout
    assert "inconclusive" in result.stderr
    record = _unchanged_record(incident, "inconclusive")
    rules = {(r["rule"], r["metric"]): r for r in record["rules"]}
    assert ("error_rate", "error_ratio") in rules
    assert ("latency_p99", "p99_latency_s") in rules
    for rule in rules.values():
        assert rule["status"] == "not_evaluated"
        assert rule["reason"].startswith("not judged")
    markdown = (incident / "record.md").read_text()
    assert "Outcome: **inconclusive**" in markdown
    assert "not_evaluated" in markdown
    assert "Nothing was rolled back" in markdown
    assert sorted(p.name for p in (incident / "plots").glob("*.png"))
    assert (incident / "metrics" / "samples.csv").stat().st_size > 0
    # Nothing after the decision ran: every acting step was skipped, none failed.
    events = [json.loads(line) for line in (incident / "timeline.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] == "step_failed"]
    skipped = {e["step"] for e in events if e["data"].get("skipped")}
    assert {"preflight", "confirm", "helm_rollback", "check_recovery"} <= skipped
    _verify(incident)


def test_a_healthy_replay_exits_0_with_a_no_rollback_record(tmp_path: Path) -> None:
    result, incident = _run(tmp_path, HEALTHY, "2026-11-20T14:00:00Z", "inc-healthy")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "outcome: no_rollback" in result.stdout
    record = _unchanged_record(incident, "no_rollback")
    assert {r["status"] for r in record["rules"]} <= {"clear"}
    assert "Outcome: **no_rollback**" in (incident / "record.md").read_text()
    assert sorted(p.name for p in (incident / "plots").glob("*.png"))
    _verify(incident)
