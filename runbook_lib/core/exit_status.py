"""The exit statuses of every ``runbook`` command, in one place: a number means one thing
whichever command returns it, so a script that branches on it cannot mistake one for another.

``RUN_STATUSES`` says what each means for ``runbook run``: its ``--help`` is written from it and
a test holds the README's table to it. ``runbook run`` takes its status from the run's
``Ending`` (``runbook_lib.record.ending``), never from printed text. ``UNREACHABLE``:
``runbook profile check`` and ``init`` could not read Prometheus (their 1 and 2 mean warnings
and a bad profile). ``runbook verify-evidence`` gives ``BAD_INPUT`` for a bundle that does not
verify.
"""

from __future__ import annotations

import signal

from runbook_lib.core.verdict import Verdict

__all__ = [
    "BAD_INPUT",
    "EVIDENCE_LOST",
    "FAILED",
    "INCONCLUSIVE",
    "OK",
    "REFUSED",
    "ROLLBACK",
    "RUN_STATUSES",
    "UNREACHABLE",
    "exit_status_for",
    "stopped_by",
]

OK = 0
FAILED = 1
BAD_INPUT = 2
ROLLBACK = 3
INCONCLUSIVE = 4
EVIDENCE_LOST = 5
REFUSED = 6  # runbook run
UNREACHABLE = 7  # runbook profile check / init
_SIGNAL_BASE = 128  # the shells' convention: 128 + the signal's number


def stopped_by(signum: int) -> int:
    """The status of a run stopped by ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return _SIGNAL_BASE + signum


# (status, what it means for `runbook run`), in the order people look them up.
RUN_STATUSES: tuple[tuple[int, str], ...] = (
    (
        OK,
        "done: rolled back and recovered, or nothing to do (no rollback, already rolled "
        "back, dry run), evidence sealed",
    ),
    (
        FAILED,
        "a step failed (escalate when the rollback ran but recovery is not verified); "
        "the partial notebook and the evidence so far are written and sealed",
    ),
    (
        BAD_INPUT,
        "bad input: parameters (all listed), or an input file that cannot be read "
        "(kubeconfig, replay, notebook); nothing changed",
    ),
    (INCONCLUSIVE, "stopped before any change on an inconclusive verdict (on_inconclusive=stop)"),
    (
        EVIDENCE_LOST,
        "evidence lost: the run ended but its evidence could not be written or "
        "sealed completely (disk full, permissions); the output still says what "
        "happened to the cluster and what is missing",
    ),
    (
        REFUSED,
        "refused before any change: a safety check stopped the run (wrong cluster, "
        "lock held, no room for the evidence, missing permissions, nobody to confirm)",
    ),
    (stopped_by(signal.SIGINT), "stopped by SIGINT (Ctrl-C); the evidence so far is sealed"),
    (stopped_by(signal.SIGTERM), "stopped by SIGTERM; the evidence so far is sealed"),
)


def exit_status_for(verdict: Verdict) -> int:
    """``runbook evaluate --exit-status``: the verdict as an exit status for scripts."""
    return {
        Verdict.NO_ROLLBACK: OK,
        Verdict.ROLLBACK: ROLLBACK,
        Verdict.INCONCLUSIVE: INCONCLUSIVE,
    }[Verdict(verdict)]
