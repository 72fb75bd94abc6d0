"""The settings model: parsed once, every problem at once, and back to flat text exactly.

``from_flat`` is how every entry point reads the values people give; ``to_flat`` is what
``runbook run`` hands papermill. A value that goes out as text must come back the same (to the
nanosecond, to the byte), a bad value is named with every other at once, and the groups
refuse values that break their rules whoever builds them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.core.kinds import Entry
from runbook_lib.core.settings import (
    Capture,
    RecoveryCheck,
    Rules,
    Settings,
    Sources,
    default_incident_id,
    from_flat,
    given,
    to_flat,
    with_incident_id,
)
from runbook_lib.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
RUN = {"expected_cluster": "kwok-runbook", "prometheus_url": "http://127.0.0.1:19090"}


# --- to_flat and back -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flat",
    [
        pytest.param(RUN, id="defaults"),
        pytest.param(
            RUN
            | {
                "sustain": "90s",
                "window": "1h",
                "latency_p99": "750ms",
                "error_ratio": "2.5%",
                "business_drop": "0.15",
                "step": "2500ms",
                "recovery_consecutive": "3",
                "request_rate_rps": "12.5",
                "capture_per_pod": "1536KiB",
                "capture_total": "1.5GiB",
                "dry_run": "True",
                "console": False,
                "deployed_at": "2026-11-20T14:00:00.123456789Z",
                "now": "1795184000.5",
            },
            id="units-and-exact-times",
        ),
        pytest.param(
            RUN
            | {
                "metrics_preset": "istio",
                "prometheus_selector": 'destination_workload="shop",reporter="destination"',
                "business_counters": "orders=orders_total,logins=logins_total",
                "business_queries": '{basket: "avg(basket_items)", share: "sum(a) / sum(b)"}',
                "latency_unit": "ms",
            },
            id="metrics",
        ),
        pytest.param(
            {
                "expected_cluster": "prod",
                "replay_csv": "replay.csv",
                "error_ratio_query": "sum(rate(e[1m])) / sum(rate(r[1m]))",
                "latency_p99_query": "max(p99_ms) / 1000",
                "slack_webhook_url": "https://hooks.example/T0/B0/x",
                "migrate_command": "./migrate down {n} --force",
                "incident_id": "INC-1",
            },
            id="raw-queries-and-text",
        ),
    ],
)
def test_to_flat_reads_back_to_the_same_settings(flat: dict[str, Any]) -> None:
    settings = from_flat(flat, used_by=Entry.ROLLBACK)
    text = to_flat(settings)
    assert from_flat(text, used_by=Entry.ROLLBACK) == settings
    # papermill writes the values into the notebook as Python literals: text, numbers, flags.
    assert all(isinstance(v, str | int | float | bool) for v in text.values())
    assert from_flat(to_flat(settings, changed_only=True), used_by=Entry.ROLLBACK) == settings


def test_flat_text_keeps_units_a_person_reads() -> None:
    settings = from_flat(RUN | {"capture_total": "20MiB"}, used_by=Entry.ROLLBACK)
    flat = to_flat(settings)
    assert (flat["sustain"], flat["window"], flat["lock_ttl"]) == ("2m", "30m", "1m")
    assert (flat["error_ratio"], flat["capture_total"], flat["step"]) == ("0.01", "20MiB", "")


def test_times_keep_their_nanoseconds_through_flat_text() -> None:
    settings = from_flat(
        RUN | {"deployed_at": "2026-11-20T14:00:00.123456789Z"}, used_by=Entry.ROLLBACK
    )
    deployed = settings.sources.deployed_at
    assert deployed is not None
    assert deployed.value % 1_000_000_000 == 123_456_789  # type: ignore[attr-defined]
    assert to_flat(settings)["deployed_at"] == "2026-11-20T14:00:00.123456789+00:00"


def test_only_an_entry_points_settings_go_to_its_notebook() -> None:
    assess = {"prometheus_url": RUN["prometheus_url"], "deployed_at": "2026-11-20T14:00:00Z"}
    settings = from_flat(assess, used_by=Entry.ASSESS)
    flat = to_flat(settings, used_by=Entry.ASSESS, changed_only=True)
    assert flat == {
        "prometheus_url": RUN["prometheus_url"],
        "deployed_at": "2026-11-20T14:00:00+00:00",
    }


# --- every problem at once ------------------------------------------------------------------


def test_every_problem_is_named_at_once_across_groups() -> None:
    with pytest.raises(ParameterError) as caught:
        from_flat(
            {
                "colour": "blue",  # unknown
                "sustain": "120",  # no unit
                "error_ratio": "150%",  # out of range
                "release": "Shop_1",  # not a Helm name
                "metrics_preset": "datadog",  # no such preset
                "latency_histogram": "rpc_latency_ms",  # a ms name read as seconds
                "business_queries": "{orders: ''}",  # empty query
                "capture_per_pod": "2MiB",
                "capture_total": "1MiB",  # smaller than per pod
                "deployed_at": "2026-11-20T14:00:00Z",
                "now": "2026-11-20T13:00:00Z",  # before the deploy
                "recovery_consecutive": "0",
            },
            used_by=Entry.ROLLBACK,
        )
    named = [p.split(":")[0] for p in caught.value.problems]
    assert sorted(named) == sorted(
        [
            "colour",
            "sustain",
            "error_ratio",
            "release",
            "metrics_preset",
            "business_queries",
            "recovery_consecutive",
            "expected_cluster",  # required by the rollback
            "prometheus_url / replay_csv",  # no metrics source
            "now",
            "latency_histogram / latency_unit",
            "capture_total",
        ]
    )
    assert len(named) == len(set(named))  # each once


@pytest.mark.parametrize(
    ("entry", "required"),
    [
        (Entry.ROLLBACK, {"expected_cluster", "prometheus_url / replay_csv"}),
        (Entry.ASSESS, {"deployed_at", "prometheus_url / replay_csv"}),
        (Entry.EVALUATE, {"deployed_at", "prometheus_url / replay_csv"}),
        (Entry.RULES, set()),
    ],
    ids=lambda value: str(value) if isinstance(value, Entry) else "",
)
def test_each_entry_point_requires_its_own(entry: Entry, required: set[str]) -> None:
    if not required:
        assert from_flat({}, used_by=entry) == Settings()
        return
    with pytest.raises(ParameterError) as caught:
        from_flat({}, used_by=entry)
    assert {p.split(":")[0] for p in caught.value.problems} == required


def test_a_setting_another_entry_point_takes_is_unknown_here() -> None:
    with pytest.raises(ParameterError, match="expected_cluster: unknown parameter"):
        from_flat({"expected_cluster": "x"}, used_by=Entry.RULES)


def test_groups_refuse_bad_values_whoever_builds_them() -> None:
    with pytest.raises(ParameterError) as caught:
        Rules(
            error_ratio=1.5,
            latency_p99=-1.0,
            business_drop=-0.1,
            business_smoothing=0.0,
            window=float("nan"),
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "error_ratio",
        "latency_p99",
        "window",
        "business_drop",
        "business_smoothing",
    ]
    with pytest.raises(ParameterError, match="recovery_consecutive: must be at least 1"):
        RecoveryCheck(recovery_consecutive=0)
    with pytest.raises(ParameterError, match="step: must be finite"):
        Sources(step=float("nan"))
    with pytest.raises(ParameterError, match="step: at least 1ms, in whole milliseconds"):
        Sources(step=0.0005)
    with pytest.raises(ParameterError, match="capture_total: at least capture_per_pod"):
        Capture(capture_per_pod=4096, capture_total=1024)


@pytest.mark.parametrize(
    ("sustain", "window", "valid"),
    [(1799.0, 1800.0, True), (1800.0, 1800.0, False), (0.0, 1.0, True)],
    ids=["just-shorter", "equal-to-window", "zero-sustain"],
)
def test_sustain_must_be_shorter_than_the_window(
    sustain: float, window: float, valid: bool
) -> None:
    if valid:
        assert Rules(sustain=sustain, window=window).sustain == sustain
    else:
        with pytest.raises(ParameterError, match="could never fire"):
            Rules(sustain=sustain, window=window)


def test_a_bare_number_is_never_read_as_seconds() -> None:
    for value in ("90", 90, 90.0):
        with pytest.raises(ParameterError, match=r"sustain: .* has no unit"):
            from_flat(RUN | {"sustain": value}, used_by=Entry.ROLLBACK)


# --- what a notebook was given; the incident id -----------------------------------------------


def test_a_notebook_value_left_at_its_default_is_not_given() -> None:
    namespace = {
        "sustain": "2m",  # the cell's default: a profile may set it
        "window": "1h",
        "recovery_consecutive": 2,
        "dry_run": True,
        "In": [],  # the kernel's own names are no settings
    }
    assert given(namespace, Entry.ROLLBACK) == {"window": "1h", "dry_run": True}


def test_the_default_incident_id_is_made_in_one_place() -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    settings = from_flat(RUN | {"release": "shop"}, used_by=Entry.ROLLBACK)
    assert default_incident_id("shop", started) == "rollback-shop-20260102T030405Z"
    assert with_incident_id(settings, started).records.incident_id == (
        "rollback-shop-20260102T030405Z"
    )
    named = settings.with_values(incident_id="INC-7")
    assert with_incident_id(named, started).records.incident_id == "INC-7"


def test_the_timeline_never_shows_the_webhook() -> None:
    settings = from_flat(
        RUN | {"slack_webhook_url": "https://hooks.example/T0/B0/s3cr3t"}, used_by=Entry.ROLLBACK
    )
    shown = settings.shown()
    assert shown["slack_webhook_url"] == "[REDACTED]"
    assert "s3cr3t" not in json.dumps(shown)
    assert shown["sustain"] == 120.0


def test_runbook_run_checks_its_parameters_without_loading_the_heavy_libraries(
    tmp_path: Path,
) -> None:
    # The alert that starts a run waits for this: pandas, matplotlib, the Kubernetes client and
    # papermill are for the kernel and after it.
    code = (
        "import sys; from pathlib import Path; from runbook_lib.cli import run; "
        "from runbook_lib.headless.prepare import prepare; "
        f"prepare({RUN | {'output_dir': str(tmp_path)}!r}, Path('rollback.ipynb')); "
        "print(' '.join(m for m in ('pandas', 'matplotlib', 'kubernetes', 'papermill', "
        "'nbformat', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
