"""Post-Rollback Actions, steps 3 to 5: a branch to fix forward on, the post-mortem draft."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from runbook_lib.errors import ParameterError, PreconditionFailed
from runbook_lib.evidence import files, postmortem
from runbook_lib.evidence import incident_record as incident_record
from runbook_lib.evidence.fixforward import FixForward, create_fix_branch
from runbook_lib.record.facts import FixBranchCreated, record_fact
from runbook_lib.record.timeline import EventKind
from runbook_lib.steps.context import RunContext
from runbook_lib.steps.step import runbook_step

__all__ = ["FixForwardResult", "PostmortemDrafted", "draft_postmortem", "fix_forward"]


@dataclass(frozen=True)
class FixForwardResult:
    """The branch created, or why none was (no repository given, refused)."""

    branch: FixForward | None
    refused: str = ""

    def __repr__(self) -> str:
        if self.branch is not None:
            return f"Fix forward: {self.branch}"
        return f"Fix forward: no branch created: {self.refused}"


@runbook_step("fix_forward", seals=True)
def fix_forward(ctx: RunContext) -> FixForwardResult:
    """Post-Rollback Actions, step 3: branch ``fix/<incident_id>`` at the last good commit.

    In the git repository ``fix_forward_repo``. The commit comes from the good revision's
    ``runbook.io/git-commit`` annotation or its values' ``commits`` mapping (or a tag named
    like the version). A refusal (branch exists, commit unknown, no repository given) is
    recorded as a warning and shown, not raised: the rollback itself is done. Raises
    ``CommandFailed`` when git itself fails.
    """
    settings = ctx.settings
    facts = ctx.facts
    rollback = facts.rolled_back or facts.earlier_rollback
    good = (
        rollback.to_revision
        if rollback
        else (facts.target.target_revision if facts.target else None)
    )
    if not settings.records.fix_forward_repo:
        result = FixForwardResult(None, "no repository given (parameter fix_forward_repo)")
    elif good is None:
        result = FixForwardResult(None, "the good revision is not known (preflight did not run)")
    else:
        try:
            branch = create_fix_branch(
                Path(settings.records.fix_forward_repo),
                incident_id=settings.records.incident_id,
                good_version=facts.target.target_version if facts.target else None,
                manifest_yaml=ctx.helm.manifest(settings.target.release, good),
                values=ctx.helm.values(settings.target.release, good),
                deployment=settings.target.deployment,
                dry_run=ctx.dry_run,
            )
        except (PreconditionFailed, ParameterError) as err:
            result = FixForwardResult(None, str(err))
        else:
            result = FixForwardResult(branch)
    if result.branch is None:
        ctx.timeline.record("fix_forward", EventKind.WARNING, repr(result))
    elif ctx.dry_run:
        ctx.timeline.record("fix_forward", EventKind.DRY_RUN, repr(result))
    else:
        record_fact(
            ctx.timeline,
            "fix_forward",
            FixBranchCreated(result.branch.branch, result.branch.commit),
            repr(result),
        )
    return result


@dataclass(frozen=True)
class PostmortemDrafted:
    files: tuple[str, ...]
    slot: datetime
    reminder: postmortem.Reminder

    def __repr__(self) -> str:
        return (
            f"Post-mortem draft {self.files[0]}, invitation {self.files[1]} for "
            f"{self.slot:%a %Y-%m-%d %H:%M} UTC\n{self.reminder}"
        )


@runbook_step("draft_postmortem", seals=True)
def draft_postmortem(ctx: RunContext, *, slow_step_s: float = 60.0) -> PostmortemDrafted:
    """Post-Rollback Actions, steps 4 and 5: post-mortem draft, invitation, runbook reminder.

    Reads ``record.json`` (``write_record`` must have run). Writes ``postmortem.md``,
    ``postmortem.ics`` (RFC 5545, UTC, within 48 hours, organised by
    ``postmortem_organizer``) and ``runbook-update.md`` listing the steps that failed or took
    longer than ``slow_step_s``. Raises ``PreconditionFailed`` when there is no record.
    """
    directory = ctx.incident_dir
    try:
        record = incident_record.load_record(directory / "record.json")
    except OSError as err:
        raise PreconditionFailed("draft_postmortem needs write_record to have run") from err
    now = ctx.now()
    slot = postmortem.postmortem_slot(now)
    fix = ctx.facts.fix_branch
    reminder = postmortem.runbook_reminder(record, slow_s=slow_step_s)
    organizer = ctx.settings.records.postmortem_organizer
    incident = ctx.settings.records.incident_id
    texts = {
        "postmortem.md": postmortem.postmortem_markdown(
            record, slot=slot, fix_branch=fix.branch if fix else ""
        ),
        "postmortem.ics": postmortem.calendar_invite(
            record, now=now, start=slot, organizer=organizer or None, attendees=()
        ),
        "runbook-update.md": f"# Runbook update for {incident}\n\n{reminder}\n",
    }
    for name, text in texts.items():
        # Written as bytes: the CRLF line ends RFC 5545 requires are kept as they are.
        files.write_text(directory, name, ctx.redact(text))
    result = PostmortemDrafted(tuple(texts), slot, reminder)
    ctx.timeline.record("draft_postmortem", EventKind.INFO, repr(result))
    return result
