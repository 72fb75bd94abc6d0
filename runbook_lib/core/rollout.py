"""Deployment rollout state, decided the way ``kubectl rollout status`` decides it.

The runbook's "rollout status" step must agree with what an engineer would see running
``kubectl rollout status deployment/<name>`` by hand, so the checks below are the same checks
in the same order, with the same messages (without kubectl's trailing newline):

1. the controller has not yet observed the latest spec (generation > observedGeneration):
   keep waiting, whatever the other counters say, because they describe the old spec;
2. the Progressing condition has reason ProgressDeadlineExceeded: failed;
3. fewer updated replicas than the spec asks for;
4. old replicas still counted (status.replicas > updatedReplicas);
5. updated replicas not all available;
6. otherwise the rollout is complete.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PROGRESS_DEADLINE_EXCEEDED",
    "Condition",
    "DeploymentStatus",
    "RolloutState",
    "rollout_state",
]

# The reason the deployment controller sets on the Progressing condition when
# spec.progressDeadlineSeconds passes without progress.
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class Condition:
    """One entry of ``status.conditions`` (type, status "True"/"False"/"Unknown", reason)."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class DeploymentStatus:
    """The fields of a Deployment that decide its rollout state.

    ``replicas`` is ``status.replicas`` (non-terminated pods of any version);
    ``desired_replicas`` is ``spec.replicas`` (None when unset, as kubectl tolerates).
    """

    generation: int
    observed_generation: int
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    unavailable_replicas: int
    conditions: tuple[Condition, ...] = ()
    name: str = ""
    desired_replicas: int | None = None
    selector: str = ""  # spec.selector.matchLabels as "k=v,k2=v2": the Deployment's own pods

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def progress(self) -> str:
        """One line for people watching: updated and available replicas against desired."""
        desired = "?" if self.desired_replicas is None else str(self.desired_replicas)
        return (
            f"{self.updated_replicas}/{desired} updated, "
            f"{self.available_replicas}/{desired} available, "
            f"{self.replicas} total"
        )


@dataclass(frozen=True)
class RolloutState:
    """``done``: rollout complete. ``failed``: it will not complete (progress deadline)."""

    done: bool
    failed: bool
    message: str


def rollout_state(status: DeploymentStatus) -> RolloutState:
    """Decide a Deployment's rollout state ("Rollback Steps": rollout status).

    Pure; raises nothing. Mirrors ``kubectl rollout status`` for Deployments, including the
    rule that nothing counts until the controller has observed the current generation.
    """
    name = status.name
    if status.generation > status.observed_generation:
        return RolloutState(False, False, "Waiting for deployment spec update to be observed...")
    progressing = status.condition("Progressing")
    if progressing is not None and progressing.reason == PROGRESS_DEADLINE_EXCEEDED:
        return RolloutState(False, True, f'deployment "{name}" exceeded its progress deadline')
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    desired = status.desired_replicas
    if desired is not None and status.updated_replicas < desired:
        return RolloutState(
            False,
            False,
            f"{prefix}{status.updated_replicas} out of {desired} new replicas have been updated...",
        )
    if status.replicas > status.updated_replicas:
        pending = status.replicas - status.updated_replicas
        return RolloutState(
            False, False, f"{prefix}{pending} old replicas are pending termination..."
        )
    if status.available_replicas < status.updated_replicas:
        return RolloutState(
            False,
            False,
            f"{prefix}{status.available_replicas} of {status.updated_replicas} "
            "updated replicas are available...",
        )
    return RolloutState(True, False, f'deployment "{name}" successfully rolled out')
