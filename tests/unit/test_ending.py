"""The ``Ending``: every way a run ends, its exit status, what it says of the cluster and the seal.

The timelines are written as the steps write them (``test_run_facts.Run``) and read back from
their files, as ``runbook run`` and the receiver do; what a person reads (`runbook run`'s lines,
the record, the summary) comes from the same value.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_run_facts import ENDINGS, T0, Run

from runbook_lib.core.exit_status import RUN_STATUSES
from runbook_lib.core.verdict import Verdict
from runbook_lib.errors import CommandFailed, LockLost, ParameterError
from runbook_lib.record.ending import Cluster, Ending, Seal
from runbook_lib.record.facts import (
    ClusterReadBack,
    EvidenceRoom,
    Outcome,
    RollbackStarted,
    RunFacts,
    record_fact,
)
from runbook_lib.record.timeline import FailureKind

STATUS = {
    Outcome.RECOVERED: 0,
    Outcome.NO_ROLLBACK: 0,
    Outcome.DRY_RUN: 0,
    Outcome.ALREADY_ROLLED_BACK: 0,
    Outcome.INCONCLUSIVE: 4,
    Outcome.DECLINED: 6,
    Outcome.REFUSED: 6,
    Outcome.NOT_RECOVERED: 1,
    Outcome.RELEASE_CHANGED: 1,
    Outcome.FAILED: 1,
    Outcome.INTERRUPTED: 1,  # the timeline says so, but no signal was seen by this process
    Outcome.INCOMPLETE: 1,
}
SEALED = Seal(sealed=True, signed=False)


def _ending(run: Run, **observed: object) -> Ending:
    return Ending.read(run.read(), **observed)  # type: ignore[arg-type]


@pytest.mark.parametrize("outcome", list(STATUS), ids=[o.value for o in STATUS])
def test_each_outcome_has_its_exit_status(tmp_path: Path, outcome: Outcome) -> None:
    ending = _ending(ENDINGS[outcome](Run(tmp_path / "timeline.jsonl")), seal=SEALED)
    assert ending.outcome is outcome
    assert ending.exit_status == STATUS[outcome]


def test_every_status_an_ending_gives_is_documented(tmp_path: Path) -> None:
    documented = {status for status, _ in RUN_STATUSES}
    given = set()
    for number, (_outcome, build) in enumerate(ENDINGS.items()):
        run = build(Run(tmp_path / f"{number}.jsonl"))
        for observed in (
            {},
            {"signal": signal.SIGINT},
            {"signal": signal.SIGTERM},
            {"lost": ("record.json: No space left on device",)},
        ):
            given.add(_ending(run, seal=SEALED, **observed).exit_status)
    given.add(_ending(_bad_input(Run(tmp_path / "bad.jsonl")), seal=SEALED).exit_status)
    assert given == documented


def _bad_input(run: Run) -> Run:
    run.start()
    return run.fails("preflight", ParameterError(["kubeconfig: cannot load k: not YAML"]))


def test_bad_input_is_2_and_refused_before_any_change(tmp_path: Path) -> None:
    ending = _ending(_bad_input(Run(tmp_path / "timeline.jsonl")), seal=SEALED)
    assert ending.outcome is Outcome.REFUSED
    assert ending.failure is not None
    assert ending.failure.kind is FailureKind.PARAMETER
    assert ending.exit_status == 2
    assert ending.changed_cluster is False


def test_a_signal_outranks_everything_and_lost_evidence_outranks_a_failure(
    tmp_path: Path,
) -> None:
    run = ENDINGS[Outcome.FAILED](Run(tmp_path / "timeline.jsonl"))
    assert _ending(run, seal=SEALED).exit_status == 1
    assert _ending(run, seal=SEALED, lost=("rollback.ipynb: No space",)).exit_status == 5
    lost = _ending(run, seal=SEALED, signal=signal.SIGTERM, lost=("x: No space",))
    assert lost.exit_status == 143
    assert lost.signal_name == "SIGTERM"
    assert _ending(run, seal=SEALED, signal=signal.SIGINT).exit_status == 130


def test_a_bundle_that_does_not_verify_is_evidence_lost(tmp_path: Path) -> None:
    run = ENDINGS[Outcome.RECOVERED](Run(tmp_path / "timeline.jsonl"))
    broken = Seal(
        False,
        False,
        "could not write MANIFEST.sha256: No space left on device",
        ("added (not in manifest): record.json",),
    )
    ending = _ending(run, seal=broken)
    assert ending.evidence_lost
    assert not ending.sealed
    assert ending.exit_status == 5
    assert ending.outcome is Outcome.RECOVERED  # the cluster's story is still told


@pytest.mark.parametrize(
    ("outcome", "sentence", "changed"),
    [
        (Outcome.RECOVERED, "rolled back by this run: revision 2 -> 1", True),
        (
            Outcome.ALREADY_ROLLED_BACK,
            "rolled back earlier in this incident: revision 2 -> 1; this run changed nothing",
            True,
        ),
        (Outcome.NO_ROLLBACK, "not changed by this run (helm rollback did not run)", False),
        (Outcome.DRY_RUN, "not changed: a dry run (helm rollback did not run)", False),
        (Outcome.REFUSED, "not changed by this run (helm rollback did not run)", False),
    ],
    ids=lambda v: v.value if isinstance(v, Outcome) else None,
)
def test_what_happened_to_the_cluster(
    tmp_path: Path, outcome: Outcome, sentence: str, changed: bool
) -> None:
    ending = _ending(ENDINGS[outcome](Run(tmp_path / "timeline.jsonl")))
    assert ending.cluster_sentence == sentence
    assert ending.changed_cluster is changed


def test_a_helm_that_ran_and_failed_is_never_said_not_to_have_run(tmp_path: Path) -> None:
    # helm rollback cut off by its timeout, and the cluster could not be read back: it may
    # have applied the rollback.
    run = Run(tmp_path / "timeline.jsonl").start().decided("rollback").target()
    run.fact("helm_rollback", RollbackStarted(2, 1, "helm rollback app 1"))
    run.fails("helm_rollback", CommandFailed("helm timed out", command="helm rollback app 1"))
    ending = _ending(run)
    assert ending.cluster is Cluster.NOT_KNOWN
    assert "did not run" not in ending.cluster_sentence
    assert "helm rollback was started and did not end cleanly" in ending.cluster_sentence
    assert ending.changed_cluster is None


def test_a_helm_step_stopped_before_helm_did_not_run_it(tmp_path: Path) -> None:
    run = Run(tmp_path / "timeline.jsonl").start().decided("rollback").target()
    run.fails("helm_rollback", LockLost("the lock was taken over", holder="someone"))
    ending = _ending(run)
    assert ending.cluster is Cluster.NOT_CHANGED
    assert ending.outcome is Outcome.REFUSED


def test_the_cluster_read_back_is_preferred_over_anything_inferred(tmp_path: Path) -> None:
    run = Run(tmp_path / "timeline.jsonl").start().decided("rollback").target()
    run.fails("helm_rollback", CommandFailed("helm timed out", command="helm rollback app 1"))
    read_back = ClusterReadBack(
        reason="helm rollback was cut off by its timeout",
        read_at=T0,
        revision=3,
        version="v1.0.0",
        description="Rollback to 1",
        made_at=T0,
        rollback_applied=True,
        pod_images=("registry.local/api:v1.0.0",),
        sentence="helm rollback was killed after 30 s; the release is at revision 3 (v1.0.0, "
        "'Rollback to 1'): the rollback was applied",
    )
    record_fact(run.timeline, "helm_rollback", read_back, read_back.sentence)
    ending = _ending(run)
    assert ending.cluster is Cluster.READ_BACK
    assert ending.cluster_sentence == read_back.sentence
    assert ending.changed_cluster is True


def test_the_verdict_is_an_enum_read_back_from_text(tmp_path: Path) -> None:
    ending = _ending(ENDINGS[Outcome.INCONCLUSIVE](Run(tmp_path / "timeline.jsonl")))
    assert ending.verdict is Verdict.INCONCLUSIVE


def test_a_refusal_for_lack_of_room_is_known_as_such(tmp_path: Path) -> None:
    from runbook_lib.errors import PreconditionFailed

    run = Run(tmp_path / "timeline.jsonl").start().decided("rollback")
    problem = "only 0.2 MiB free, at least 50 MiB needed"
    run.fact("preflight", EvidenceRoom(str(tmp_path), 200_000, 50 * 2**20, problem))
    run.fails("preflight", PreconditionFailed(f"evidence folder: {problem}"))
    ending = _ending(run)
    assert ending.room_problem == problem
    assert ending.exit_status == 6
    # Another refusal (the cluster guard) after a room check that passed is not one.
    other = Run(tmp_path / "other.jsonl").start().decided("rollback")
    other.fact("preflight", EvidenceRoom(str(tmp_path), 2**30, 50 * 2**20, ""))
    other.fails("preflight", PreconditionFailed("wrong cluster"))
    assert _ending(other).room_problem == ""


@pytest.mark.parametrize(
    ("seal", "said"),
    [
        (Seal(True, True), "sealed, signed"),
        (Seal(True, False), "sealed, unsigned"),
        (
            Seal(True, False, "signing with k failed: agent refused"),
            "sealed, unsigned (signing with k failed: agent refused)",
        ),
        (
            Seal(
                False,
                False,
                "could not write MANIFEST.sha256: No space left on device",
                ("missing: record.json", "added (not in manifest): rollback.ipynb"),
            ),
            "NOT sealed: could not write MANIFEST.sha256: No space left on device; missing: "
            "record.json; added (not in manifest): rollback.ipynb",
        ),
    ],
    ids=["signed", "unsigned", "signing-failed", "not-sealed"],
)
def test_what_the_seal_says(seal: Seal, said: str) -> None:
    assert seal.sentence() == said
    assert said.startswith("NOT sealed") is not seal.sealed


def test_an_ending_read_inside_the_kernel_has_no_seal_yet() -> None:
    ending = Ending.read(RunFacts(started_at=datetime(2026, 1, 1, tzinfo=UTC)))
    assert ending.seal is None
    assert ending.outcome is Outcome.INCOMPLETE
    assert not ending.evidence_lost
