"""The rollback runbook's steps, one public function each, in the runbook's order.

``ctx = start_run(**notebook_parameters(globals()))``, then the steps of ``ROLLBACK_STEPS``
(``assess`` ... ``finish``) and of ``POST_ROLLBACK_STEPS``, each in that order. Every step
records itself on ``ctx.timeline``, honours ``dry_run`` and raises from ``runbook_lib.errors``;
notebooks call them one per cell and never catch.
"""

from collections.abc import Mapping
from typing import Any

from runbook_lib.assessment import Window
from runbook_lib.core.kinds import Entry
from runbook_lib.core.settings import Settings, given
from runbook_lib.steps.assess import DecisionMade, assess, decide
from runbook_lib.steps.by_hand import NotebookSaved, save_notebook
from runbook_lib.steps.context import RunContext, start_run
from runbook_lib.steps.finish import Finished, finish
from runbook_lib.steps.followup import (
    FixForwardResult,
    PostmortemDrafted,
    draft_postmortem,
    fix_forward,
)
from runbook_lib.steps.migrations import MigrationsDone, revert_migrations
from runbook_lib.steps.plan import Plan
from runbook_lib.steps.plots import PlotsWritten, plot_assessment, plot_before_after
from runbook_lib.steps.preflight import Confirmation, confirm, preflight
from runbook_lib.steps.records import (
    EvidenceWritten,
    RecordWritten,
    preserve_evidence,
    write_record,
)
from runbook_lib.steps.recovery import RecoveryChecked, check_recovery
from runbook_lib.steps.rollback import Notified, RollbackDone, helm_rollback, notify
from runbook_lib.steps.rollout import ImagesVerified, RolloutDone, verify_image, wait_for_rollout
from runbook_lib.steps.step import Skipped

# The runbook's order from the assessment to the end of the rollback: the notebook's cells, the
# end-to-end tests and the benchmark all follow this one tuple (a test checks the notebook).
ROLLBACK_STEPS = (
    assess,
    decide,
    preflight,
    confirm,
    notify,
    helm_rollback,
    wait_for_rollout,
    verify_image,
    check_recovery,
    revert_migrations,
    finish,
)
# The post-rollback actions, after ``finish``.
POST_ROLLBACK_STEPS = (
    plot_before_after,
    write_record,
    preserve_evidence,
    fix_forward,
    draft_postmortem,
    save_notebook,
)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The rollback notebook's settings as given, by name, out of the notebook's globals.

    The names are those of ``core.settings`` (the parameters cell declares exactly these); a
    value left at its default is not given, so a ``profile`` can set it.
    """
    return given(namespace, Entry.ROLLBACK)


__all__ = [
    "POST_ROLLBACK_STEPS",
    "ROLLBACK_STEPS",
    "Confirmation",
    "DecisionMade",
    "EvidenceWritten",
    "Finished",
    "FixForwardResult",
    "ImagesVerified",
    "MigrationsDone",
    "NotebookSaved",
    "Notified",
    "Plan",
    "PlotsWritten",
    "PostmortemDrafted",
    "RecordWritten",
    "RecoveryChecked",
    "RollbackDone",
    "RolloutDone",
    "RunContext",
    "Settings",
    "Skipped",
    "Window",
    "assess",
    "check_recovery",
    "confirm",
    "decide",
    "draft_postmortem",
    "finish",
    "fix_forward",
    "helm_rollback",
    "notebook_parameters",
    "notify",
    "plot_assessment",
    "plot_before_after",
    "preflight",
    "preserve_evidence",
    "revert_migrations",
    "save_notebook",
    "start_run",
    "verify_image",
    "wait_for_rollout",
    "write_record",
]
