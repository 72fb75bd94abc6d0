"""Faults, each on the sandbox: a typed error, recorded on the timeline, the lock
released, and nothing lost (history, pods, schema and timeline as a person would expect)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runbook_lib import steps
from runbook_lib.errors import (
    ApiError,
    CommandFailed,
    LockHeld,
    PreconditionFailed,
    StepTimeout,
    VerificationFailed,
)
from runbook_lib.record.facts import Outcome

from .test_steps import (
    BAD_IMAGE,
    GOOD_IMAGE,
    deploy_bad_version,
    events,
    history,
    lease_holder,
    run_all,
    serving_pods,
    snapshot,
    start,
)

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


@pytest.fixture
def bad_deploy(sandbox: Sandbox) -> Sandbox:
    return deploy_bad_version(sandbox)


# Everything before the first change: assess ... notify.
UP_TO_ROLLBACK = steps.ROLLBACK_STEPS[: steps.ROLLBACK_STEPS.index(steps.helm_rollback)]


def failed_step(ctx: steps.RunContext, step: str) -> dict[str, Any]:
    """The timeline's record of ``step`` failing (the test fails if there is none)."""
    found = [e for e in events(ctx) if e["step"] == step and e["kind"] == "step_failed"]
    assert found, f"timeline has no failure of {step}"
    return found[-1]


def schema_on_host(sb: Sandbox) -> int:
    """The schema version read straight from the sandbox database (no migrator pod needed)."""
    root = Path(__file__).resolve().parents[2] / "sandbox" / "migrations"
    out = subprocess.run(
        ["./migrate", "version"],
        cwd=root,
        env={**sb.env, "MIGRATE_DB": str(sb.state_dir / "app.db")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return int(out.split()[0])


# -- the API server stops during the rollout wait --------------------------------------------


class Process:
    """One control-plane process of the sandbox, restartable from its own command line (the
    same binary, flags, working directory and environment), with kwokctl's pid file kept
    current so `sandbox down` still stops it."""

    def __init__(self, sb: Sandbox, name: str) -> None:
        self.sb = sb
        self.name = name
        self.pid_file = next((sb.state_dir / "kwok").rglob(f"pids/{name}.pid"))
        self.pid = int(self.pid_file.read_text().strip())
        proc = Path(f"/proc/{self.pid}")
        self.argv = [a for a in (proc / "cmdline").read_bytes().decode().split("\0") if a]
        self.cwd = os.readlink(proc / "cwd")
        pairs = (proc / "environ").read_bytes().decode().split("\0")
        self.env = dict(p.split("=", 1) for p in pairs if "=" in p)

    def alive(self) -> bool:
        try:
            return bool(Path(f"/proc/{self.pid}/cmdline").read_bytes())  # empty for a zombie
        except OSError:
            return False

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.1)

    def start(self) -> None:
        log = self.sb.state_dir / "logs" / f"{self.name}-restarted.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pid = proc.pid
        self.pid_file.write_text(str(proc.pid))


class ApiServer:
    """Stops the sandbox's kube-apiserver and starts it again.

    The controller manager and scheduler exit when they cannot renew their leader lease while
    the API is gone (on a real node the kubelet restarts them); ``start`` does the same for
    whichever of them exited, so the cluster can finish the rollout afterwards.
    """

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.api = Process(sb, "kube-apiserver")
        self.controllers = [Process(sb, n) for n in ("kube-controller-manager", "kube-scheduler")]

    stopped = False

    def stop(self) -> None:
        self.api.stop()
        self.stopped = True

    def start(self) -> None:
        self.api.start()
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.sb.kubectl("get", "--raw", "/readyz", timeout_s=5).strip() == "ok":
                    break
            except Exception:  # not up yet
                if time.monotonic() > deadline:
                    raise AssertionError("kube-apiserver did not come back within 60 s") from None
                time.sleep(0.5)
        # A controller notices the lost lease up to its renew deadline (10 s) later.
        watch_until = time.monotonic() + 15
        while time.monotonic() < watch_until:
            for controller in self.controllers:
                if not controller.alive():
                    controller.start()
            time.sleep(0.5)

    def start_after(self, delay_s: float) -> threading.Thread:
        def later() -> None:
            time.sleep(delay_s)
            self.start()

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        return thread


def test_api_server_back_in_time_rollout_still_verified(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    ctx = start(sb, tmp_path)
    for step in (*UP_TO_ROLLBACK, steps.helm_rollback):
        step(ctx)
    api = ApiServer(sb)
    api.stop()
    restarted = api.start_after(4.0)
    try:
        rollout = steps.wait_for_rollout(ctx)
    finally:
        restarted.join(timeout=90)
    assert rollout.done
    for step in (steps.verify_image, steps.check_recovery, steps.revert_migrations):
        step(ctx)
    assert steps.finish(ctx).outcome is Outcome.RECOVERED
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}
    assert lease_holder(sb) is None


def test_api_server_gone_too_long_fails_cleanly(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    api = ApiServer(sb)
    restarted: list[threading.Thread] = []

    def sleep(seconds: float) -> None:
        # The run pauses only to retry giving the lock back, once the step has given up:
        # that is when the API server comes back.
        if api.stopped and not restarted:
            restarted.append(api.start_after(0.0))
        time.sleep(seconds)

    ctx = start(sb, tmp_path, rollout_timeout="6s", lock_release_grace="45s", sleep=sleep)
    for step in (*UP_TO_ROLLBACK, steps.helm_rollback):
        step(ctx)
    api.stop()
    try:
        with pytest.raises(ApiError):
            steps.wait_for_rollout(ctx)
    finally:
        for thread in restarted:
            thread.join(timeout=90)
    assert restarted, "the lock release never waited for the API server"
    assert failed_step(ctx, "wait_for_rollout")["data"]["error_type"] == "ApiError"
    assert lease_holder(sb) is None
    assert ctx.live.lock is None
    assert ctx.facts.outcome is Outcome.FAILED
    assert ctx.facts.changed_cluster
    # Nothing lost: the rollback Helm made stands, and the timeline kept every step.
    assert history(sb)[-1]["description"] == "Rollback to 1"
    assert [e["step"] for e in events(ctx) if e["kind"] == "step_end"][:5] == [
        "assess", "decide", "preflight", "confirm", "notify",
    ]  # fmt: skip
    sb.kubectl("rollout", "status", "deployment/app", "--timeout=120s", timeout_s=130)


# -- revisions, helm ---------------------------------------------------------------------------


def test_target_revision_pruned(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    sb.kubectl("delete", "secret", "sh.helm.release.v1.app.v1")
    before = snapshot(sb)
    ctx = start(sb, tmp_path)
    steps.assess(ctx)
    steps.decide(ctx)
    with pytest.raises(PreconditionFailed, match="pruned"):
        steps.preflight(ctx)
    failed_step(ctx, "preflight")
    assert snapshot(sb) == before


def test_helm_binary_missing(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    before = snapshot(sb)
    missing = str(tmp_path / "no-such-dir" / "helm")
    ctx = start(sb, tmp_path, helm_binary=missing, deployed_at=datetime.now(UTC))
    steps.assess(ctx)
    steps.decide(ctx)
    with pytest.raises(CommandFailed, match="no-such-dir/helm") as caught:
        steps.preflight(ctx)
    assert not caught.value.retryable
    failed_step(ctx, "preflight")
    assert snapshot(sb) == before


def test_helm_binary_vanishing_before_rollback_releases_lock(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    link = tmp_path / "bin" / "helm"
    link.parent.mkdir()
    link.symlink_to(sb.bin_dir / "helm")
    before = snapshot(sb)
    ctx = start(sb, tmp_path, helm_binary=str(link))
    for step in UP_TO_ROLLBACK:
        step(ctx)
    assert (lease_holder(sb) or "").startswith(f"{ctx.settings.lock.lock_holder} (pid ")
    link.unlink()
    with pytest.raises(CommandFailed):
        steps.helm_rollback(ctx)
    failed_step(ctx, "helm_rollback")
    assert snapshot(sb) == before  # includes: no lease left behind


# -- a rollout that never completes -------------------------------------------------------------


def _unschedulable_target(sb: Sandbox, progress_deadline_s: int) -> None:
    """History whose rollback target's pods can never be scheduled (chart knob)."""
    sb.deploy(
        "v1.0.0",
        values={
            "faults.unschedulable": "true",
            "progressDeadlineSeconds": str(progress_deadline_s),
        },
        wait=False,
    )
    sb.deploy("v1.1.0")


def _rolled_back_to_unschedulable(
    sb: Sandbox, tmp_path: Path, *, progress_deadline_s: int, rollout_timeout: str
) -> steps.RunContext:
    """A run through ``helm rollback`` to a target whose pods can never be scheduled."""
    _unschedulable_target(sb, progress_deadline_s=progress_deadline_s)
    ctx = start(sb, tmp_path, rollout_timeout=rollout_timeout)
    for step in (*UP_TO_ROLLBACK, steps.helm_rollback):
        step(ctx)
    return ctx


def test_rollout_past_progress_deadline_fails(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    ctx = _rolled_back_to_unschedulable(sb, tmp_path, progress_deadline_s=5,
                                        rollout_timeout="2m")  # fmt: skip
    with pytest.raises(VerificationFailed, match="progress deadline"):
        steps.wait_for_rollout(ctx)
    failed_step(ctx, "wait_for_rollout")
    assert lease_holder(sb) is None
    assert BAD_IMAGE in serving_pods(sb).values()  # still serving: nothing was torn down


def test_rollout_timeout(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    ctx = _rolled_back_to_unschedulable(sb, tmp_path, progress_deadline_s=600,
                                        rollout_timeout="5s")  # fmt: skip
    with pytest.raises(StepTimeout) as caught:
        steps.wait_for_rollout(ctx)
    assert caught.value.step == "wait_for_rollout"
    failed_step(ctx, "wait_for_rollout")
    assert lease_holder(sb) is None


# -- Prometheus down during the recovery check --------------------------------------------------


def test_prometheus_down_never_claims_recovery(bad_deploy: Sandbox, tmp_path: Path) -> None:
    from runbook_sandbox import metrics_stack

    sb = bad_deploy
    ctx = start(sb, tmp_path, recovery_within="10s")
    for step in (*UP_TO_ROLLBACK, steps.helm_rollback, steps.wait_for_rollout, steps.verify_image):
        step(ctx)
    metrics_stack.stop(sb.state_dir)
    try:
        with pytest.raises(VerificationFailed, match="metrics unavailable"):
            steps.check_recovery(ctx)
        # Escalated, and migrations stay blocked.
        channel = (tmp_path / "channel.jsonl").read_text()
        assert "ESCALATION" in channel
        with pytest.raises(PreconditionFailed, match="migrations blocked"):
            steps.revert_migrations(ctx)
    finally:
        metrics_stack.start(sb.state_dir, sb.kubeconfig)
    failed_step(ctx, "check_recovery")
    assert ctx.facts.outcome is Outcome.NOT_RECOVERED
    assert lease_holder(sb) is None
    assert schema_on_host(sb) == 2


# -- the webhook fails ------------------------------------------------------------------------


@pytest.fixture
def failing_webhook() -> Iterator[tuple[str, list[bytes]]]:
    """A real local webhook that answers every POST with HTTP 500."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(500)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/services/T1/B1/hiddenPathToken", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_500_does_not_block_the_rollback(
    bad_deploy: Sandbox, tmp_path: Path, failing_webhook: tuple[str, list[bytes]]
) -> None:
    sb = bad_deploy
    url, bodies = failing_webhook
    ctx = start(sb, tmp_path, slack_webhook_url=url)
    results = run_all(ctx)
    assert results["notify"].failed == ("slack",)
    assert len(bodies) == 2  # tried, retried once, moved on
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}
    warnings = [e for e in events(ctx) if e["step"] == "notify" and e["kind"] == "warning"]
    assert len(warnings) == 2
    assert "hiddenPathToken" not in ctx.timeline.path.read_text()  # type: ignore[union-attr]


# -- migrations, lock -----------------------------------------------------------------------------


def test_migrator_pod_missing(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    ctx = start(sb, tmp_path)
    for step in (
        *UP_TO_ROLLBACK, steps.helm_rollback, steps.wait_for_rollout, steps.verify_image,
        steps.check_recovery,
    ):  # fmt: skip
        step(ctx)
    sb.kubectl("delete", "pod", "migrator", "--wait=true", "--grace-period=0", "--force")
    with pytest.raises(
        PreconditionFailed, match=r"no running, ready pod matches .app in \(migrator\)."
    ):
        steps.revert_migrations(ctx)
    failed_step(ctx, "revert_migrations")
    assert lease_holder(sb) is None
    assert schema_on_host(sb) == 2  # not reverted
    assert set(serving_pods(sb).values()) == {GOOD_IMAGE}  # the rollback itself stands


def _lease_of(sb: Sandbox, tmp_path: Path, holder: str, renewed: datetime) -> None:
    at = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "runbook-rollback-app", "namespace": "default"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 900,
            "acquireTime": at,
            "renewTime": at,
        },
    }
    manifest = tmp_path / "lease.json"
    manifest.write_text(json.dumps(lease))
    sb.kubectl("apply", "-f", str(manifest))


def test_stale_lease_is_taken_over_with_a_recorded_warning(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    _lease_of(sb, tmp_path, "bob@crashed-laptop/INC-3", datetime.now(UTC) - timedelta(hours=2))
    try:
        ctx = start(sb, tmp_path, lock_ttl="10m")
        for step in (steps.assess, steps.decide, steps.preflight):
            step(ctx)
        assert (lease_holder(sb) or "").startswith(f"{ctx.settings.lock.lock_holder} (pid ")
        warnings = [e["message"] for e in events(ctx) if e["kind"] == "warning"]
        assert any("bob@crashed-laptop/INC-3" in w and "stale" in w for w in warnings)
        steps.finish(ctx)
        assert lease_holder(sb) is None
    finally:
        sb.kubectl("delete", "lease", "runbook-rollback-app", "--ignore-not-found")


def test_lease_held_by_another_run(bad_deploy: Sandbox, tmp_path: Path) -> None:
    sb = bad_deploy
    _lease_of(sb, tmp_path, "alice@laptop/INC-7", datetime.now(UTC))
    try:
        before = snapshot(sb)
        ctx = start(sb, tmp_path)
        steps.assess(ctx)
        steps.decide(ctx)
        with pytest.raises(LockHeld) as caught:
            steps.preflight(ctx)
        assert caught.value.holder == "alice@laptop/INC-7"
        failed_step(ctx, "preflight")
        assert snapshot(sb) == before  # alice still holds it; nothing else changed
        # A rehearsal says so too, without failing.
        rehearsal = start(sb, tmp_path, dry_run=True, incident_id="e2e-dry")
        for step in (steps.assess, steps.decide, steps.preflight):
            step(rehearsal)
        warned = [e["message"] for e in events(rehearsal) if e["kind"] == "warning"]
        assert any("alice@laptop/INC-7" in w for w in warned)
        assert lease_holder(sb) == "alice@laptop/INC-7"
    finally:
        sb.kubectl("delete", "lease", "runbook-rollback-app", "--ignore-not-found")


def test_schema_not_moved_by_the_requested_amount_is_caught(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    # A mistyped command: asked to revert 1 migration, the command reverts 2.
    ctx = start(sb, tmp_path, migrations_to_revert=1, migrate_command="./migrate down 2")
    for step in (
        *UP_TO_ROLLBACK, steps.helm_rollback, steps.wait_for_rollout, steps.verify_image,
        steps.check_recovery,
    ):  # fmt: skip
        step(ctx)
    with pytest.raises(VerificationFailed, match="from 2 to 0, expected down by 1"):
        steps.revert_migrations(ctx)
    ran = [e for e in events(ctx) if e["step"] == "revert_migrations" and "exit_code" in e["data"]]
    assert ran[0]["data"]["exit_code"] == 0  # the command's own output is kept as evidence
    assert lease_holder(sb) is None
