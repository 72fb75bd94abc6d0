"""Where assess and preflight read the release's revisions, values and manifests from.

Helm's own records, listed in one API call, when Helm keeps them in Secrets (its default);
the ``helm`` CLI otherwise, or whenever that read fails. Both answer the same three questions
with the same signatures, so the steps do not care which one they got.
"""

from __future__ import annotations

from typing import Any, Protocol

from runbook_lib.adapters.helm_records import read_release
from runbook_lib.core.revisions import Revision
from runbook_lib.errors import RunbookError
from runbook_lib.steps.context import RunContext
from runbook_lib.timeline import EventKind

__all__ = ["ReleaseSource", "release_source"]


class ReleaseSource(Protocol):
    """What the steps ask about a release's stored revisions."""

    def history(self, release: str) -> list[Revision]: ...

    def values(self, release: str, revision: int) -> dict[str, Any]: ...

    def manifest(self, release: str, revision: int) -> str: ...


def release_source(ctx: RunContext, step: str) -> ReleaseSource:
    """A fresh view of the release for ``step``: a snapshot of Helm's records, or the helm CLI.

    Never raises for the fast path: any failure there (no permission, no records, a record it
    cannot decode) is recorded on the timeline and the helm CLI answers instead, with its own
    errors. The snapshot is read anew on every call: preflight must not trust what assess saw.
    """
    p = ctx.params
    driver = ctx.helm.storage_driver()
    snapshot = None
    if driver != "secret":
        why = f"helm keeps releases in {driver!r}"
    else:
        try:
            snapshot = read_release(ctx.kube, p.namespace, p.release)
        except RunbookError as err:
            why = f"could not read helm's records of {p.release} directly ({err})"
        else:
            why = f"no helm record Secrets for {p.release} in {p.namespace}"
    if snapshot is None:
        ctx.timeline.record(step, EventKind.INFO, f"{why}: asking the helm CLI")
        return ctx.helm
    ctx.timeline.record(
        step, EventKind.INFO,
        f"read {len(snapshot.revisions)} helm records of {p.release} in one API call",
    )  # fmt: skip
    return snapshot
