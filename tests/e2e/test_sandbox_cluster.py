"""The sandbox cluster behaves like the real thing the runbook acts on.

Runs against the real control plane (kwok fakes only the nodes): the API and its RBAC,
Helm 3 and Helm 4 release history, rolling updates, exec into the migrator, pod logs, and a
clean ``down``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runbook_lib.errors import CommandFailed
from runbook_sandbox.session_sandbox import spare_port_base

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox


ROOT = Path(__file__).resolve().parents[2]
PINS = tomllib.loads((ROOT / "sandbox" / "build" / "pins.toml").read_text())
VALUES = (ROOT / "sandbox" / "chart" / "app" / "values.yaml").read_text()


def _json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    return data


def _api_pods(sb: Sandbox) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = _json(sb.kubectl("get", "pods", "-l", "app=api", "-o", "json"))[
        "items"
    ]
    return pods


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_api_server_reports_the_pinned_release_and_has_two_ready_nodes(sandbox: Sandbox) -> None:
    version = _json(sandbox.kubectl("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == PINS["kubernetes"]["version"]
    nodes = _json(sandbox.kubectl("get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == 2
    assert all(_ready(n) for n in nodes)


def test_rbac_is_enforced_for_service_accounts(sandbox: Sandbox) -> None:
    # The runbook's "permission denied" paths are only real if the API server authorizes.
    argv = [
        "kubectl",
        "--context",
        sandbox.context,
        "auth",
        "can-i",
        "patch",
        "deployments",
        "--as",
        "system:serviceaccount:default:default",
    ]
    proc = subprocess.run(argv, env=sandbox.env, capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "no"
    assert sandbox.kubectl("auth", "can-i", "patch", "deployments").strip() == "yes"


def test_helm_history_shows_each_deploy_as_a_revision(clean_sandbox: Sandbox) -> None:
    clean_sandbox.deploy("v1.1.0")
    for helm in ("helm", "helm4"):  # both majors read the same release records
        history = json.loads(clean_sandbox.helm("history", "app", "-o", "json", binary=helm))
        rows = [(r["revision"], r["app_version"], r["status"]) for r in history]
        assert rows == [(1, "v1.0.0", "superseded"), (2, "v1.1.0", "deployed")], helm


def test_deploy_rolls_every_api_pod_to_the_new_image(clean_sandbox: Sandbox) -> None:
    before = {p["spec"]["containers"][0]["image"] for p in _api_pods(clean_sandbox)}
    assert before == {"registry.local/api:v1.0.0"}

    clean_sandbox.deploy("v1.1.0")

    pods = [p for p in _api_pods(clean_sandbox) if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 4
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"registry.local/api:v1.1.0"}
    assert all(_ready(p) for p in pods)
    deployment = _json(clean_sandbox.kubectl("get", "deployment", "app", "-o", "json"))
    commit = deployment["metadata"]["annotations"]["runbook.io/git-commit"]
    assert f"v1.1.0: {commit}" in VALUES


def test_unschedulable_fault_keeps_the_rollout_from_completing(clean_sandbox: Sandbox) -> None:
    clean_sandbox.deploy("v1.1.0", values={"faults.unschedulable": "true"}, wait=False)
    argv = ["rollout", "status", "deployment/app", "--timeout=5s"]
    with pytest.raises(CommandFailed, match="exited 1"):
        clean_sandbox.kubectl(*argv)
    pending = [p for p in _api_pods(clean_sandbox) if p["status"]["phase"] == "Pending"]
    assert pending, "new pods should wait for a node that never comes"


def test_exec_into_migrator_runs_migrations_and_moves_the_schema(clean_sandbox: Sandbox) -> None:
    if not (ROOT / "sandbox" / "migrations" / "migrate").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("sandbox/migrations/migrate is missing")
        pytest.skip("sandbox/migrations/migrate not written yet (metrics/migrations work)")
    assert clean_sandbox.migrate("version").split()[0] == "1"

    clean_sandbox.deploy("v1.1.0")
    assert clean_sandbox.migrate("version").split()[0] == "2"

    clean_sandbox.migrate("down", "1")
    assert clean_sandbox.migrate("version").split()[0] == "1"


def test_kubectl_logs_serves_injected_lines_in_every_pod_log(clean_sandbox: Sandbox) -> None:
    pods = [p["metadata"]["name"] for p in _api_pods(clean_sandbox)]
    marker = f"e2e-log-marker-{time.time_ns()}"
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    with (clean_sandbox.state_dir / "logs" / "inject.log").open("a") as log:
        log.write(f"{stamp} stdout F {marker}\n")  # the CRI log format kwok parses
    deadline = time.monotonic() + 10
    missing = pods
    while missing and time.monotonic() < deadline:
        time.sleep(0.3)
        missing = [p for p in pods if marker not in clean_sandbox.kubectl("logs", p, "-c", "api")]
    assert not missing


def _pod_ready_after_scheduling_s(pod: dict[str, Any]) -> float:
    times = {
        c["type"]: datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00"))
        for c in pod["status"]["conditions"]
    }
    return (times["Ready"] - times["PodScheduled"]).total_seconds()


def test_own_sandbox_paces_pods_keeps_exec_and_down_leaves_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # A sandbox of its own, so stopping it cannot disturb the shared one; with `up`'s default
    # pod-ready delay (the shared one runs with 0).
    base = spare_port_base()  # no other sandbox of this test run is there
    env = {
        **os.environ,
        "RUNBOOK_SANDBOX_NAME": f"{os.environ.get('RUNBOOK_SANDBOX_NAME', 'runbook')}-own",
        "RUNBOOK_SANDBOX_STATE": str(tmp_path / "state"),
        "RUNBOOK_SANDBOX_PORT_BASE": str(base),
    }
    env.pop("RUNBOOK_SANDBOX_POD_READY_DELAY", None)
    runbook = [str(Path(sys.executable).with_name("runbook")), "sandbox"]
    try:
        up = subprocess.run([*runbook, "up"], env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        up_at = time.monotonic()
        status = json.loads(
            subprocess.run([*runbook, "status"], env=env, capture_output=True, text=True).stdout
        )
        assert status["cluster_running"]
        assert status["pids"], "a running sandbox has processes"
        assert status["pod_ready_delay_s"] == 3.0
        kubectl = [
            str(sandbox.bin_dir / "kubectl"),
            "--kubeconfig", status["kubeconfig"], "--context", status["context"],
        ]  # fmt: skip
        pods = json.loads(
            subprocess.run(
                [*kubectl, "get", "pods", "-l", "app=api", "-o", "json"],
                capture_output=True, text=True, check=True, timeout=60,
            ).stdout
        )["items"]  # fmt: skip
        assert pods
        # kwok waits between the delay and 1.5x it; the API stores whole seconds.
        waits = [_pod_ready_after_scheduling_s(p) for p in pods]
        assert all(2.0 <= w <= 6.0 for w in waits), waits
        # The delay was set before the nodes existed: their leases are renewed, so after the
        # node lifecycle controller's 40 s grace they keep their addresses and exec works.
        time.sleep(max(0.0, 50 - (time.monotonic() - up_at)))
        migrate = subprocess.run(
            [*kubectl, "exec", "migrator", "--", "./migrate", "version"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert migrate.returncode == 0, migrate.stderr
    finally:
        # Also after a failed start, so no half-started sandbox outlives the test.
        down = subprocess.run([*runbook, "down"], env=env, capture_output=True, text=True)

    assert down.returncode == 0, down.stderr
    state = str((tmp_path / "state").resolve())
    alive = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and state in _cmdline(p)]
    assert alive == []
    from runbook_sandbox.cluster import bound_ports

    assert bound_ports(tuple(base + o for o in (43, 79, 80, 90, 91, 92, 93, 94))) == []


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
