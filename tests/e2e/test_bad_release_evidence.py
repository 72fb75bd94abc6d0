"""The bad release's own evidence through the run's steps: its pods' logs captured
before ``helm rollback``, its failing traces, and nothing of it after the rollback."""

from __future__ import annotations

import json
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sandbox_waits import pods_have_logged

from runbook_lib import steps
from runbook_lib.adapters.traces import JaegerSource
from runbook_lib.core.traces import parse_traces
from runbook_lib.evidence.capture import BEFORE_ROLLBACK
from runbook_lib.record.facts import Outcome

from .test_steps import BAD_IMAGE, GOOD_IMAGE, deploy_bad_version, events, snapshot, start

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


_OWNER = re.compile(r"version=(\S+) pod=(\S+)$")


@pytest.fixture
def bad_deploy(sandbox: Sandbox) -> Sandbox:
    return deploy_bad_version(sandbox)


def _evidence(ctx: steps.RunContext) -> dict[str, Any]:
    """The post-rollback steps that write the evidence, as the notebook calls them."""
    return {s.__name__: s(ctx) for s in (steps.plot_before_after, steps.write_record,
                                          steps.preserve_evidence)}  # fmt: skip


def _closed_port() -> int:
    """A loopback port nothing listens on: a tracing backend that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_pods_logs_and_traces_are_kept_and_none_of_them_after_the_rollback(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    pods_have_logged(sb, "v1.1.0", failures=True)  # the bad pods serve, and fail, as in an incident
    ctx = start(sb, tmp_path, tracing_url=sb.tracing_url, migrations_to_revert=0)
    results = {s.__name__: s(ctx) for s in steps.ROLLBACK_STEPS}
    assert results["finish"].outcome is Outcome.RECOVERED
    _evidence(ctx)
    incident = ctx.incident_dir

    # Before the rollback: each v1.1.0 pod's own log, with its 5xx lines.
    captured = ctx.facts.bad_pods
    assert captured is not None
    assert (captured.revision, captured.version, captured.complete) == (2, "v1.1.0", True)
    assert len(captured.pods) == 4
    assert captured.gaps == ()
    failures = 0
    for pod in captured.pods:
        lines = (incident / BEFORE_ROLLBACK / "logs" / f"{pod}.log").read_text().splitlines()
        assert {m.groups() for m in map(_OWNER.search, lines) if m} == {("v1.1.0", pod)}
        failures += sum(bool(re.search(r"status=5\d\d ", line)) for line in lines)
    assert failures > 0
    # The capture started within the rollback step, before helm rollback ran.
    recorded = events(ctx)
    began = next(e for e in recorded if e["message"].startswith("capturing the pods of"))
    ran = next(e for e in recorded if e["data"].get("fact") == "rolled_back")
    assert began["step"] == "helm_rollback"
    assert began["at"] < ran["at"]

    # kubernetes/ says which pods ran which revision; the pods after it are others, v1.0.0.
    before, after = json.loads((incident / "kubernetes/pods-by-revision.json").read_text())
    assert (before["revision"], before["version"]) == (2, "v1.1.0")
    assert set(before["pods"]) == set(captured.pods)
    assert (after["revision"], after["version"]) == (1, "v1.0.0")
    assert after["pods"]
    assert not {p["name"] for p in after["pods"]} & set(captured.pods)
    assert {tuple(p["images"]) for p in after["pods"]} == {(GOOD_IMAGE,)}
    pods_before = json.loads((incident / BEFORE_ROLLBACK / "pods.json").read_text())
    assert {tuple(p["images"]) for p in pods_before} == {(BAD_IMAGE,)}

    # Traces: failing ones of v1.1.0 kept in full; none of v1.1.0 once the rollout was done.
    traces = ctx.facts.traces
    assert traces is not None
    assert traces.collected, traces
    failing = parse_traces(json.loads((incident / "traces/failing.json").read_text()))
    assert failing
    assert {t.version for t in failing} >= {"v1.1.0"}
    assert all(t.error for t in failing)
    rollout = ctx.facts.rollout
    assert rollout is not None
    summary = (incident / "traces/summary.md").read_text()
    assert "| deploy window | v1.1.0 |" in summary
    assert "| after rollback | v1.0.0 |" in summary
    slowest = parse_traces(json.loads((incident / "traces/slowest.json").read_text()))
    # The traffic model learns of the pods by listing them every second (a slow list may take
    # up to its 5 s timeout, keeping the last pods known): an old pod may answer a few more
    # requests after the rollout is done, as one behind a Service does until its endpoint goes.
    settled = rollout.done_at + timedelta(seconds=15)
    late = [t for t in (*failing, *slowest) if t.start > settled]
    assert all(t.version == "v1.0.0" for t in late), [(t.version, t.start) for t in late]
    # Every request served once the rollout was done (old pods gone), straight from Jaeger.
    served = JaegerSource(sb.tracing_url).find_traces(
        "app", rollout.done_at + timedelta(seconds=2), ctx.now(), limit=2000
    )
    assert served.traces
    assert {t.version for t in served.traces} == {"v1.0.0"}

    record = (incident / "record.md").read_text()
    assert "[traces/summary.md](traces/summary.md)" in record
    assert "4 pod(s) of revision 2 (v1.1.0)" in record
    manifest = (incident / "MANIFEST.sha256").read_text()
    assert "traces/failing.json" in manifest
    assert f"{BEFORE_ROLLBACK}/logs/{captured.pods[0]}.log" in manifest


def test_dry_run_with_jaeger_down_completes_and_says_traces_were_not_collected(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    before = snapshot(sb)
    url = f"http://127.0.0.1:{_closed_port()}"
    ctx = start(sb, tmp_path, dry_run=True, confirm=False, tracing_url=url)
    results = {s.__name__: s(ctx) for s in steps.ROLLBACK_STEPS}
    written = _evidence(ctx)
    assert results["finish"].outcome is Outcome.DRY_RUN
    assert snapshot(sb) == before  # capturing changed nothing either

    traces = ctx.facts.traces
    assert traces is not None
    assert not traces.collected
    assert "not reachable" in traces.reason
    record = (ctx.incident_dir / "record.md").read_text()
    assert "Traces were not collected: the tracing backend could not be queried" in record
    assert "Traces were not collected" in (ctx.incident_dir / "traces/summary.md").read_text()
    assert any("traces:" in p for p in written["preserve_evidence"].problems)
    # A dry run still captures the release's pods (reading changes nothing) and says so.
    captured = ctx.facts.bad_pods
    assert captured is not None
    assert captured.dry_run
    assert len(captured.pods) == 4
    assert "dry run: captured all the same" in record
