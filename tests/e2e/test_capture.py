"""Capturing the bad release's pods before the rollback deletes them.

Each test deploys its bad version on a release of its own (the plugin's ``release``, in a
namespace of its own), so its pods and their logs are that test's alone."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox_waits import pods_have_logged

from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.pod_capture import PodState, list_pod_states
from runbook_lib.core.capture import CaptureBounds
from runbook_lib.evidence.capture import (
    BEFORE_ROLLBACK,
    CaptureReport,
    capture_release_pods,
    start_capture,
)
from runbook_sandbox.team import TeamRelease

_LINE = re.compile(r"version=(\S+) pod=(\S+)$")


@dataclass(frozen=True)
class BadPods:
    """Release ``release`` at v1.1.0, its pods having logged since ``deployed_at``, and a
    ``kube`` client on the sandbox."""

    release: TeamRelease
    deployed_at: datetime
    kube: Kube
    out: Path

    def states(self) -> list[PodState]:
        return list_pod_states(self.kube, self.release.namespace, "app=api")

    def capture(self, **given: Any) -> CaptureReport:
        """``capture_release_pods`` of the release's api pods into ``out``, unredacted
        unless ``redact`` is given."""
        return capture_release_pods(
            self.kube, namespace=self.release.namespace, selector="app=api",
            since=self.deployed_at, output_dir=self.out, **{"redact": str, **given},
        )  # fmt: skip


@contextlib.contextmanager
def _bad_pods(
    release: TeamRelease, out: Path, *, min_bytes: int = 1, **values: str
) -> Iterator[BadPods]:
    """Deploy v1.1.0 and wait until each of its pods has logged (its 5xx among them)."""
    deployed_at = datetime.now(UTC)
    release.deploy("v1.1.0", values=values or None)
    pods_have_logged(release.sandbox, "v1.1.0", min_bytes=min_bytes, failures=not values,
                     namespace=release.namespace)  # fmt: skip
    sb = release.sandbox
    with Kube(kubeconfig=sb.kubeconfig, context=sb.context) as kube:
        yield BadPods(release, deployed_at, kube, out)


def test_capture_keeps_each_bad_pod_log_and_says_which_revision(
    release: TeamRelease, tmp_path: Path
) -> None:
    with _bad_pods(release, tmp_path) as bad:
        report = bad.capture(release_revision="revision 2 (v1.1.0)")
    assert len(report.pods) == 4
    assert report.gaps == ()
    assert report.truncated == ()
    pods = json.loads((tmp_path / BEFORE_ROLLBACK / "pods.json").read_text())
    assert {p["release_revision"] for p in pods} == {"revision 2 (v1.1.0)"}
    assert {tuple(p["images"]) for p in pods} == {("registry.local/api:v1.1.0",)}
    assert len({p["pod_template_hash"] for p in pods}) == 1
    errors = 0
    for pod in report.pods:
        lines = (tmp_path / BEFORE_ROLLBACK / "logs" / f"{pod}.log").read_text().splitlines()
        owners = {m.groups() for m in map(_LINE.search, lines) if m}
        assert owners == {("v1.1.0", pod)}
        errors += sum(bool(re.search(r"status=50[03] ", line)) for line in lines)
    assert errors > 0
    capture = json.loads((tmp_path / BEFORE_ROLLBACK / "capture.json").read_text())
    assert capture["bytes_captured"] == report.bytes_captured > 0
    # After the rollback those pods are gone, and their logs with them: only the capture has them.
    release.helm("rollback", release.name, "1", "--wait")
    left = {
        p["metadata"]["name"]
        for p in json.loads(release.kubectl("get", "pods", "-l", "app=api", "-o", "json"))["items"]
    }
    assert not left & set(report.pods)


def test_logs_are_cut_at_the_per_pod_and_total_bounds(release: TeamRelease, tmp_path: Path) -> None:
    bounds = CaptureBounds(per_pod_bytes=4096, total_bytes=2 * 4096 + 1024)
    # Well over each pod's 4 KiB budget.
    with _bad_pods(release, tmp_path, min_bytes=8192) as bad:
        report = bad.capture(bounds=bounds)
    assert report.bytes_captured <= bounds.total_bytes
    # Every pod logged more than its budget: each captured log is cut, with the marker.
    assert len(report.truncated) >= 3
    for rel in report.truncated:
        text = (tmp_path / rel).read_text()
        body, marker = text.rstrip("\n").rsplit("\n", 1)
        assert len((body + "\n").encode()) <= 4096
        assert marker.startswith("[runbook: TRUNCATED log of ")
        assert re.search(r"at \d+ bytes \(evidence bound\)", marker)
    # The total left the last pod little or nothing: cut shorter, or listed as a gap.
    assert len(report.truncated) + len(report.gaps) == 4
    assert all("total bound of 9216 bytes" in gap for gap in report.gaps)
    capture = json.loads((tmp_path / BEFORE_ROLLBACK / "capture.json").read_text())
    assert sorted(e["limit"] for e in capture["logs"] if "limit" in e)[-2:] == [4096, 4096]


def test_a_crash_looping_pod_leaves_its_previous_log(release: TeamRelease, tmp_path: Path) -> None:
    with _bad_pods(release, tmp_path, **{"faults.crashEvery": "3s"}) as bad:
        deadline = time.monotonic() + 40
        while not any(sum(s.restarts.values()) for s in bad.states()):
            assert time.monotonic() < deadline, "no container restarted"
            time.sleep(0.5)
        report = bad.capture()
    previous = [w for w in report.written if w.endswith(".previous.log")]
    assert previous
    for rel in previous:
        pod = Path(rel).name.removesuffix(".previous.log")
        lines = (tmp_path / rel).read_text().splitlines()
        assert {m.groups() for m in map(_LINE.search, lines) if m} == {("v1.1.0", pod)}


def test_pods_that_vanish_before_their_logs_are_read_are_gaps(
    release: TeamRelease, tmp_path: Path
) -> None:
    with _bad_pods(release, tmp_path) as bad:
        states = bad.states()
        release.kubectl("delete", "pods", "-l", "app=api", "--wait=true")
        report = bad.capture(states=states)
    assert len(report.gaps) == 4
    assert all("vanished before its log was read" in g for g in report.gaps)
    capture = json.loads((tmp_path / BEFORE_ROLLBACK / "capture.json").read_text())
    assert len(capture["gaps"]) == 4


def test_background_capture_lists_the_pods_before_returning(
    release: TeamRelease, tmp_path: Path
) -> None:
    with _bad_pods(release, tmp_path) as bad:
        listed = {s.name for s in bad.states()}
        job = start_capture(
            bad.kube, namespace=release.namespace, selector="app=api", since=bad.deployed_at,
            output_dir=tmp_path, redact=lambda text: text.replace("v1.1.0", "vX"),
        )  # fmt: skip
        release.helm("rollback", release.name, "1")  # the rollback goes on while logs are read
        report = job.wait(60)
    assert report is not None
    assert set(report.pods) == listed
    pods_json = (tmp_path / BEFORE_ROLLBACK / "pods.json").read_text()
    assert "v1.1.0" not in pods_json  # everything passes through the redactor
