"""The team harness's pure parts: selectors per namespace, sandboxes per xdist worker, the
game-day report. Its parts that start a process or a server are in
``tests/adapters/test_harness_processes.py``."""

from __future__ import annotations

from pathlib import Path

from runbook_sandbox.gameday import SCENARIOS, Row, markdown
from runbook_sandbox.session_sandbox import worker_environment
from runbook_sandbox.team import Team, _selector_in

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team-shop"


def test_the_profiles_selector_is_narrowed_to_the_tests_namespace() -> None:
    assert _selector_in('release="shop"', "t-1") == 'release="shop",namespace="t-1"'
    assert _selector_in('release="shop",namespace="prod"', "t-1") == (
        'release="shop",namespace="t-1"'
    )
    assert _selector_in("", "t-1") == 'namespace="t-1"'


def test_each_xdist_worker_after_the_first_gets_its_own_sandbox() -> None:
    base = {
        "RUNBOOK_SANDBOX_NAME": "ci",
        "RUNBOOK_SANDBOX_PORT_BASE": "33000",
        "RUNBOOK_SANDBOX_STATE": "/s",
    }
    assert worker_environment(base, "") == {}
    assert worker_environment(base, "gw0") == {}
    assert worker_environment(base, "gw2") == {
        "RUNBOOK_SANDBOX_NAME": "ci-gw2",
        "RUNBOOK_SANDBOX_PORT_BASE": "33200",
        "RUNBOOK_SANDBOX_STATE": "/s/gw2",
    }


def test_the_example_profile_names_its_release_deployment_and_dialect() -> None:
    team = Team(chart=EXAMPLE / "chart", profile=EXAMPLE / "profile.yaml")
    assert (team.release_name, team.deployment, team.dialect) == ("shop", "shop-web", "otel")


def test_the_report_has_a_row_per_scenario_and_says_which_did_not_hold() -> None:
    rows = [
        Row("wrong_cluster_refused", True, "held", "refused", "outcome refused", 41.2, "/ev/A"),
        Row(
            "bad_deploy_rolled_back",
            False,
            "FAILED (call): did not roll back",
            "rolled back",
            "outcome failed | x",
            90.0,
            "/ev/B",
        ),
    ]
    text = markdown(rows, chart=Path("chart"), profile=Path("p.yaml"), total_s=131)
    assert "1 of 2 scenarios held in 131 s" in text
    lines = text.splitlines()
    assert "| wrong_cluster_refused | yes | refused | outcome refused | 41 s | /ev/A |" in lines
    assert (
        "| bad_deploy_rolled_back | **no** | rolled back | FAILED (call): did not roll back; "
        "outcome failed \\| x | 90 s | /ev/B |"
    ) in lines


def test_the_game_day_lists_every_scenario_in_the_order_they_run() -> None:
    # ``runbook gameday --only`` and the report's rows come from SCENARIOS: a scenario
    # missing there would never run.
    from runbook_sandbox import gameday_scenarios

    defined = [
        name.removeprefix("test_") for name in vars(gameday_scenarios) if name.startswith("test_")
    ]
    assert list(SCENARIOS) == defined
