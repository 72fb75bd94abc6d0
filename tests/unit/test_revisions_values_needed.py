"""Which revisions' values preflight fetches: only those ``resolve_target`` compares."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from runbook_lib.core.revisions import Revision, resolve_target, revisions_needing_values
from runbook_lib.errors import PreconditionFailed

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


@pytest.mark.parametrize("seed", range(200), ids=lambda s: f"seed-{s}")
def test_needed_values_give_the_same_answer_as_all_values(seed: int) -> None:
    # Random histories of deploys, failures and rollbacks: fetching only the needed values
    # must never change the target or the "already rolled back" verdict.
    rng = random.Random(seed)
    history: list[Revision] = []
    values: dict[int, dict[str, int]] = {}
    for number in range(1, rng.randint(2, 9) + 1):
        if history and rng.random() < 0.3:
            restored = rng.choice(history)
            rev = Revision(
                number, "superseded", restored.chart, restored.app_version, T0,
                f"Rollback to {restored.number}",
            )  # fmt: skip
            values[number] = dict(values[restored.number])
        else:
            status = rng.choice(["superseded", "superseded", "failed"])
            rev = _rev(number, rng.choice(["v1.0.0", "v1.1.0"]), status)
            values[number] = {"replicas": rng.choice([2, 4])}
        history.append(rev)
    last = history[-1]
    history[-1] = Revision(
        last.number, "deployed", last.chart, last.app_version, T0, last.description
    )
    try:
        full = resolve_target(history, values_by_revision=values)
    except PreconditionFailed:
        return  # no target at all; nothing to compare
    subset = {n: values[n] for n in revisions_needing_values(history)}
    assert resolve_target(history, values_by_revision=subset) == full
