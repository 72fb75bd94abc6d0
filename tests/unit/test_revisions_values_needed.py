"""Which revisions' values preflight fetches: only those ``resolve_target`` compares."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runbook_lib.core.revisions import Revision, resolve_target, revisions_needing_values

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


def _rev(number: int, app: str, status: str = "superseded", description: str = "") -> Revision:
    return Revision(number, status, "app-0.1.0", app, T0, description or "Upgrade complete")


@pytest.mark.parametrize(
    ("history", "needed"),
    [
        pytest.param([_rev(1, "v1.0.0"), _rev(2, "v1.1.0", "deployed")], [], id="bad-after-good"),
        pytest.param(
            [_rev(1, "v1.0.0"), _rev(2, "v1.1.0"), _rev(3, "v1.0.0", "deployed", "Rollback to 1")],
            [1, 3],
            id="already-rolled-back",
        ),
        pytest.param(
            [_rev(1, "v1.0.0"), _rev(2, "v1.1.0"), _rev(3, "v1.1.0", "deployed")],
            [2, 3],
            id="values-only-change",
        ),
        pytest.param(
            [_rev(1, "v1.0.0"), _rev(2, "v1.1.0", "failed"), _rev(3, "v1.1.0", "deployed")],
            [],
            id="failed-look-alike-is-not-a-candidate",
        ),
    ],
)
def test_values_fetched_only_where_they_decide(history: list[Revision], needed: list[int]) -> None:
    assert revisions_needing_values(history) == needed


def test_same_target_as_with_every_revisions_values() -> None:
    history = [_rev(1, "v1.0.0"), _rev(2, "v1.1.0"), _rev(3, "v1.1.0", "deployed")]
    values = {1: {"a": 1}, 2: {"a": 2}, 3: {"a": 3}}
    subset = {n: values[n] for n in revisions_needing_values(history)}
    full = resolve_target(history, values_by_revision=values)
    assert resolve_target(history, values_by_revision=subset) == full
    assert full.target.number == 2
