"""The release lock as a real Lease on the sandbox's API server."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster_faults import service_account_kubeconfig

from runbook_lib.adapters.kube import Kube
from runbook_lib.adapters.lease import LeaseState, LockInfo, ReleaseLock, lease_name
from runbook_lib.core.run_identity import RunIdentity
from runbook_lib.errors import ApiError, LockHeld, LockLost, ParameterError

pytestmark = pytest.mark.sandbox

T0 = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def kube(sandbox: Any) -> Iterator[Kube]:
    with Kube(kubeconfig=sandbox.kubeconfig, context=sandbox.context) as k:
        yield k


@pytest.fixture
def release(kube: Kube) -> Iterator[str]:
    """A release name of our own, so tests never touch each other's (or the app's) lock."""
    name = f"lease-test-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(Exception):  # already released: the point of most tests
        kube.coordination.delete_namespaced_lease(lease_name(name), "default")


def lock(kube: Kube, release: str, holder: str, ttl_s: float = 600) -> ReleaseLock:
    return ReleaseLock(kube, namespace="default", release=release, holder=holder, ttl_s=ttl_s)


def test_acquire_creates_lease_and_blocks_another_holder(kube: Kube, release: str) -> None:
    alice = lock(kube, release, "alice/INC-1")
    info = alice.acquire(T0)
    assert info.holder == "alice/INC-1"
    assert info.warning is None
    lease = kube.coordination.read_namespaced_lease(lease_name(release), "default")
    assert lease.spec.holder_identity == "alice/INC-1"
    assert abs(lease.spec.renew_time - T0) < timedelta(milliseconds=1)

    with pytest.raises(LockHeld) as held:
        lock(kube, release, "bob/INC-1").acquire(T0 + timedelta(seconds=30))
    assert held.value.holder == "alice/INC-1"
    assert "alice/INC-1" in str(held.value)


def test_same_holder_reacquires(kube: Kube, release: str) -> None:
    alice = lock(kube, release, "alice")
    alice.acquire(T0)
    again = alice.acquire(T0 + timedelta(seconds=5))
    assert again.warning is None
    assert alice.holder_now() == "alice"


def _process_lock(kube: Kube, release: str, who: RunIdentity) -> ReleaseLock:
    return ReleaseLock(kube, namespace="default", release=release, holder=who.holder,
                       ttl_s=600, incident_id=who.incident_id, identity=who)  # fmt: skip


def test_one_name_in_two_processes_is_two_holders_and_a_gone_one_is_taken_at_once(
    kube: Kube, release: str
) -> None:
    # Two runs under one incident id, the second's process reusing the first's pid: the same
    # holder text, yet another process (its start time differs).
    first = RunIdentity("INC-7@oncall.box", "INC-7", "box", 4242, 1000.0, "run-first")
    second = RunIdentity("INC-7@oncall.box", "INC-7", "box", 4242, 2000.0, "run-second")
    _process_lock(kube, release, first).acquire(T0)
    state = _process_lock(kube, release, first).state()
    assert state is not None
    identity = (state.host, state.pid, state.process_started, state.run_id)
    assert identity == ("box", 4242, 1000.0, "run-first")
    again = _process_lock(kube, release, first).acquire(T0 + timedelta(seconds=1))
    assert again.takeover == ""  # the same process: re-entrant
    with pytest.raises(LockHeld) as held:
        _process_lock(kube, release, second).acquire(T0 + timedelta(seconds=2))
    assert "run run-first" in str(held.value)
    assert held.value.holder == "INC-7@oncall.box (pid 4242 on box)"
    seen: list[LeaseState] = []

    def gone(state: LeaseState) -> str:
        seen.append(state)
        return "its process 4242 on box no longer exists"

    info = _process_lock(kube, release, second).acquire(T0 + timedelta(seconds=3), gone=gone)
    assert seen[0].run_id == "run-first"
    assert info.takeover == "gone"
    assert info.reason == "its process 4242 on box no longer exists"
    assert info.previous is not None
    assert info.previous.run_id == "run-first"
    assert info.warning is not None
    assert "at once" in info.warning
    now = _process_lock(kube, release, second).state()
    assert now is not None
    assert now.run_id == "run-second"
    # The first run, were it to come back, must not free what the second holds now.
    assert _process_lock(kube, release, first).release() is False


def test_release_frees_it_and_is_idempotent(kube: Kube, release: str) -> None:
    alice = lock(kube, release, "alice")
    alice.acquire(T0)
    assert alice.release() is True
    assert alice.holder_now() is None
    assert alice.release() is False
    lock(kube, release, "bob").acquire(T0 + timedelta(seconds=1))  # free for others


def test_stale_lease_is_taken_over_with_a_warning(kube: Kube, release: str) -> None:
    alice = lock(kube, release, "alice", ttl_s=300)
    alice.acquire(T0)
    with pytest.raises(LockHeld):
        lock(kube, release, "bob", ttl_s=300).acquire(T0 + timedelta(seconds=300))
    bob = lock(kube, release, "bob", ttl_s=300)
    info = bob.acquire(T0 + timedelta(seconds=301))
    assert info.previous_holder == "alice"
    assert info.warning is not None
    assert "alice" in info.warning
    assert "stale" in info.warning
    lease = kube.coordination.read_namespaced_lease(lease_name(release), "default")
    assert lease.spec.holder_identity == "bob"
    assert lease.spec.lease_transitions == 1
    # The crashed run coming back must not free the lock bob now holds.
    assert alice.release() is False
    assert bob.holder_now() == "bob"


def test_two_runs_racing_get_exactly_one_lock(kube: Kube, sandbox: Any, release: str) -> None:
    rounds = 5
    for n in range(rounds):
        name = f"{release}-{n}"
        barrier = threading.Barrier(2)
        outcomes: dict[str, LockInfo | LockHeld] = {}

        def run(
            holder: str,
            name: str = name,
            barrier: threading.Barrier = barrier,
            outcomes: dict[str, LockInfo | LockHeld] = outcomes,
        ) -> None:
            with Kube(kubeconfig=sandbox.kubeconfig, context=sandbox.context) as own:
                contender = lock(own, name, holder)
                barrier.wait(timeout=10)
                try:
                    outcomes[holder] = contender.acquire(T0)
                except LockHeld as err:
                    outcomes[holder] = err

        threads = [threading.Thread(target=run, args=(h,)) for h in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [h for h, o in outcomes.items() if isinstance(o, LockInfo)]
        losers = [o for o in outcomes.values() if isinstance(o, LockHeld)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1
        assert losers[0].holder == winners[0]
        assert lock(kube, name, winners[0]).release() is True


@pytest.mark.parametrize(
    ("release_name", "holder", "problem"),
    [
        pytest.param("App_1", "alice", "release", id="not-dns-label"),
        pytest.param("app", "  ", "holder", id="empty-holder"),
    ],
)
def test_bad_parameters_listed(kube: Kube, release_name: str, holder: str, problem: str) -> None:
    with pytest.raises(ParameterError, match=problem):
        lock(kube, release_name, holder)


@pytest.fixture
def deployments_only(sandbox: Any, tmp_path: Path) -> Iterator[Kube]:
    """A client for a ServiceAccount that may read deployments and nothing else."""
    with (
        service_account_kubeconfig(
            sandbox, tmp_path / "kc", verbs="get,list,watch", resource="deployments.apps"
        ) as config,
        Kube(kubeconfig=config, context=sandbox.context) as limited,
    ):
        yield limited


def test_missing_lease_permission_is_named_and_not_retried(
    deployments_only: Kube, kube: Kube, release: str
) -> None:
    assert deployments_only.deployment_status("default", "app").name == "app"
    with pytest.raises(ApiError) as info:
        lock(deployments_only, release, "alice").acquire(T0)
    err = info.value
    assert err.status == 403
    assert not err.retryable
    assert 'cannot create resource "leases"' in err.stderr  # create is tried first
    assert 'API group "coordination.k8s.io"' in err.stderr
    assert lock(kube, release, "admin").holder_now() is None  # nothing was created


def test_renewal_keeps_a_lock_live_and_a_takeover_needs_a_reason(kube: Kube, release: str) -> None:
    alice = ReleaseLock(kube, namespace="default", release=release, holder="alice", ttl_s=60,
                        incident_id="INC-9", evidence_dir="/evidence/INC-9")  # fmt: skip
    alice.acquire(T0)
    alice.renew(T0 + timedelta(seconds=50))
    state = alice.state()
    assert state is not None
    assert state.acquired_at is not None
    assert abs(state.acquired_at - T0) < timedelta(milliseconds=1)  # held since: unchanged
    assert state.duration_s == 60
    assert (state.incident_id, state.evidence_dir) == ("INC-9", "/evidence/INC-9")
    # 100 s after acquiring, 50 s after the renewal: still alice's.
    with pytest.raises(LockHeld) as held:
        lock(kube, release, "bob", ttl_s=600).acquire(T0 + timedelta(seconds=100))
    assert held.value.frees_at is not None
    assert abs(held.value.frees_at - (T0 + timedelta(seconds=110))) < timedelta(milliseconds=1)
    assert "incident INC-9" in str(held.value)
    bob = lock(kube, release, "bob")
    info = bob.acquire(T0 + timedelta(seconds=101), takeover_reason="alice's run is stuck")
    assert (info.takeover, info.previous_holder) == ("deliberate", "alice")
    assert info.previous is not None
    assert info.previous.evidence_dir == "/evidence/INC-9"
    with pytest.raises(LockLost) as lost:
        alice.renew(T0 + timedelta(seconds=102))
    assert lost.value.holder == "bob"
    assert "alice's run is stuck" in str(lost.value)
    assert alice.release() is False
    assert bob.holder_now() == "bob"


def test_renewing_a_lock_deleted_under_the_run_is_a_lost_lock(kube: Kube, release: str) -> None:
    alice = lock(kube, release, "alice")
    alice.acquire(T0)
    kube.coordination.delete_namespaced_lease(lease_name(release), "default")
    with pytest.raises(LockLost) as lost:
        alice.renew(T0 + timedelta(seconds=1))
    assert lost.value.holder is None
    assert "nobody holds it now" in str(lost.value)
