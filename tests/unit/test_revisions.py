"""Choosing the explicit revision to roll back to, from ``helm history -o json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from helm_history import helm_history, helm_rows

from runbook_lib.core.revisions import (
    Revision,
    parse_history,
    resolve_target,
    revisions_needing_values,
)
from runbook_lib.errors import AdapterError, PreconditionFailed


def history(*rows: dict[str, Any]) -> list[Revision]:
    return parse_history(json.dumps(list(rows)))


def test_parse_history_reads_helm_json_with_nanoseconds_and_sorts() -> None:
    text = json.dumps(
        [
            {
                "revision": 2,
                "updated": "2026-11-27T09:02:03.123456789+01:00",
                "status": "deployed",
                "chart": "app-0.2.0",
                "app_version": "v1.1.0",
                "description": "Upgrade complete",
            },
            {
                "revision": 1,
                "updated": "2026-11-27T08:00:00Z",
                "status": "superseded",
                "chart": "app-0.1.0",
                "description": "Install complete",
            },
        ]
    )
    revs = parse_history(text)
    assert [r.number for r in revs] == [1, 2]
    assert revs[0].app_version == ""  # chart without appVersion: Helm omits the key
    assert revs[1].updated == datetime(2026, 11, 27, 8, 2, 3, 123456, tzinfo=UTC)
    assert revs[1].label() == "2 (app-0.2.0, v1.1.0)"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Error: release: not found", id="not-json"),
        pytest.param('{"revision": 1}', id="not-a-list"),
        pytest.param('[{"revision": 1, "status": "deployed", "chart": "c"}]', id="no-updated"),
        pytest.param(
            '[{"revision": 1, "updated": "2026-11-27T08:00:00", "status": "deployed",'
            ' "chart": "c"}]',
            id="naive-time",
        ),
    ],
)
def test_parse_history_rejects_output_that_is_not_helm_history(text: str) -> None:
    with pytest.raises(AdapterError):
        parse_history(text)


@pytest.mark.parametrize(
    ("rows", "current", "target"),
    [
        pytest.param(helm_rows("v1.0.0", "v1.1.0"), 2, 1, id="simple-upgrade"),
        pytest.param(
            helm_rows("v1.0.0", "v0.9.0 failed", "v1.1.0"),
            3,
            1,
            id="previous-revision-failed",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.1.0"),
            3,
            1,
            id="previous-revision-same-version-skipped",
        ),
        pytest.param(helm_rows("v1.0.0", "v1.1.0 failed"), 2, 1, id="current-upgrade-failed"),
        pytest.param(
            helm_rows("v1.0.0", "v1.0.0 chart app-0.2.0", "v1.0.0 chart app-0.3.0"),
            3,
            2,
            id="chart-version-differs",
        ),
        pytest.param(
            helm_rows("v0.8.0", "v0.9.0", "v1.0.0", "v1.1.0", first=5),
            8,
            7,
            id="pruned-history-with-good-revision",
        ),
    ],
)
def test_resolve_target_picks_most_recent_earlier_good_revision(
    rows: list[dict[str, Any]], current: int, target: int
) -> None:
    result = resolve_target(history(*rows))
    assert (result.current.number, result.target.number) == (current, target)
    assert not result.already_rolled_back
    assert result.target.number != 0


def test_values_difference_makes_same_chart_a_candidate() -> None:
    revs = helm_history("v1.0.0", "v1.0.0", "v1.0.0")
    values = {1: {"replicas": 3}, 2: {"replicas": 3, "bad": True}, 3: {"replicas": 3, "bad": True}}
    assert resolve_target(revs, values_by_revision=values).target.number == 1
    with pytest.raises(PreconditionFailed, match="no good revision before"):
        resolve_target(revs)  # without values the three revisions look identical


@pytest.mark.parametrize(
    ("rows", "values", "target"),
    [
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 rollback 1"),
            None,
            1,
            id="current-equals-target",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 rollback 1"),
            {1: {"a": 1}, 2: {"a": 2}, 3: {"a": 1}},
            1,
            id="current-equals-target-with-values",
        ),
    ],
)
def test_second_run_after_rollback_is_recognised(
    rows: list[dict[str, Any]], values: dict[int, dict[str, Any]] | None, target: int
) -> None:
    result = resolve_target(history(*rows), values_by_revision=values)
    assert result.already_rolled_back
    assert result.target.number == target
    assert result.current.number == 3


def test_rollback_whose_values_differ_from_its_source_is_not_treated_as_done() -> None:
    revs = helm_history("v1.0.0", "v1.1.0", "v1.0.0 rollback 1")
    result = resolve_target(revs, values_by_revision={1: {"a": 1}, 2: {"a": 2}, 3: {"a": 9}})
    assert not result.already_rolled_back
    assert result.target.number == 1


@pytest.mark.parametrize(
    ("rows", "target", "done"),
    [
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 failed rollback 1"),
            1,
            False,
            id="failed-rollback-retried-not-flipped",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 rollback 1", "v1.1.0 rollback 2"),
            1,
            False,
            id="manual-rollback-0-flipped-back-to-bad",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 rollback 1", "v1.2.0"),
            3,
            False,
            id="new-bad-deploy-after-a-rollback",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0", "v1.0.0 rollback 1", "v1.2.0", "v1.0.0 rollback 1"),
            3,
            True,
            id="manual-rollback-to-same-content-counts-as-done",
        ),
    ],
)
def test_target_is_anchored_on_the_bad_deploy_not_on_rollbacks(
    rows: list[dict[str, Any]], target: int, done: bool
) -> None:
    result = resolve_target(history(*rows))
    assert result.target.number == target
    assert result.already_rolled_back is done
    assert result.current.number == rows[-1]["revision"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param([], "empty", id="no-release"),
        pytest.param(helm_rows("v1.0.0"), "no good revision before", id="only-one"),
        pytest.param(
            helm_rows("v1.0.0 failed", "v1.1.0"),
            "no good revision before",
            id="only-failed-earlier",
        ),
        pytest.param(
            helm_rows("v1.1.0", "v1.1.0", first=9),
            "pruned",
            id="pruned-history-target-gone",
        ),
        pytest.param(
            helm_rows("v1.1.0", "v1.0.0 rollback 11", first=12),
            "no longer kept",
            id="pruned-rollback-source",
        ),
        pytest.param(
            helm_rows("v1.0.0", "v1.1.0 pending-upgrade"),
            "another Helm operation",
            id="operation-in-progress",
        ),
    ],
)
def test_resolve_target_refuses_when_no_safe_target(
    rows: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(PreconditionFailed, match=message):
        resolve_target(history(*rows))


def test_helm4_rollback_revision_field_wins_over_a_custom_description() -> None:
    rows = helm_rows("v1.0.0", "v1.1.0", "v1.0.0")
    rows[-1] |= {"description": "incident 42", "rollback_revision": 1}
    revs = history(*rows)
    assert revs[-1].rolled_back_to == 1
    result = resolve_target(revs)
    assert result.already_rolled_back
    assert result.target.number == 1


def test_values_are_fetched_only_where_they_can_decide() -> None:
    revs = helm_history("v1.0.0", "v1.1.0", "v1.1.0 failed", "v1.1.0", "v1.0.0 rollback 1")
    # bad = 4 (v1.1.0): 2 looks like it; current = 5 (v1.0.0): 1 looks like it; 3 failed.
    assert revisions_needing_values(revs) == [1, 2, 4, 5]
    values = {1: {"t": "a"}, 2: {"t": "b"}, 4: {"t": "b"}, 5: {"t": "a"}}
    result = resolve_target(revs, values_by_revision=values)
    assert (result.target.number, result.already_rolled_back) == (1, True)
    assert revisions_needing_values([]) == []


@pytest.mark.parametrize(
    ("specs", "finish", "message"),
    [
        pytest.param(
            ("v1.0.0", "v1.1.0", "v1.0.0 pending-rollback rollback 1"),
            False,
            "another Helm operation",
            id="without-the-lock-a-pending-rollback-is-someone-elses",
        ),
        pytest.param(
            ("v1.0.0", "v1.1.0", "v1.2.0", "v1.0.0 pending-rollback rollback 1"),
            True,
            "revision 4 is pending-rollback",
            id="a-rollback-to-another-revision-is-not-ours-to-finish",
        ),
        pytest.param(
            ("v1.0.0", "v1.1.0", "v1.2.0 pending-upgrade"),
            True,
            "another Helm operation",
            id="a-deploy-in-flight-is-never-finished-by-a-rollback",
        ),
    ],
)
def test_a_pending_operation_is_refused_unless_it_is_the_same_rollback_cut_off(
    specs: tuple[str, ...], finish: bool, message: str
) -> None:
    with pytest.raises(PreconditionFailed, match=message):
        resolve_target(helm_history(*specs), finish_cut_off=finish)


def test_a_rollback_to_the_target_cut_off_before_deployed_is_finished_under_the_lock() -> None:
    # What `helm history` shows after the helm of `helm rollback app 1` was killed mid-way
    # (Helm 3.22 on the sandbox): the new revision stays pending-rollback; Helm accepts a
    # rollback over it.
    result = resolve_target(
        helm_history("v1.0.0", "v1.1.0", "v1.0.0 pending-rollback rollback 1"),
        finish_cut_off=True,
    )
    assert result.cut_off
    assert not result.already_rolled_back
    assert (result.current.number, result.target.number, result.bad_release.number) == (3, 1, 2)
    # Once finished, the next run finds nothing left to do.
    after = resolve_target(
        helm_history("v1.0.0", "v1.1.0", "v1.0.0 pending-rollback rollback 1", "v1.0.0 rollback 1")
    )
    assert after.already_rolled_back
    assert not after.cut_off
