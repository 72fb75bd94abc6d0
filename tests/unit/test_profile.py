"""The service profile: the settings model written down as YAML, read by every entry point.

A profile's keys are the parameters' names; each problem names its key and line, all at once;
what is given on the command line overrides the profile; ``runbook evaluate``, ``runbook
rules``, ``runbook run`` and the receiver's policy all take it, and judge the same series.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from runbook_lib.adapters.settings_files import load_settings, read_profile
from runbook_lib.cli.main import main
from runbook_lib.core.alert_policy import Policy, plan_run, rollback_command
from runbook_lib.core.kinds import Entry
from runbook_lib.core.profile import parse_profile
from runbook_lib.core.promql import build_queries
from runbook_lib.core.settings import from_flat
from runbook_lib.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "profiles").glob("*.yaml"))
HEALTHY = REPO / "notebooks" / "data" / "healthy_deploy.csv"
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"


def _write(tmp_path: Path, text: str, name: str = "svc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_example_profiles_are_valid_for_every_entry_point(path: Path) -> None:
    profile = read_profile(path)
    assert profile.problems == ()
    for entry in Entry:
        given = {"deployed_at": DEPLOYED_AT} if entry in (Entry.ASSESS, Entry.EVALUATE) else {}
        settings = from_flat(given, used_by=entry, profile=profile)
        assert settings.target.release == profile.values["release"] or entry not in (
            Entry.ROLLBACK,
            Entry.RULES,
        )


def test_a_profile_sets_what_is_not_given_and_the_command_line_wins() -> None:
    profile = parse_profile(
        "release: shop\nsustain: 3m\nerror_ratio: 2%\nprometheus_url: http://prom:9090\n",
        source="shop.yaml",
    )
    settings = from_flat(
        {"expected_cluster": "prod", "sustain": "90s"}, used_by=Entry.ROLLBACK, profile=profile
    )
    assert settings.rules.sustain == 90.0  # given
    assert settings.rules.error_ratio == 0.02  # the profile's
    assert settings.target.release == "shop"
    assert settings.sources.prometheus_url == "http://prom:9090"
    assert settings.rules.window == 1800.0  # nobody's: the default


def test_every_problem_is_named_by_key_and_line_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "release: shop\n"  # 1
        "sustian: 3m\n"  # 2 a typo
        "sustain: 90\n"  # 3 no unit
        "incident_id: INC-1\n"  # 4 one run's, not the service's
        "metrics_preset: datadog\n"  # 5 no such preset
        "release: shop-2\n"  # 6 twice
        "latency_histogram: rpc_latency_milliseconds\n"  # 7 read as seconds
        "business_queries:\n"  # 8
        "  orders: ''\n"
        "capture_per_pod: 4MiB\n"  # 10
        "capture_total: 1MiB\n",  # 11 smaller than per pod
    )
    with pytest.raises(ParameterError) as caught:
        load_settings({"profile": str(path), "expected_cluster": "x"}, used_by=Entry.ROLLBACK)
    problems = caught.value.problems
    where = f"({path}, line"
    expected = {
        "sustian": f"not a setting {where} 2); did you mean sustain?",
        # YAML reads 90 as a number: a number is never taken as seconds either.
        "sustain": f"90 has no unit; write e.g. 90s or 2m (units: ms, s, sec, m, min, h, d) "
        f"{where} 3)",
        "incident_id": "describes one run, not the service",
        "metrics_preset": f"{where} 5)",
        "release": f"given twice ({path}, lines 1 and 6)",
        "latency_histogram / latency_unit": "reads milliseconds but the unit is seconds (preset "
        f"prometheus-client); a unit is never guessed: set latency_unit {where} 7)",
        "business_queries": f"orders: empty {where} 8)",
        "capture_total": f"at least capture_per_pod (4194304 B), got 1048576 B {where} 11)",
    }
    assert {p.split(":")[0] for p in problems} >= set(expected) | {"prometheus_url / replay_csv"}
    for name, text in expected.items():
        assert any(p.startswith(f"{name}: ") and text in p for p in problems), (name, problems)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("release: shop\nsustain: [2m\n", "line 3", id="unclosed-list"),
        pytest.param("- release: shop\n", "expected setting names and their values", id="a-list"),
        pytest.param("release: shop\n  namespace: prod\n", "line 2", id="bad-indent"),
    ],
)
def test_a_file_that_is_no_profile_says_where(tmp_path: Path, text: str, problem: str) -> None:
    profile = read_profile(_write(tmp_path, text))
    (found,) = profile.problems
    assert found.startswith("profile: ")
    assert problem in found


def test_a_missing_profile_is_a_parameter_problem(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"profile: cannot read .*nowhere\.yaml"):
        load_settings({"profile": str(tmp_path / "nowhere.yaml")}, used_by=Entry.RULES)


def test_a_millisecond_histogram_in_a_profile_is_divided_never_read_as_seconds() -> None:
    profile = parse_profile(
        "latency_histogram: checkout_latency\nlatency_unit: ms\n", source="checkout.yaml"
    )
    settings = from_flat({}, used_by=Entry.RULES, profile=profile)
    assert build_queries(settings.metrics)["p99_latency_s"] == (
        "histogram_quantile(0.99, sum by (le) (rate(checkout_latency_bucket[1m]))) / 1000"
    )


# --- the entry points ------------------------------------------------------------------------


def _evaluate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    base = ["evaluate", "--replay-csv", str(HEALTHY), "--deployed-at", DEPLOYED_AT, "--json"]
    assert main([*base, *args]) == 0
    document: dict[str, object] = json.loads(capsys.readouterr().out)
    return document


def test_evaluate_reads_the_profile_and_its_options_override_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The healthy replay has one 45 s burst above 1%: a profile's 30 s sustain fires on it.
    profile = _write(tmp_path, "sustain: 30s\nbusiness_drop: 50%\n")
    assert _evaluate(capsys)["verdict"] == "no_rollback"
    assert _evaluate(capsys, "--profile", str(profile))["verdict"] == "rollback"
    assert _evaluate(capsys, "--profile", str(profile), "--sustain", "2m")["verdict"] == (
        "no_rollback"
    )


def test_evaluate_names_a_profiles_problems_by_key_and_its_options_by_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _write(tmp_path, "release: shop\nsustain: 90\n")
    args = ["evaluate", "--replay-csv", str(HEALTHY), "--profile", str(profile)]
    assert main([*args, "--window", "30"]) == 2
    err = capsys.readouterr().err
    units = "(units: ms, s, sec, m, min, h, d)"
    assert f"- sustain: 90 has no unit; write e.g. 90s or 2m {units} ({profile}, line 2)" in err
    assert "- --window: '30' has no unit" in err
    assert "- --deployed-at: required" in err


def test_rules_are_built_from_the_profiles_queries_and_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = EXAMPLES[[p.stem for p in EXAMPLES].index("shop")]
    out = tmp_path / "rules.yml"
    assert main(["rules", "--profile", str(profile), "--sustain", "4m", "-o", str(out)]) == 0
    capsys.readouterr()
    (group,) = yaml.safe_load(out.read_text())["groups"]
    settings = load_settings({"profile": str(profile)}, used_by=Entry.RULES)
    recorded = [r["expr"] for r in group["rules"] if "record" in r]
    assert recorded == list(build_queries(settings.metrics).values())
    assert recorded[1].endswith("/ 1000")  # Istio's histogram counts milliseconds
    alerts = {r["alert"]: r for r in group["rules"] if "alert" in r}
    assert alerts["RunbookErrorRatioHigh"]["expr"] == (
        'runbook:error_ratio{release="shop",namespace="prod"} > 0.02'
    )
    assert alerts["RunbookErrorRatioHigh"]["for"] == "4m15s"  # the command line's sustain
    assert group["name"] == "runbook-rollback-prod-shop"


def test_runbook_run_refuses_a_bad_profile_with_exit_2_before_the_kernel(tmp_path: Path) -> None:
    profile = _write(tmp_path, "release: shop\nsustain: 90\nconfirm: true\n")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())",
         "run", "rollback", "-p", "profile", str(profile), "-p", "expected_cluster", "x",
         "--output-dir", str(tmp_path / "evidence"), "--quiet"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "- sustain: 90 has no unit" in result.stderr
    assert f"({profile}, line 2)" in result.stderr
    per_run = "describes one run, not the service: give it with the run, not in a profile"
    assert f"- confirm: {per_run} ({profile}, line 3)" in result.stderr
    assert not (tmp_path / "evidence").exists()


def test_a_release_in_the_policy_names_its_profile_for_its_runs() -> None:
    policy = Policy.from_mapping(
        yaml.safe_load(
            """
parameters: {expected_cluster: prod-eu-1}
releases:
  - {release: shop, namespace: prod, auto_rollback: true, profile: /etc/runbook/shop.yaml,
     parameters: {sustain: 4m}}
  - {release: "*", namespace: "*", auto_rollback: false}
"""
        )
    )
    now = datetime(2026, 12, 1, tzinfo=UTC)
    plan = plan_run(policy, "shop", "prod", auto_rollbacks=[], now=now)
    assert plan.parameters["profile"] == "/etc/runbook/shop.yaml"
    assert plan.parameters["sustain"] == "4m"  # the policy's parameters override the profile
    assert "-p profile /etc/runbook/shop.yaml" in rollback_command(plan.parameters)
    other = plan_run(policy, "ledger", "payments", auto_rollbacks=[], now=now)
    assert "profile" not in other.parameters


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        pytest.param(
            {"releases": [{"release": "a", "profile": ["x.yaml"]}]},
            "policy.releases[0].profile: expected the path of a service profile",
            id="not-a-path",
        ),
        pytest.param(
            {"releases": [{"release": "a", "parameters": {"profile": "x.yaml"}}]},
            "policy.releases[0].parameters.profile: a release's profile goes in its entry",
            id="in-parameters",
        ),
        pytest.param(
            {"parameters": {"profile": "x.yaml"}},
            "policy.parameters.profile: a release's profile goes in its entry",
            id="for-every-release",
        ),
    ],
)
def test_the_policy_refuses_a_profile_anywhere_else(policy: object, problem: str) -> None:
    with pytest.raises(ParameterError) as caught:
        Policy.from_mapping(policy)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
