"""The rollback runbook's steps, one public function each, in the runbook's order.

``ctx = start_run(**params)``, then the steps of ``ROLLBACK_STEPS`` (``assess`` ... ``finish``)
and of ``POST_ROLLBACK_STEPS`` (``steps.post``), each in that order.
Every step records itself on ``ctx.timeline``, honours ``dry_run`` and raises from
``runbook_lib.errors``; notebooks call them one per cell and never catch.
"""

from runbook_lib.steps.assess import Assessment, Verdict, assess, decide
from runbook_lib.steps.context import RunContext, RunParams, start_run
from runbook_lib.steps.finish import Finished, finish
from runbook_lib.steps.migrations import MigrationsReverted, revert_migrations
from runbook_lib.steps.plan import Plan
from runbook_lib.steps.post import (
    draft_postmortem,
    fix_forward,
    plot_assessment,
    plot_before_after,
    preserve_evidence,
    write_record,
)
from runbook_lib.steps.preflight import Confirmation, confirm, preflight
from runbook_lib.steps.recovery import RecoveryChecked, check_recovery
from runbook_lib.steps.rollback import Notified, RollbackDone, helm_rollback, notify
from runbook_lib.steps.rollout import ImagesVerified, RolloutDone, verify_image, wait_for_rollout
from runbook_lib.steps.span import Skipped

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
)

__all__ = [
    "POST_ROLLBACK_STEPS",
    "ROLLBACK_STEPS",
    "Assessment",
    "Confirmation",
    "Finished",
    "ImagesVerified",
    "MigrationsReverted",
    "Notified",
    "Plan",
    "RecoveryChecked",
    "RollbackDone",
    "RolloutDone",
    "RunContext",
    "RunParams",
    "Skipped",
    "Verdict",
    "assess",
    "check_recovery",
    "confirm",
    "decide",
    "draft_postmortem",
    "finish",
    "fix_forward",
    "helm_rollback",
    "notify",
    "plot_assessment",
    "plot_before_after",
    "preflight",
    "preserve_evidence",
    "revert_migrations",
    "start_run",
    "verify_image",
    "wait_for_rollout",
    "write_record",
]
