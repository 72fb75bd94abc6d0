"""The Kubernetes adapter against the sandbox: status, watch through an outage, pods, exec."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster_faults import (
    Blackhole,
    Forwarder,
    api_port,
    free_port,
    kubeconfig_via,
    service_account_kubeconfig,
)

from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.pod_exec import exec_in_pod
from runbook_lib.core.images import image_mismatches
from runbook_lib.core.rollout import DeploymentStatus, rollout_state
from runbook_lib.errors import ApiError, ParameterError

GOOD = "registry.local/api:v1.0.0"
BAD = "registry.local/api:v1.1.0"


@pytest.fixture
def kube(sandbox: Any) -> Iterator[Kube]:
    with Kube(kubeconfig=sandbox.kubeconfig, context=sandbox.context) as k:
        yield k


def test_reports_the_context_and_server_it_uses(kube: Kube, sandbox: Any) -> None:
    assert kube.context_name == sandbox.context
    port = api_port(sandbox.kubeconfig, sandbox.context)
    assert kube.server_url == f"https://127.0.0.1:{port}"


def test_unknown_context_is_a_parameter_error(sandbox: Any) -> None:
    with pytest.raises(ParameterError, match="no-such-context"):
        Kube(kubeconfig=sandbox.kubeconfig, context="no-such-context")


def test_missing_kubeconfig_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="kubeconfig"):
        Kube(kubeconfig=tmp_path / "absent", context="x")


def test_settled_deployment_is_rolled_out(kube: Kube, clean_sandbox: Any) -> None:
    status = kube.deployment_status("default", "app")
    assert status.name == "app"
    assert status.desired_replicas == 4
    assert status.observed_generation >= status.generation
    assert rollout_state(status).message == 'deployment "app" successfully rolled out'
    assert image_mismatches(kube.pods("default", "app=api"), (GOOD,)) == []


def test_watch_follows_an_upgrade_to_completion(kube: Kube, clean_sandbox: Any) -> None:
    watch = kube.watch_deployment("default", "app", timeout_s=120)
    seen: list[DeploymentStatus] = [next(watch)]
    # The watch resumes from the resourceVersion read before the upgrade: nothing is missed.
    clean_sandbox.deploy("v1.1.0", wait=False)
    for status in watch:
        seen.append(status)
        if status.generation > seen[0].generation and rollout_state(status).done:
            break
    watch.close()
    assert rollout_state(seen[-1]).message == 'deployment "app" successfully rolled out'
    waiting = [rollout_state(s).message for s in seen[1:-1]]
    assert waiting, "watch saw no intermediate state"
    assert all(m.startswith("Waiting for deployment") for m in waiting)
    assert all(a != b for a, b in itertools.pairwise(seen)), "unchanged statuses not repeated"
    pods = kube.pods("default", "app=api")
    assert image_mismatches(pods, (BAD,)) == []
    lines = image_mismatches(pods, (GOOD,))
    assert len(lines) == len(pods) == 4
    assert all(BAD in line for line in lines)


def test_missing_deployment_is_a_non_retryable_404(kube: Kube) -> None:
    with pytest.raises(ApiError) as info:
        kube.deployment_status("default", "no-such-deployment")
    assert info.value.status == 404
    assert not info.value.retryable
    assert "no-such-deployment" in info.value.stderr


def test_unreachable_api_is_retryable_without_status(sandbox: Any, tmp_path: Path) -> None:
    config = kubeconfig_via(sandbox.kubeconfig, sandbox.context, free_port(), tmp_path / "kc")
    with Kube(kubeconfig=config, context=sandbox.context) as down, pytest.raises(ApiError) as info:
        down.deployment_status("default", "app")
    assert info.value.retryable
    assert info.value.status is None


def test_hanging_api_times_out_retryable(sandbox: Any, tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        config = kubeconfig_via(sandbox.kubeconfig, sandbox.context, hole.port, tmp_path / "kc")
        stuck = Kube(kubeconfig=config, context=sandbox.context, request_timeout_s=1)
        with stuck, pytest.raises(ApiError) as info:
            stuck.deployment_status("default", "app")
    finally:
        hole.close()
    assert info.value.retryable


def test_watch_without_watch_permission_fails_at_once(sandbox: Any, tmp_path: Path) -> None:
    sleep = CountingSleep()
    with (
        service_account_kubeconfig(
            sandbox, tmp_path / "kc", verbs="get", resource="deployments.apps"
        ) as config,
        Kube(kubeconfig=config, context=sandbox.context) as limited,
    ):
        watch = limited.watch_deployment("default", "app", timeout_s=30, sleep=sleep)
        assert next(watch).name == "app"  # get is allowed
        with pytest.raises(ApiError) as info:
            next(watch)
    assert info.value.status == 403
    assert not info.value.retryable
    assert 'cannot watch resource "deployments"' in info.value.stderr
    assert sleep.calls == []  # a permission error is not waited out


@pytest.fixture
def relayed(sandbox: Any, tmp_path: Path) -> Iterator[tuple[Forwarder, Path]]:
    """The API server behind a relay the test can cut, and a kubeconfig that goes through it;
    the relay is cut when the test ends."""
    relay = Forwarder(api_port(sandbox.kubeconfig, sandbox.context))
    try:
        yield (
            relay,
            kubeconfig_via(sandbox.kubeconfig, sandbox.context, relay.port, tmp_path / "kc"),
        )
    finally:
        relay.cut()


class CountingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        threading.Event().wait(seconds)


def test_watch_survives_the_api_server_going_away(
    sandbox: Any, clean_sandbox: Any, relayed: tuple[Forwarder, Path]
) -> None:
    relay, config = relayed
    sleep = CountingSleep()
    try:
        with Kube(kubeconfig=config, context=sandbox.context) as kube:
            watch = kube.watch_deployment("default", "app", timeout_s=90, sleep=sleep)
            first = next(watch)
            assert rollout_state(first).done
            relay.cut()
            # The change happens while this client cannot see the API server.
            sandbox.kubectl("scale", "deployment/app", "--replicas=5")
            threading.Timer(3.0, relay.restore).start()
            final = next(s for s in watch if s.desired_replicas == 5 and rollout_state(s).done)
            watch.close()
        assert final.available_replicas == 5
        outage_sleeps = [s for s in sleep.calls if s >= 0.5]
        # Backed off (0.5, 1, 2, ...) instead of spinning: a handful of waits, not hundreds.
        assert 1 <= len(outage_sleeps) <= 8
    finally:
        relay.cut()  # before the fixture does: the scale-back must not race a restore
        sandbox.kubectl("scale", "deployment/app", "--replicas=4")


def test_watch_gives_up_with_api_error_when_the_api_stays_down(
    sandbox: Any, relayed: tuple[Forwarder, Path]
) -> None:
    relay, config = relayed
    sleep = CountingSleep()
    with Kube(kubeconfig=config, context=sandbox.context) as kube:
        watch = kube.watch_deployment("default", "app", timeout_s=4, sleep=sleep)
        next(watch)
        relay.cut()
        with pytest.raises(ApiError, match="gave up after 4 s") as info:
            list(watch)
    assert info.value.retryable
    assert len(sleep.calls) <= 8


def test_exec_captures_stdout_stderr_and_exit_code(kube: Kube, sandbox: Any) -> None:
    result = exec_in_pod(
        kube, "default", "migrator", ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout_s=30
    )
    assert (result.stdout, result.stderr, result.returncode) == ("out\n", "err\n", 3)


def test_exec_runs_the_migration_tool(kube: Kube, clean_sandbox: Any) -> None:
    result = exec_in_pod(kube, "default", "migrator", ["./migrate", "version"], timeout_s=30)
    assert result.returncode == 0
    count, revision = result.stdout.split()
    assert count == "1"  # clean sandbox: schema for v1.0.0
    assert revision


def test_exec_in_missing_pod_is_api_error(kube: Kube) -> None:
    with pytest.raises(ApiError):
        exec_in_pod(kube, "default", "no-such-pod", ["true"], timeout_s=10)


def test_exec_outliving_its_timeout_is_abandoned(kube: Kube) -> None:
    with pytest.raises(ApiError, match="did not finish within 1 s") as info:
        exec_in_pod(kube, "default", "migrator", ["sleep", "4"], timeout_s=1)
    assert info.value.retryable


def test_events_and_logs_for_evidence(kube: Kube, clean_sandbox: Any) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    clean_sandbox.deploy("v1.1.0")
    events = kube.events("default", since=start)
    assert any(e.reason == "ScalingReplicaSet" and e.object == "Deployment/app" for e in events)
    assert all(e.at is None or e.at >= start for e in events)
    pod = kube.pods("default", "app=api")[0].name
    assert isinstance(kube.logs("default", pod, since=start), str)
