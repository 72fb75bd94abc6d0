"""How a run ended, said once: the ``Ending`` every reader of a run takes its words from.

``Ending.read(facts, ...)`` turns the run's facts (``RunFacts.read``, the one reader of the
timeline) and what only the process that ran the notebook could observe (a signal, evidence it
could not write, the seal) into one value: the outcome, the verdict, the failure, what happened
to the cluster, what evidence was lost, whether the bundle is sealed, and the exit status.
``runbook run``'s lines, the receiver's child runner, the incident record, the notebook's
summary and the tests all read it; none works the ending out again from step names or text.

What happened to the cluster prefers the cluster as read back (``ClusterReadBack``) over
anything inferred, and never says "did not run" of a ``helm rollback`` that was started and
did not end cleanly: that is "not known" until someone reads the release back.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runbook_lib.core.exit_status import (
    BAD_INPUT,
    EVIDENCE_LOST,
    FAILED,
    INCONCLUSIVE,
    OK,
    REFUSED,
    stopped_by,
)
from runbook_lib.core.verdict import Verdict
from runbook_lib.record.facts import Outcome, RunFacts, StepFailure
from runbook_lib.record.timeline import Event, FailureKind

__all__ = ["Cluster", "Ending", "Seal"]

HELM_STEP = "helm_rollback"


class Cluster(StrEnum):
    """What the run did to the release."""

    ROLLED_BACK = "rolled_back"  # this run's helm rollback ended cleanly
    ROLLED_BACK_EARLIER = "rolled_back_earlier"  # an earlier attempt of the incident did it
    ALREADY_ROLLED_BACK = "already_rolled_back"  # found on the good revision; nothing done
    READ_BACK = "read_back"  # read back from the cluster after helm did not end cleanly
    NOT_KNOWN = "not_known"  # helm rollback was started, did not end cleanly, not read back
    NOT_CHANGED = "not_changed"  # helm rollback did not run


@dataclass(frozen=True)
class Seal:
    """The bundle's seal, as checked after it was written.

    ``sealed``: ``MANIFEST.sha256`` was written and the folder verifies against it (what
    ``runbook verify-evidence`` checks). ``signed``: ``MANIFEST.sha256.sig`` was written.
    ``why``: why it is unsigned (when a key was meant to sign) or not sealed. ``problems``:
    what verification found (``missing: record.json``, ``added (not in manifest): x``).
    ``repaired``: a torn timeline line cut off before sealing.
    """

    sealed: bool
    signed: bool
    why: str = ""
    problems: tuple[str, ...] = ()
    repaired: str = ""

    def sentence(self) -> str:
        if not self.sealed:
            detail = "; ".join(self.problems)
            return "NOT sealed: " + "; ".join(p for p in (self.why, detail) if p)
        words = "sealed, signed" if self.signed else "sealed, unsigned"
        if self.why:
            words += f" ({self.why})"
        if self.repaired:
            words += f"; {self.repaired}"
        return words


def _cluster(facts: RunFacts) -> tuple[Cluster, str]:
    read_back = facts.read_back
    if read_back is not None:
        return Cluster.READ_BACK, read_back.sentence
    if facts.rolled_back is not None:
        done = facts.rolled_back
        return Cluster.ROLLED_BACK, (
            f"rolled back by this run: revision {done.from_revision} -> {done.to_revision}"
        )
    if facts.earlier_rollback is not None:
        done = facts.earlier_rollback
        return Cluster.ROLLED_BACK_EARLIER, (
            f"rolled back earlier in this incident: revision {done.from_revision} -> "
            f"{done.to_revision}; this run changed nothing"
        )
    if facts.target is not None and facts.target.already_rolled_back:
        current = facts.target.current_revision
        return Cluster.ALREADY_ROLLED_BACK, (
            f"already on the good revision {current}; nothing changed"
        )
    if facts.cut_off and not facts.dry_run:
        failure = next((f for f in reversed(facts.failures) if f.step == HELM_STEP), None)
        how = f"({failure.error_type})" if failure is not None else "(the run stopped in it)"
        return Cluster.NOT_KNOWN, (
            f"NOT KNOWN: helm rollback was started and did not end cleanly {how}; the "
            "release was not read back: check `helm history` before acting"
        )
    if facts.dry_run:
        return Cluster.NOT_CHANGED, "not changed: a dry run (helm rollback did not run)"
    return Cluster.NOT_CHANGED, "not changed by this run (helm rollback did not run)"


@dataclass(frozen=True)
class Ending:
    """How one run (the latest attempt of its incident) ended; see the module docstring.

    ``signal``: the signal that stopped the run (``runbook run`` observed it); ``lost``: the
    evidence that could not be written; ``seal``: the bundle's seal (None: not sealed yet,
    e.g. read inside the kernel before the end); ``room_problem``: why preflight found no
    room for the evidence, when that is why the run was refused.
    """

    outcome: Outcome
    verdict: Verdict | None
    failure: StepFailure | None
    cluster: Cluster
    cluster_sentence: str
    changed_cluster: bool | None  # any attempt of the incident changed it; None: not known
    lost: tuple[str, ...] = ()
    seal: Seal | None = None
    signal: int | None = None
    room_problem: str = ""

    @classmethod
    def read(
        cls,
        facts: RunFacts,
        *,
        signal: int | None = None,
        lost: Iterable[str] = (),
        seal: Seal | None = None,
    ) -> Ending:
        """The ending of the run whose facts these are, with what its runner observed."""
        cluster, sentence = _cluster(facts)
        changed: bool | None = None if cluster is Cluster.NOT_KNOWN else facts.changed_cluster
        gone = tuple(dict.fromkeys([*facts.lost, *lost]))
        room = facts.room
        refused_for_room = (
            room is not None
            and bool(room.problem)
            and facts.outcome is Outcome.REFUSED
            and facts.failure is not None
            and facts.failure.step == "preflight"
        )
        return cls(
            outcome=facts.outcome,
            verdict=facts.decided.verdict if facts.decided is not None else None,
            failure=facts.failure,
            cluster=cluster,
            cluster_sentence=sentence,
            changed_cluster=changed,
            lost=gone,
            seal=seal,
            signal=signal,
            room_problem=room.problem if refused_for_room and room is not None else "",
        )

    @classmethod
    def of(cls, events: Iterable[Event], **observed: Any) -> Ending:
        """``Ending.read(RunFacts.read(events), ...)``."""
        return cls.read(RunFacts.read(events), **observed)

    @property
    def evidence_lost(self) -> bool:
        """Something could not be written, or the bundle does not verify."""
        return bool(self.lost) or (self.seal is not None and not self.seal.sealed)

    @property
    def sealed(self) -> bool:
        return self.seal is not None and self.seal.sealed

    @property
    def exit_status(self) -> int:
        """``runbook run``'s exit status (``core.exit_status.RUN_STATUSES`` says each)."""
        if self.signal is not None:
            return stopped_by(self.signal)
        if self.evidence_lost:
            return EVIDENCE_LOST
        if self.failure is not None:
            if self.outcome in (Outcome.REFUSED, Outcome.DECLINED):
                if self.failure.kind is FailureKind.PARAMETER:
                    return BAD_INPUT
                return REFUSED
            return FAILED
        if self.outcome is Outcome.INCONCLUSIVE:
            return INCONCLUSIVE
        if self.outcome in _DONE:
            return OK
        return FAILED

    @property
    def signal_name(self) -> str:
        return signals.Signals(self.signal).name if self.signal is not None else ""


_DONE = frozenset(
    {
        Outcome.RECOVERED,
        Outcome.NO_ROLLBACK,
        Outcome.DRY_RUN,
        Outcome.ALREADY_ROLLED_BACK,
        Outcome.ASSESSED,
    }
)
