"""The generated rules through Prometheus' own tools: ``promtool check rules`` and
``promtool test rules`` with the boundary cases in ``tests/data/alert_rules/``.

promtool ships with Debian's ``prometheus`` package; without it these skip (fail under CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runbook_lib.core.alert_rules import AlertRulesSpec, render_rule_file
from runbook_lib.core.promql import QuerySpec

DATA = Path(__file__).resolve().parents[1] / "data" / "alert_rules"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "no promtool: apt-get install prometheus"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: these tests must run, not skip)")
        pytest.skip(reason)
    return found


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    "spec",
    [
        AlertRulesSpec(),
        AlertRulesSpec(
            release="shop",
            namespace="prod",
            queries=QuerySpec(
                selector='job="api",env!~"dev|test"',
                rate_window="2m",
                business_counters={"orders": "orders_total", "logins": "logins_total"},
            ),
            step=1.0,
        ),
    ],
    ids=["defaults", "selector-and-business"],
)
def test_promtool_accepts_the_generated_file(
    promtool: str, tmp_path: Path, spec: AlertRulesSpec
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rule_file(spec))
    result = _promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_boundaries(promtool: str, tmp_path: Path) -> None:
    # Exactly 1%, a breach of exactly the sustain, one scrape more, a gap; latency; business
    # drop of exactly 10% and of 50% (cases and their arithmetic: boundaries.test.yml).
    spec = AlertRulesSpec(
        queries=QuerySpec(
            selector='job="traffic"',
            rate_window="15s",
            business_counters={"orders": "orders_total"},
        )
    )
    (tmp_path / "rules.yml").write_text(render_rule_file(spec))
    shutil.copy(DATA / "boundaries.test.yml", tmp_path)
    result = _promtool(promtool, "test", "rules", "boundaries.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_would_catch_for_equal_to_the_sustain(promtool: str, tmp_path: Path) -> None:
    # The suite can fail: with Prometheus' for: set to the sustain itself, a breach of exactly
    # 2 minutes fires, and the "exactly the sustain" case says so.
    spec = AlertRulesSpec(
        queries=QuerySpec(
            selector='job="traffic"',
            rate_window="15s",
            business_counters={"orders": "orders_total"},
        )
    )
    text = render_rule_file(spec).replace("for: 2m15s", "for: 2m")
    assert "for: 2m\n" in text
    (tmp_path / "rules.yml").write_text(text)
    shutil.copy(DATA / "boundaries.test.yml", tmp_path)
    result = _promtool(promtool, "test", "rules", "boundaries.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "time: 3m" in result.stdout + result.stderr
