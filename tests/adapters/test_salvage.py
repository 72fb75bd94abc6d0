"""The evidence after a run stopped past its rollback (an escalation), with the metrics down to
the end: the picture after the rollback and ``collection-errors.txt`` are still written.

The cluster and Prometheus are addresses nothing answers on (refused at once), so every source
fails the way a dead one does; the samples ``assess`` saved are all there is to plot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook_lib.adapters.replay import read_replay_csv
from runbook_lib.adapters.settings_files import load_settings
from runbook_lib.core.kinds import Entry
from runbook_lib.errors import VerificationFailed
from runbook_lib.evidence import bundle
from runbook_lib.record.facts import Decided, NotRecovered, RolledBack, TargetResolved, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.salvage import collect_after_failure, open_failed_run, record_after_failure

REPO = Path(__file__).resolve().parents[2]
DEPLOYED = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
NOBODY = "127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters:\n- name: gone\n  cluster: {{server: 'https://{NOBODY}'}}\n"
        "contexts:\n- name: gone\n  context: {cluster: gone, user: u}\n"
        "users:\n- name: u\n  user: {token: t}\n"
    )
    return path


def test_an_escalation_with_the_metrics_down_keeps_its_after_plot(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "expected_cluster": "gone",
            "prometheus_url": f"http://{NOBODY}",
            "kubeconfig": str(_kubeconfig(tmp_path)),
            "helm_binary": str(tmp_path / "no-helm"),
            "output_dir": str(tmp_path / "ev"),
            "incident_id": "INC-ESC",
            "deployed_at": DEPLOYED.isoformat(),
        },
        used_by=Entry.ROLLBACK,
    )
    ctx = open_failed_run(settings, environ={})
    tl = ctx.timeline
    tl.record("start_run", EventKind.INFO, "run started", params={}, dry_run=False)
    at = DEPLOYED + timedelta(minutes=30)
    record_fact(tl, "decide", Decided("rollback", True, DEPLOYED, at), "verdict rollback")
    record_fact(tl, "preflight", TargetResolved(2, "v1.1.0", 1, "v1.0.0", False), "revisions")
    record_fact(tl, "helm_rollback", RolledBack(2, 1, "helm rollback app 1"), "ran")
    record_fact(tl, "check_recovery", NotRecovered("metrics unavailable"), "not recovered")
    with pytest.raises(VerificationFailed), tl.span("check_recovery"):
        raise VerificationFailed("recovery not verified: metrics unavailable")
    # What assess saved before the metrics went away.
    samples = read_replay_csv(REPO / "notebooks" / "data" / "bad_deploy.csv")
    bundle.write_samples_csv(ctx.incident_dir, samples)

    written, problems = collect_after_failure(ctx)
    folder = ctx.incident_dir
    assert (folder / "plots" / "before_after.png").stat().st_size > 1000
    assert "plots/before_after.png" in written
    errors = (folder / "collection-errors.txt").read_text()
    assert "metric samples after the rollback: MetricsError" in errors
    assert any(p.startswith("kubernetes") or "ApiError" in p for p in problems)
    assert record_after_failure(ctx, fetch=False) == ()
    record = (folder / "record.md").read_text()
    assert "not_recovered" in record
