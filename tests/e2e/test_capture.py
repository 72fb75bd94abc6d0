"""Capturing the bad release's pods before the rollback deletes them."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.pod_capture import list_pod_states
from runbook_lib.core.capture import CaptureBounds
from runbook_lib.evidence.capture import BEFORE_ROLLBACK, capture_release_pods, start_capture
from runbook_sandbox import Sandbox

pytestmark = pytest.mark.sandbox

_LINE = re.compile(r"version=(\S+) pod=(\S+)$")


def _kube(sb: Sandbox) -> Kube:
    return Kube(kubeconfig=sb.kubeconfig, context=sb.context)


def _bad_release(sb: Sandbox, **values: str) -> datetime:
    deployed_at = datetime.now(UTC)
    sb.deploy("v1.1.0", values=values or None)
    time.sleep(4)  # some traffic for the new pods' logs
    return deployed_at


def test_capture_keeps_each_bad_pod_log_and_says_which_revision(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    deployed_at = _bad_release(sb)
    with _kube(sb) as kube:
        report = capture_release_pods(
            kube,
            namespace="default",
            selector="app=api",
            since=deployed_at,
            output_dir=tmp_path,
            redact=str,
            release_revision="revision 2 (v1.1.0)",
        )
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
    sb.helm("rollback", "app", "1", "--wait")
    left = {
        p["metadata"]["name"]
        for p in json.loads(sb.kubectl("get", "pods", "-l", "app=api", "-o", "json"))["items"]
    }
    assert not left & set(report.pods)


def test_logs_are_cut_at_the_per_pod_and_total_bounds(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    deployed_at = _bad_release(sb)
    time.sleep(4)  # every pod has logged well over 4 KiB (about 5 KB/s each)
    bounds = CaptureBounds(per_pod_bytes=4096, total_bytes=2 * 4096 + 1024)
    with _kube(sb) as kube:
        report = capture_release_pods(
            kube, namespace="default", selector="app=api", since=deployed_at,
            output_dir=tmp_path, redact=str, bounds=bounds,
        )  # fmt: skip
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


def test_a_crash_looping_pod_leaves_its_previous_log(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    deployed_at = _bad_release(sb, **{"faults.crashEvery": "3s"})
    with _kube(sb) as kube:
        deadline = time.monotonic() + 40
        while not any(
            sum(s.restarts.values()) for s in list_pod_states(kube, "default", "app=api")
        ):
            assert time.monotonic() < deadline, "no container restarted"
            time.sleep(0.5)
        report = capture_release_pods(
            kube, namespace="default", selector="app=api", since=deployed_at,
            output_dir=tmp_path, redact=str,
        )  # fmt: skip
    previous = [w for w in report.written if w.endswith(".previous.log")]
    assert previous
    for rel in previous:
        pod = Path(rel).name.removesuffix(".previous.log")
        lines = (tmp_path / rel).read_text().splitlines()
        assert {m.groups() for m in map(_LINE.search, lines) if m} == {("v1.1.0", pod)}


def test_pods_that_vanish_before_their_logs_are_read_are_gaps(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    deployed_at = _bad_release(sb)
    with _kube(sb) as kube:
        states = list_pod_states(kube, "default", "app=api")
        sb.kubectl("delete", "pods", "-l", "app=api", "--wait=true")
        report = capture_release_pods(
            kube, namespace="default", selector="app=api", since=deployed_at,
            output_dir=tmp_path, redact=str, states=states,
        )  # fmt: skip
    assert len(report.gaps) == 4
    assert all("vanished before its log was read" in g for g in report.gaps)
    capture = json.loads((tmp_path / BEFORE_ROLLBACK / "capture.json").read_text())
    assert len(capture["gaps"]) == 4


def test_background_capture_lists_the_pods_before_returning(
    clean_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = clean_sandbox
    deployed_at = _bad_release(sb)
    with _kube(sb) as kube:
        bad = {s.name for s in list_pod_states(kube, "default", "app=api")}
        job = start_capture(
            kube, namespace="default", selector="app=api", since=deployed_at,
            output_dir=tmp_path, redact=lambda text: text.replace("v1.1.0", "vX"),
        )  # fmt: skip
        sb.helm("rollback", "app", "1")  # the rollback goes on while the logs are read
        report = job.wait(60)
    assert report is not None
    assert set(report.pods) == bad
    pods_json = (tmp_path / BEFORE_ROLLBACK / "pods.json").read_text()
    assert "v1.1.0" not in pods_json  # everything passes through the redactor
