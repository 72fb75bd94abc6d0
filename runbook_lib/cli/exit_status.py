"""The exit statuses of every ``runbook`` command, in one place (documented in the README).

0  done (evaluated; rolled back and recovered; nothing to do)
1  a step or a command failed (the evidence collected so far is still written)
2  bad input: parameters, options, a malformed replay file
3  verdict "rollback" (``runbook evaluate --exit-status`` only)
4  verdict "inconclusive": ``runbook evaluate --exit-status``, and ``runbook run`` when it
   stopped before any change because the data could not be judged
5  evidence lost: ``runbook run`` ended but its evidence could not be written completely
   (disk full, permissions); it still says what happened to the cluster and seals what exists
6  Prometheus cannot be read: ``runbook profile check`` and ``init`` (their 1 and 2 mean
   warnings and a bad profile)
130, 143  ``runbook run`` stopped by SIGINT / SIGTERM (128 + the signal), evidence sealed
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine (pandas) is not loaded by `runbook run` before its kernel starts
    from runbook_lib.core.decision import Verdict

__all__ = [
    "BAD_INPUT",
    "EVIDENCE_LOST",
    "FAILED",
    "INCONCLUSIVE",
    "OK",
    "ROLLBACK",
    "UNREACHABLE",
    "exit_status_for",
]

OK = 0
FAILED = 1
BAD_INPUT = 2
ROLLBACK = 3
INCONCLUSIVE = 4
EVIDENCE_LOST = 5
UNREACHABLE = 6


def exit_status_for(verdict: Verdict) -> int:
    """``runbook evaluate --exit-status``: the verdict as an exit status for scripts."""
    return {"no_rollback": OK, "rollback": ROLLBACK, "inconclusive": INCONCLUSIVE}[verdict.value]
