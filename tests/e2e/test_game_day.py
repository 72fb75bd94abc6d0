"""The game day, in the suite: headless runs on a bad deploy, faults at the worst moments.

Each scenario runs ``runbook run rollback`` as people and automations do, against the sandbox's
real API server and helm, and checks what a person would: the cluster (``helm history``, the
pods' images), the exit status and message, the record's words, ``runbook verify-evidence``,
and the lock (the Lease free, or held by whom).

- two runs started together under ONE incident id: exactly one ``helm rollback``;
- two runs started together under two incident ids: the same;
- ``helm rollback`` that applies the rollback and then hangs until ``helm_timeout`` kills it:
  the run reads the cluster back and says the rollback was applied;
- the whole run SIGKILLed mid-rollback: a rerun takes the lock at once (the holder process is
  gone), reads the cluster back, seals the crashed run's evidence as what is so, and finishes
  within a minute;
- the wrong cluster: refused before anything is read or changed.

The decision is the manual rule (``manual_reason``), so no test waits for a breach.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sandbox_runs import RUNBOOK, rollback_argv

from runbook_lib.core.exit_status import REFUSED
from runbook_lib.record.facts import Outcome, RunFacts, attempts
from runbook_lib.record.timeline import Timeline

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


GOOD_IMAGE = "registry.local/api:v1.0.0"
SHORT = {
    "step": "2s",
    "recovery_poll": "2s",
    "recovery_within": "2m",
    "prometheus_rate_window": "10s",
}


@pytest.fixture
def bad_deploy(clean_sandbox: Sandbox) -> Sandbox:
    """Revision 1 v1.0.0 (good), revision 2 v1.1.0 (the bad deploy), no Lease."""
    clean_sandbox.deploy("v1.1.0")
    return clean_sandbox


def _params(sb: Sandbox, tmp_path: Path, incident: str, **extra: Any) -> dict[str, Any]:
    return {
        "incident_id": incident,
        **sb.run_parameters,
        "manual_reason": "game day: the on-call engineer rolls back",
        "confirm": True,
        "console": False,
        "notify_file": str(tmp_path / f"channel-{incident}.txt"),
        "output_dir": str(tmp_path / "ev"),
        **SHORT,
        **extra,
    }


def _start(sb: Sandbox, params: Mapping[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(rollback_argv(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **sb.env})  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout_s: float = 300) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def _history(sb: Sandbox) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(sb.helm("history", "app", "-o", "json"))
    return rows


def _rollbacks(sb: Sandbox) -> list[int]:
    """The revisions ``helm rollback`` made."""
    return [r["revision"] for r in _history(sb) if str(r["description"]).startswith("Rollback")]


def _images(sb: Sandbox) -> set[str]:
    out = sb.kubectl("get", "pods", "-l", "app=api", "-o",
                     "jsonpath={.items[*].spec.containers[*].image}")  # fmt: skip
    return set(out.split())


def _wait_for_images(sb: Sandbox, images: set[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while _images(sb) != images:
        assert time.monotonic() < deadline, f"pods run {_images(sb)}, not {images}"
        time.sleep(0.5)


def _lease_holder(sb: Sandbox) -> str | None:
    out = sb.kubectl("get", "lease", "runbook-rollback-app", "--ignore-not-found",
                     "-o", "jsonpath={.spec.holderIdentity}")  # fmt: skip
    return out.strip() or None


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUNBOOK), "verify-evidence", str(folder)], capture_output=True,
                          text=True, check=False)  # fmt: skip


def _runs(folder: Path) -> dict[str, RunFacts]:
    """Every run in an incident's timeline, by run id, with its own facts."""
    events = Timeline(folder / "timeline.jsonl").events
    return {key: RunFacts.read(events, run=key) for key, _ in attempts(events)}


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout_s} s"
        time.sleep(0.1)


def _helm_that_applies_then_hangs(real: Path, folder: Path, *, hang_s: int) -> Path:
    """``helm rollback`` applies the rollback for real, then hangs (bounded) as if the API
    server stopped answering before helm could report: only a kill ends it early."""
    wrapper = folder / "helm"
    wrapper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = rollback ]; then\n'
        f'  "{real}" "$@" || exit $?\n'
        f'  echo $$ > "{folder}/helm.pid"\n'
        f'  touch "{folder}/applied"\n'
        f"  exec sleep {hang_s}\n"
        "fi\n"
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def _assert_started_together_gave_one_rollback(
    sb: Sandbox, results: list[tuple[int, str, str]], folders: list[Path]
) -> tuple[str, str]:
    """One run rolled back and recovered; the other was refused naming the holder."""
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [0, REFUSED], [r[2][-2000:] for r in results]
    assert _rollbacks(sb) == [3]  # exactly one helm rollback: revision 3, "Rollback to 1"
    _wait_for_images(sb, {GOOD_IMAGE})
    assert _lease_holder(sb) is None
    winner = next(r for r in results if r[0] == 0)
    loser = next(r for r in results if r[0] == REFUSED)
    assert "outcome: recovered" in winner[1]
    assert "cluster: rolled back by this run: revision 2 -> 1" in winner[1]
    assert "outcome: refused" in loser[1]
    # Refused by the lock, naming its holder as a process: preflight takes the Lease before
    # it reads helm history, so the loser never sees the winner's rollback half-made.
    assert "is being rolled back by 'GD-" in loser[2], loser[2]
    assert " (pid " in loser[2], loser[2]
    for folder in folders:
        assert _verify(folder).returncode == 0, _verify(folder).stdout
    return winner[1], loser[2]


def test_two_runs_with_one_incident_id_started_together_roll_back_once(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    params = _params(sb, tmp_path, "GD-SAME")
    procs = [_start(sb, params), _start(sb, params)]
    results = [_finish(proc) for proc in procs]
    folder = tmp_path / "ev" / "GD-SAME"
    _assert_started_together_gave_one_rollback(sb, results, [folder])
    # One timeline, two runs, each with its own story.
    runs = _runs(folder)
    assert len(runs) == 2
    outcomes = sorted(facts.outcome.value for facts in runs.values())
    assert outcomes == [Outcome.RECOVERED.value, Outcome.REFUSED.value]
    rolled = [facts for facts in runs.values() if facts.rolled_back is not None]
    assert len(rolled) == 1
    refused = next(facts for facts in runs.values() if facts.outcome is Outcome.REFUSED)
    assert refused.failure is not None
    assert refused.failure.error_type == "LockHeld"
    assert refused.lock is None
    assert rolled[0].lock is not None
    assert rolled[0].lock.holder in refused.failure.message
    md = (folder / "record.md").read_text()
    assert "- Bad release: v1.1.0 (revision 2); rolled back to v1.0.0 (revision 1)" in md
    # The refused run collected nothing over the holder's evidence, and notified nobody.
    channel = (tmp_path / "channel-GD-SAME.txt").read_text()
    assert channel.count("Rolling back app from v1.1.0 to v1.0.0") == 1


def test_two_runs_with_two_incident_ids_started_together_roll_back_once(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    procs = [_start(sb, _params(sb, tmp_path, incident)) for incident in ("GD-A", "GD-B")]
    results = [_finish(proc) for proc in procs]
    folders = [tmp_path / "ev" / incident for incident in ("GD-A", "GD-B")]
    _assert_started_together_gave_one_rollback(sb, results, folders)
    records = {f.name: json.loads((f / "record.json").read_text()) for f in folders}
    assert sorted(r["outcome"] for r in records.values()) == ["recovered", "refused"]
    refused = next(f for f in folders if records[f.name]["outcome"] == "refused")
    assert records[refused.name]["rolled_back"] is False
    assert not (refused / "kubernetes").exists()  # the holder's business, not the refused run's


def test_a_rollback_applied_then_killed_by_helm_timeout_is_recorded_as_applied(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    helm = _helm_that_applies_then_hangs(sb.bin_dir / "helm", tmp_path, hang_s=120)
    params = _params(sb, tmp_path, "GD-TIMEOUT", helm_binary=str(helm), helm_timeout="2s")
    status, out, err = _finish(_start(sb, params))
    folder = tmp_path / "ev" / "GD-TIMEOUT"
    assert status == 1, err[-3000:]
    # The cluster: the rollback is in, whatever helm's exit said.
    history = _history(sb)
    assert [(r["revision"], r["status"]) for r in history] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")
    ]  # fmt: skip
    assert history[-1]["description"] == "Rollback to 1"
    _wait_for_images(sb, {GOOD_IMAGE})
    # The run says so: exit line, record, notification, all the same sentence.
    facts = next(iter(_runs(folder).values()))
    read = facts.read_back
    assert read is not None
    assert read.rollback_applied
    assert read.revision == 3
    assert read.reason.startswith("helm rollback was started at ")
    assert "killed after 1" in read.reason  # helm_timeout 2 s + 10 s of grace
    assert read.reason.endswith("(helm_timeout 2 s)")
    assert "the release is at revision 3 (v1.0.0, 'Rollback to 1', made at " in read.sentence
    assert ": the rollback was applied" in read.sentence
    assert f"cluster: {read.sentence}" in out
    assert "not changed by this run" not in out
    record = json.loads((folder / "record.json").read_text())
    assert record["rolled_back"] is True
    assert record["rolled_back_by_this_run"] is True
    assert record["cluster_read_back"]["sentence"] == read.sentence
    md = (folder / "record.md").read_text()
    assert read.sentence in md
    assert "Nothing was rolled back" not in md
    channel = (tmp_path / "channel-GD-TIMEOUT.txt").read_text()
    assert read.sentence in channel
    assert _lease_holder(sb) is None  # given back when the step failed
    assert _verify(folder).returncode == 0


def _kernel_of(pid: int) -> int:
    """The notebook kernel ``runbook run`` (pid) started: its child process."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            return int(stat_file.parent.name)
    raise AssertionError(f"runbook run {pid} has no kernel")


def test_a_run_killed_mid_rollback_is_sealed_by_a_rerun_with_what_is_so(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    helm = _helm_that_applies_then_hangs(sb.bin_dir / "helm", tmp_path, hang_s=120)
    # A lock_ttl far longer than any run, however busy the machine: the rerun finishing before
    # the crashed run's Lease frees proves it never waited for it.
    ttl = {"lock_ttl": "10m"}
    crash = _start(sb, _params(sb, tmp_path, "GD-CRASH", helm_binary=str(helm), **ttl))
    try:
        _wait_for(tmp_path / "applied", crash)
        kernel = _kernel_of(crash.pid)
        # The machine dies: the command, its kernel and the helm it started, all at once.
        os.kill(crash.pid, signal.SIGKILL)
        os.killpg(kernel, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        killed = time.monotonic()
    finally:
        _finish(crash, timeout_s=30)
        pid = tmp_path / "helm.pid"
        if pid.exists():  # normally gone with its process group; never left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid.read_text()), signal.SIGKILL)
    crashed = tmp_path / "ev" / "GD-CRASH"
    assert _verify(crashed).returncode != 0  # its timeline went on after its last seal
    lease = json.loads(sb.kubectl("get", "lease", "runbook-rollback-app", "-o", "json"))
    assert lease["spec"]["holderIdentity"].startswith("GD-CRASH@")  # renewed < 1 min ago
    frees_at = datetime.fromisoformat(lease["spec"]["renewTime"]) + timedelta(
        seconds=lease["spec"]["leaseDurationSeconds"]
    )

    status, out, err = _finish(_start(sb, _params(sb, tmp_path, "GD-RERUN", **ttl)))
    elapsed = time.monotonic() - killed
    assert status == 0, err[-3000:]
    assert "outcome: already_rolled_back" in out
    assert _rollbacks(sb) == [3]
    _wait_for_images(sb, {GOOD_IMAGE})
    assert _lease_holder(sb) is None

    # The rerun took the lock at once, while the crashed run's Lease was still live: its
    # holder's process was gone.
    rerun_events = Timeline(tmp_path / "ev" / "GD-RERUN" / "timeline.jsonl").events
    rerun = RunFacts.read(rerun_events)
    assert rerun.lock is not None
    assert rerun.lock.takeover == "gone"
    assert "no longer exists" in rerun.lock.reason
    taken_at = next(e.at for e in rerun_events if e.data.get("fact") == "lock_taken")
    assert taken_at < frees_at, (killed_at, taken_at, frees_at)
    # ... and finished before that Lease would have freed itself (the whole command, kernel
    # start and the notebook's rendering included, is printed for the record).
    assert rerun.finished is not None
    finished_at = next(e.at for e in rerun_events if e.data.get("fact") == "finished")
    assert finished_at < frees_at, (taken_at, finished_at, frees_at)
    print(f"rerun: lock taken {(taken_at - killed_at).total_seconds():.1f} s after the kill; "
          f"the whole command ended {elapsed:.1f} s after it")  # fmt: skip
    # ... and sealed the crashed run as what is so: its rollback was applied.
    crashed_facts = next(iter(_runs(crashed).values()))
    assert crashed_facts.outcome is Outcome.INTERRUPTED
    read = crashed_facts.read_back
    assert read is not None
    assert read.rollback_applied
    assert read.reason.startswith("helm rollback was started at ")
    assert "never reported back" in read.reason
    assert "the release is at revision 3 (v1.0.0, 'Rollback to 1'" in read.sentence
    record = json.loads((crashed / "record.json").read_text())
    assert record["outcome"] == "interrupted"
    assert record["rolled_back"] is True
    assert read.sentence in (crashed / "record.md").read_text()
    assert _verify(crashed).returncode == 0
    (found,) = rerun.earlier_runs
    assert found.incident_id == "GD-CRASH"
    assert "the rollback was applied" in found.outcome
    # The rerun names the bad release from history, never the rollback revision as the bad one.
    rerun_record = json.loads((tmp_path / "ev" / "GD-RERUN" / "record.json").read_text())
    assert rerun_record["bad_revision"] == 2
    channel = tmp_path / "channel-GD-RERUN.txt"
    assert "from v1.0.0 to v1.0.0" not in (channel.read_text() if channel.exists() else "")
    assert _verify(tmp_path / "ev" / "GD-RERUN").returncode == 0


def test_the_wrong_cluster_is_refused_before_anything_is_read_or_changed(
    bad_deploy: Sandbox, tmp_path: Path
) -> None:
    sb = bad_deploy
    before = _history(sb)
    params = _params(sb, tmp_path, "GD-WRONG", expected_cluster="kwok-production")
    status, out, err = _finish(_start(sb, params))
    folder = tmp_path / "ev" / "GD-WRONG"
    assert status == REFUSED
    assert f"refusing to act: kube context '{sb.context}'" in err
    assert "is not the expected cluster 'kwok-production'" in err
    assert "outcome: refused" in out
    assert _history(sb) == before
    assert _lease_holder(sb) is None
    assert not (folder / "kubernetes").exists()  # nothing read from a cluster not ours
    assert not (folder / "helm").exists()
    record = json.loads((folder / "record.json").read_text())
    assert (record["outcome"], record["rolled_back"]) == ("refused", False)
    assert "- Outcome: **refused**" in (folder / "record.md").read_text()
    assert _verify(folder).returncode == 0
