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

from runbook_lib.core.alert_rules import render_rule_file
from runbook_lib.core.promql import PRESETS
from runbook_lib.core.settings import Entry, Settings, from_flat

pytestmark = pytest.mark.prometheus
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


def _rules(**flat: str) -> Settings:
    return from_flat(flat, used_by=Entry.RULES)


_TRAFFIC = {
    "prometheus_selector": 'job="traffic"',
    "prometheus_rate_window": "15s",
    "business_counters": "orders=orders_total",
}


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        _rules(
            release="shop",
            namespace="prod",
            prometheus_selector='job="api",env!~"dev|test"',
            prometheus_rate_window="2m",
            business_counters="orders=orders_total,logins=logins_total",
            step="1s",
        ),
        _rules(
            error_ratio_query="sum(rate(errors_total[1m])) / sum(rate(requests_total[1m]))",
            latency_p99_query="max(p99_latency_ms) / 1000",
            business_queries="{orders_per_minute: sum(orders_per_minute), share: avg(share)}",
        ),
        *(_rules(metrics_preset=preset) for preset in PRESETS),
    ],
    ids=["defaults", "selector-and-business", "raw-queries", *(f"preset-{p}" for p in PRESETS)],
)
def test_promtool_accepts_the_generated_file(
    promtool: str, tmp_path: Path, settings: Settings
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(render_rule_file(settings))
    result = _promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_boundaries(promtool: str, tmp_path: Path) -> None:
    # Exactly 1%, a breach of exactly the sustain, one scrape more, a gap; latency; business
    # drop of exactly 10% and of 50% (cases and their arithmetic: boundaries.test.yml).
    (tmp_path / "rules.yml").write_text(render_rule_file(_rules(**_TRAFFIC)))
    shutil.copy(DATA / "boundaries.test.yml", tmp_path)
    result = _promtool(promtool, "test", "rules", "boundaries.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_would_catch_for_equal_to_the_sustain(promtool: str, tmp_path: Path) -> None:
    # The suite can fail: with Prometheus' for: set to the sustain itself, a breach of exactly
    # 2 minutes fires, and the "exactly the sustain" case says so.
    text = render_rule_file(_rules(**_TRAFFIC)).replace("for: 2m15s", "for: 2m")
    assert "for: 2m\n" in text
    (tmp_path / "rules.yml").write_text(text)
    shutil.copy(DATA / "boundaries.test.yml", tmp_path)
    result = _promtool(promtool, "test", "rules", "boundaries.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "time: 3m" in result.stdout + result.stderr
