"""Which revisions' values preflight fetches: only those ``resolve_target`` compares."""

from __future__ import annotations

import dataclasses
import random

import pytest
from helm_history import helm_history, revision

from runbook_lib.core.revisions import Revision, resolve_target, revisions_needing_values
from runbook_lib.errors import PreconditionFailed


@pytest.mark.parametrize(
    ("history", "needed"),
    [
        pytest.param(helm_history("v1.0.0", "v1.1.0"), [], id="bad-after-good"),
        pytest.param(
            helm_history("v1.0.0", "v1.1.0", "v1.0.0 rollback 1"),
            [1, 3],
            id="already-rolled-back",
        ),
        pytest.param(
            helm_history("v1.0.0", "v1.1.0", "v1.1.0"),
            [2, 3],
            id="values-only-change",
        ),
        pytest.param(
            helm_history("v1.0.0", "v1.1.0 failed", "v1.1.0"),
            [],
            id="failed-look-alike-is-not-a-candidate",
        ),
    ],
)
def test_values_fetched_only_where_they_decide(history: list[Revision], needed: list[int]) -> None:
    assert revisions_needing_values(history) == needed


def test_same_target_as_with_every_revisions_values() -> None:
    history = helm_history("v1.0.0", "v1.1.0", "v1.1.0")
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
            rev = revision(
                number, restored.app_version, description=f"Rollback to {restored.number}"
            )
            values[number] = dict(values[restored.number])
        else:
            status = rng.choice(["superseded", "superseded", "failed"])
            rev = revision(number, rng.choice(["v1.0.0", "v1.1.0"]), status)
            values[number] = {"replicas": rng.choice([2, 4])}
        history.append(rev)
    history[-1] = dataclasses.replace(history[-1], status="deployed")
    try:
        full = resolve_target(history, values_by_revision=values)
    except PreconditionFailed:
        return  # no target at all; nothing to compare
    subset = {n: values[n] for n in revisions_needing_values(history)}
    assert resolve_target(history, values_by_revision=subset) == full
