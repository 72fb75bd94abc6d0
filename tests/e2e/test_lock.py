"""The lock on the sandbox (real Lease, real helm): it holds through a long prompt, it is
checked before a change, it is taken over only with a recorded reason, and a crashed run's
lock is taken at once by a rerun (its process is gone) that seals and links the crashed
evidence, read back from the cluster.
Also: a release re-deployed during ``check_recovery`` is reported as changed, not unrecovered.

Each test has a bad deploy of its own (the plugin's ``release`` and ``deploy``: a namespace
of its own). TTLs are seconds long here, so the tests prove renewal and expiry without
waiting a minute.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sandbox_runs import release_run
from sandbox_waits import wait_until

from runbook_lib import steps
from runbook_lib.errors import LockHeld, LockLost, ReleaseChangedUnderRun
from runbook_lib.record.facts import Outcome, RunFacts
from runbook_lib.record.timeline import Timeline
from runbook_sandbox.team import TeamRelease

BAD_IMAGE = "registry.local/api:v1.1.0"


def params(release: TeamRelease, tmp_path: Path, incident: str, **over: Any) -> dict[str, Any]:
    """A run against the release in the parameter vocabulary, scaled for tests."""
    values = release_run(
        release,
        tmp_path,
        incident,
        step="2s",
        recovery_poll="2s",
        notify_file=str(tmp_path / "channel.jsonl"),
        lock_holder=f"{incident}@e2e",
        lock_ttl="3s",
        lock_release_grace="5s",
    )
    return values | over


def start(release: TeamRelease, tmp_path: Path, incident: str, **over: Any) -> steps.RunContext:
    return steps.start_run(**params(release, tmp_path, incident, **over))


def revisions(release: TeamRelease) -> list[tuple[int, str]]:
    return [(r["revision"], r["status"]) for r in release.history()]


@pytest.fixture
def bad_deploy(release: TeamRelease, deploy: Callable[..., int]) -> TeamRelease:
    """Revision 1 v1.0.0, revision 2 v1.1.0 (the bad one), no lock: a release of its own."""
    deploy("v1.1.0")
    return release


def renewed_for(release: TeamRelease, seconds: float) -> None:
    """Wait until the release's Lease has been renewed ``seconds`` after it was acquired."""

    def span() -> float:
        spec = json.loads(release.kubectl("get", "lease", release.lease, "-o", "json"))["spec"]
        acquired, renewed = (
            datetime.fromisoformat(spec[k].replace("Z", "+00:00"))
            for k in ("acquireTime", "renewTime")
        )
        return (renewed - acquired).total_seconds()

    wait_until(lambda: span() >= seconds, f"the lock renewed {seconds:g} s after it was taken")


def to_the_prompt(ctx: steps.RunContext) -> None:
    steps.assess(ctx)
    steps.decide(ctx)
    steps.preflight(ctx)


def test_lock_holds_through_a_long_prompt_and_is_taken_over_only_with_a_reason(
    bad_deploy: TeamRelease, tmp_path: Path
) -> None:
    sb = bad_deploy
    seen: dict[str, Any] = {}

    def slow_person(question: str) -> str:
        # The person answers once alice's lock has been renewed for longer than twice its
        # 3 s TTL: without renewal it would be free by now.
        renewed_for(sb, 2 * 3.0 + 1.0)
        bob = start(sb, tmp_path, "lock-bob")
        steps.assess(bob)
        steps.decide(bob)
        seen["asked"] = datetime.now(UTC)
        with pytest.raises(LockHeld) as held:
            steps.preflight(bob)
        seen["held"] = held.value
        # Carol takes it over deliberately; her own TTL is long, so it stays hers.
        carol = start(sb, tmp_path, "lock-carol", lock_ttl="1m",
                      lock_takeover_reason="alice is unreachable, her laptop froze")  # fmt: skip
        to_the_prompt(carol)
        seen["carol"] = carol
        return "yes"

    alice = start(sb, tmp_path, "lock-alice", confirm=False, ask=slow_person)
    to_the_prompt(alice)
    before = revisions(sb)
    steps.confirm(alice)

    held = seen["held"]
    assert held.holder.startswith("lock-alice@e2e (pid ")  # a process, alive: not gone
    text = str(held)
    assert "incident lock-alice" in text
    assert "held since" in text
    assert "frees itself at" in text
    assert "lock_takeover_reason" in text
    # Renewed during the prompt: without renewal it would have freed itself 3 s after
    # preflight, long before Bob asked.
    assert held.frees_at is not None
    assert held.frees_at >= seen["asked"]

    carol: steps.RunContext = seen["carol"]
    taken = carol.facts.lock
    assert taken is not None
    assert taken.takeover == "deliberate"
    assert taken.previous_holder == held.holder
    assert taken.reason == "alice is unreachable, her laptop froze"
    assert (sb.lease_holder() or "").startswith("lock-carol@e2e (pid ")

    # Alice's rollback stops before changing anything, naming who holds the lock now.
    steps.notify(alice)
    with pytest.raises(LockLost) as lost:
        steps.helm_rollback(alice)
    assert lost.value.holder == sb.lease_holder()
    assert "lock-carol@e2e" in str(lost.value)
    assert "alice is unreachable" in str(lost.value)
    assert revisions(sb) == before
    assert (sb.lease_holder() or "").startswith("lock-carol@e2e")  # never freed by the loser

    # Re-running the cell refuses while Carol holds the lock ...
    with pytest.raises(LockHeld):
        steps.helm_rollback(alice)
    assert revisions(sb) == before
    # ... and takes it again once it is free.
    steps.finish(carol)
    steps.write_record(carol)
    assert (
        "alice is unreachable, her laptop froze" in (carol.incident_dir / "record.md").read_text()
    )
    done = steps.helm_rollback(alice)
    assert done.action == "rolled back"
    assert (sb.lease_holder() or "").startswith("lock-alice@e2e")
    steps.finish(alice)
    assert sb.lease_holder() is None


CRASHING_RUN = """
import json, sys
from runbook_lib import steps
ctx = steps.start_run(**json.load(open(sys.argv[1])))
for step in steps.ROLLBACK_STEPS:
    step(ctx)
"""


def helm_that_signals(real: Path, folder: Path) -> Path:
    """A helm that marks when ``helm rollback`` starts and when it ends, around the real one."""
    wrapper = folder / "helm"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = rollback ]; then touch "{folder}/rollback-started"; fi\n'
        f'"{real}" "$@"\nstatus=$?\n'
        f'if [ "$1" = rollback ]; then touch "{folder}/rollback-ended"; fi\n'
        "exit $status\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def wait_for(path: Path, timeout_s: float, *, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        said = log.read_text(errors="replace")[-3000:] if log is not None else ""
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout_s} s\n{said}"
        time.sleep(0.05)


def test_a_run_killed_mid_rollback_frees_the_lock_and_the_rerun_seals_its_evidence(
    bad_deploy: TeamRelease, tmp_path: Path
) -> None:
    sb = bad_deploy
    helm = helm_that_signals(sb.sandbox.bin_dir / "helm", tmp_path)
    # A minute's TTL: the rerun must not need to wait for it.
    crashed_params = params(sb, tmp_path, "crash-1", helm_binary=str(helm), lock_ttl="1m")
    (tmp_path / "crash.json").write_text(json.dumps(crashed_params))
    with (tmp_path / "crash.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", CRASHING_RUN, str(tmp_path / "crash.json")],
            env=os.environ | sb.sandbox.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(tmp_path / "rollback-started", 120.0, log=tmp_path / "crash.log")
        os.kill(child.pid, signal.SIGKILL)  # a laptop dying: no handler, no cleanup
        killed_at = datetime.now(UTC)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    wait_for(tmp_path / "rollback-ended", 60.0)  # helm itself was not killed
    crashed_dir = tmp_path / "evidence" / "crash-1"
    assert not (crashed_dir / "MANIFEST.sha256").exists()

    # The crashed run's process is gone: the rerun takes its lock at once, not after its TTL.
    rerun = start(sb, tmp_path, "crash-1-rerun", lock_ttl="1m")
    steps.assess(rerun)
    steps.decide(rerun)
    steps.preflight(rerun)
    assert (datetime.now(UTC) - killed_at).total_seconds() < 60.0
    taken = rerun.facts.lock
    assert taken is not None
    assert taken.takeover == "gone"
    assert taken.previous_holder == f"crash-1@e2e (pid {child.pid} on {socket.gethostname()})"
    assert taken.reason == f"its process {child.pid} on {socket.gethostname()} no longer exists"
    for step in steps.ROLLBACK_STEPS[3:]:
        step(rerun)
    steps.write_record(rerun)
    assert rerun.facts.outcome in (Outcome.RECOVERED, Outcome.ALREADY_ROLLED_BACK)

    # The crashed run's folder: sealed as interrupted, with its record and a manifest.
    events = Timeline(crashed_dir / "timeline.jsonl").events
    assert RunFacts.read(events).outcome is Outcome.INTERRUPTED
    record = json.loads((crashed_dir / "record.json").read_text())
    assert record["outcome"] == "interrupted"
    manifest = (crashed_dir / "MANIFEST.sha256").read_text()
    assert "timeline.jsonl" in manifest
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=crashed_dir,
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    # ... linked from the rerun's own record.
    read = RunFacts.read(events).read_back  # what the cluster said when it was sealed
    assert read is not None
    assert read.rollback_applied  # helm outlived its run and finished the rollback
    assert record["rolled_back"] is True
    found = rerun.facts.earlier_runs
    assert [f.incident_id for f in found] == ["crash-1"]
    assert found[0].outcome == f"interrupted; cluster read back: {read.sentence}"
    assert Path(found[0].path) == crashed_dir.resolve()
    md = (rerun.incident_dir / "record.md").read_text()
    assert f"Earlier run found: incident crash-1, evidence {crashed_dir.resolve()}" in md


def test_a_redeploy_during_check_recovery_is_a_changed_release(
    bad_deploy: TeamRelease, tmp_path: Path
) -> None:
    sb = bad_deploy
    redeploy = {"armed": False, "done": False}

    def sleep(seconds: float) -> None:
        if redeploy["armed"] and not redeploy["done"]:
            redeploy["done"] = True
            sb.deploy("v1.1.0")  # someone re-deploys the bad version meanwhile
        time.sleep(seconds)

    ctx = start(sb, tmp_path, "redeploy", recovery_within="10s", sleep=sleep)
    for step in steps.ROLLBACK_STEPS[:8]:  # assess ... verify_image
        step(ctx)
    redeploy["armed"] = True
    with pytest.raises(ReleaseChangedUnderRun) as changed:
        steps.check_recovery(ctx)
    assert redeploy["done"]
    err = changed.value
    assert err.revision == 4  # 1 good, 2 bad, 3 the rollback, 4 the re-deploy
    assert err.version == "v1.1.0"
    assert err.changed_at
    assert "revision 4" in str(err)
    fact = ctx.facts.release_changed
    assert fact is not None
    assert fact.expected_revision == 3
    assert BAD_IMAGE in fact.images
    assert ctx.facts.outcome is Outcome.RELEASE_CHANGED
    escalation = (tmp_path / "channel.jsonl").read_text()
    assert "CHANGED under it" in escalation
    assert "recovery is NOT verified" not in escalation
