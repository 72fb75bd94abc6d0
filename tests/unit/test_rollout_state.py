"""Rollout state decided like ``kubectl rollout status deployment/<name>``."""

from __future__ import annotations

import pytest

from runbook_lib.core.rollout import Condition, DeploymentStatus, rollout_state

PROGRESSING = Condition("Progressing", "True", "NewReplicaSetAvailable", "")
DEADLINE = Condition("Progressing", "False", "ProgressDeadlineExceeded", "timed out")


def status(
    *,
    generation: int = 2,
    observed: int = 2,
    desired: int | None = 3,
    replicas: int = 3,
    updated: int = 3,
    available: int = 3,
    conditions: tuple[Condition, ...] = (PROGRESSING,),
) -> DeploymentStatus:
    return DeploymentStatus(
        generation=generation,
        observed_generation=observed,
        replicas=replicas,
        updated_replicas=updated,
        ready_replicas=available,
        available_replicas=available,
        unavailable_replicas=max(0, replicas - available),
        conditions=conditions,
        name="app",
        desired_replicas=desired,
    )


@pytest.mark.parametrize(
    ("st", "done", "failed", "message"),
    [
        pytest.param(
            status(generation=3, observed=2),
            False,
            False,
            "Waiting for deployment spec update to be observed...",
            id="spec-update-not-observed",
        ),
        pytest.param(
            status(generation=3, observed=2, conditions=(DEADLINE,)),
            False,
            False,
            "Waiting for deployment spec update to be observed...",
            id="stale-deadline-ignored-until-observed",
        ),
        pytest.param(
            status(updated=1, replicas=4, available=3),
            False,
            False,
            'Waiting for deployment "app" rollout to finish: '
            "1 out of 3 new replicas have been updated...",
            id="new-replicas-updated",
        ),
        pytest.param(
            status(updated=3, replicas=4, available=3),
            False,
            False,
            'Waiting for deployment "app" rollout to finish: '
            "1 old replicas are pending termination...",
            id="old-replicas-pending-termination",
        ),
        pytest.param(
            status(updated=3, replicas=3, available=2),
            False,
            False,
            'Waiting for deployment "app" rollout to finish: '
            "2 of 3 updated replicas are available...",
            id="updated-replicas-available",
        ),
        pytest.param(
            status(),
            True,
            False,
            'deployment "app" successfully rolled out',
            id="successfully-rolled-out",
        ),
        pytest.param(
            status(desired=None, updated=2, replicas=2, available=2),
            True,
            False,
            'deployment "app" successfully rolled out',
            id="no-spec-replicas",
        ),
        pytest.param(
            status(updated=1, replicas=4, available=3, conditions=(DEADLINE,)),
            False,
            True,
            'deployment "app" exceeded its progress deadline',
            id="progress-deadline-exceeded",
        ),
        pytest.param(
            status(generation=2, observed=3),
            True,
            False,
            'deployment "app" successfully rolled out',
            id="observed-ahead-of-generation",
        ),
        pytest.param(
            status(desired=0, updated=0, replicas=0, available=0),
            True,
            False,
            'deployment "app" successfully rolled out',
            id="scaled-to-zero",
        ),
    ],
)
def test_rollout_state_matches_kubectl(
    st: DeploymentStatus, done: bool, failed: bool, message: str
) -> None:
    state = rollout_state(st)
    assert (state.done, state.failed, state.message) == (done, failed, message)


def test_progress_line_shows_updated_and_available_against_desired() -> None:
    assert status(updated=1, available=0, replicas=3).progress() == (
        "1/3 updated, 0/3 available, 3 total"
    )
