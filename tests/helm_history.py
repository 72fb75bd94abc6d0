"""Helm release histories for tests, one short spec a revision.

A spec is ``"VERSION [STATUS] [rollback N] [chart CHART]"``: the app version, the status (the
newest revision is ``deployed``, the others ``superseded``, unless it says), ``rollback N`` for
a revision that Helm wrote for ``helm rollback ... N`` (its description "Rollback to N"; others
say "Upgrade complete") and the chart when it is not ``app-0.1.0``. ``helm_rows`` gives what
``helm history -o json`` prints, so a test reads it with the real parser; ``helm_history``
gives it parsed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.core.revisions import Revision, parse_history

__all__ = ["T0", "helm_history", "helm_rows", "revision"]

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def revision(
    number: int,
    version: str,
    status: str = "superseded",
    description: str = "Upgrade complete",
    *,
    chart: str = "app-0.1.0",
    at: datetime | None = None,
) -> Revision:
    """One revision as the parser gives it (updated ``at``, else ``number`` minutes after T0)."""
    return Revision(
        number, status, chart, version, at or T0 + timedelta(minutes=number), description
    )


def helm_rows(*specs: str, first: int = 1, chart: str = "app-0.1.0") -> list[dict[str, Any]]:
    """``helm history -o json`` for ``specs``, numbered from ``first``."""
    rows = []
    for number, spec in enumerate(specs, start=first):
        version, *words = spec.split()
        status = "deployed" if number == first + len(specs) - 1 else "superseded"
        named = {"rollback": "", "chart": chart}
        for key in named:
            if key in words:
                at = words.index(key)
                named[key] = words[at + 1]
                del words[at : at + 2]
        if words:
            (status,) = words
        rollback = named["rollback"]
        rows.append(
            {
                "revision": number,
                "updated": (T0 + timedelta(minutes=number)).isoformat().replace("+00:00", "Z"),
                "status": status,
                "chart": named["chart"],
                "app_version": version,
                "description": f"Rollback to {rollback}" if rollback else "Upgrade complete",
            }
        )
    return rows


def helm_history(*specs: str, first: int = 1) -> list[Revision]:
    """``specs`` as ``parse_history`` reads them from helm."""
    return parse_history(json.dumps(helm_rows(*specs, first=first)))
