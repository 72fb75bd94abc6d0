"""Evidence plots: what a reader of the post-mortem sees is drawn where it belongs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.dates as mdates
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from runbook_lib.adapters.replay import read_replay_csv
from runbook_lib.core.settings import RecoveryCheck, Rules
from runbook_lib.display.plots import Moments, plot_business, plot_error_and_latency

REPO = Path(__file__).resolve().parents[2]
DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
MOMENTS = Moments(
    deployed_at=DEPLOY,
    decided_at=DEPLOY + timedelta(seconds=285),
    rollback_at=DEPLOY + timedelta(seconds=420),
    recovered_at=DEPLOY + timedelta(seconds=600),
)


@pytest.fixture(scope="module")
def samples() -> pd.DataFrame:
    return read_replay_csv(REPO / "notebooks" / "data" / "bad_deploy.csv")


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def legend_labels(figure: Figure, panel: int) -> list[str]:
    legend = figure.axes[panel].get_legend()
    return [text.get_text() for text in legend.get_texts()]


def test_error_and_latency_panels_show_thresholds_and_moments(samples: pd.DataFrame) -> None:
    figure = plot_error_and_latency(
        samples, moments=MOMENTS, rules=Rules(error_ratio=0.02, latency_p99=0.8)
    )
    error_axes, latency_axes = figure.axes
    assert error_axes.get_ylabel() == "5xx ratio (%)"
    assert latency_axes.get_ylabel() == "p99 latency (s)"
    horizontal = {round(line.get_ydata()[0], 6) for line in error_axes.lines[1:3]}
    assert horizontal == {2.0, 0.1}  # rollback threshold 2%, recovery threshold 0.1%
    assert latency_axes.lines[1].get_ydata()[0] == 0.8
    assert legend_labels(figure, 0) == [
        "5xx ratio",
        "rollback threshold (2 %)",
        "recovered below (0.1 %)",
        "before deploy",
        "new release live",
        "after rollback",
        "end of decision window",
        "deploy 14:00:00",
        "decision 14:04:45",
        "rollback 14:07:00",
        "recovered 14:10:00",
    ]
    assert legend_labels(figure, 1) == ["p99 latency", "rollback threshold (800 ms)"]
    marks = [line.get_xdata()[0] for line in error_axes.lines[3:]]
    expected = [
        DEPLOY + timedelta(minutes=30),
        *(
            m
            for m in (
                MOMENTS.deployed_at,
                MOMENTS.decided_at,
                MOMENTS.rollback_at,
                MOMENTS.recovered_at,
            )
        ),
    ]
    assert marks == pytest.approx([mdates.date2num(m.replace(tzinfo=None)) for m in expected])
    assert png(figure).startswith(b"\x89PNG")


def test_without_a_rollback_nothing_is_shaded_as_after(samples: pd.DataFrame) -> None:
    figure = plot_error_and_latency(samples, moments=Moments(deployed_at=DEPLOY))
    labels = legend_labels(figure, 0)
    assert "after rollback" not in labels
    assert "recovered below (0.1 %)" not in labels
    assert "deploy 14:00:00" in labels
    assert "2026-11-20 14:00 UTC" in figure.get_suptitle()


def test_moments_outside_the_samples_are_named_but_not_drawn(samples: pd.DataFrame) -> None:
    # A plot cut off before recovery (and starting after the deploy): the legend still names
    # both moments and says where they lie; no line or shading claims a place on the plot.
    index = pd.DatetimeIndex(samples.index)
    cut = samples[
        (index >= pd.Timestamp(DEPLOY + timedelta(seconds=60)))
        & (index <= pd.Timestamp(MOMENTS.recovered_at - timedelta(seconds=60)))
    ]
    figure = plot_error_and_latency(cut, moments=MOMENTS)
    labels = legend_labels(figure, 0)
    assert "deploy 14:00:00 (before the plotted span)" in labels
    assert "recovered 14:10:00 (after the plotted span)" in labels
    assert "before deploy" not in labels
    assert "decision 14:04:45" in labels  # inside the span: drawn as usual
    error_axes = figure.axes[0]
    low, high = error_axes.get_xlim()
    drawn = [line.get_xdata()[0] for line in error_axes.lines[3:] if len(line.get_xdata())]
    assert drawn
    assert all(low <= x <= high for x in drawn)


def test_business_panel_per_metric_with_its_rollback_line(samples: pd.DataFrame) -> None:
    figure = plot_business(samples, moments=MOMENTS)
    assert [axes.get_ylabel() for axes in figure.axes] == ["orders", "logins"]
    orders_limit = figure.axes[0].lines[2].get_ydata()[0]
    before = samples[(samples.index >= DEPLOY - timedelta(minutes=30)) & (samples.index < DEPLOY)]
    assert orders_limit == pytest.approx(0.9 * before["business:orders"].mean())
    assert legend_labels(figure, 0)[1:3] == [
        "mean over 5 min",
        "rollback below 108 (10 % under baseline)",
    ]
    assert png(figure).startswith(b"\x89PNG")


def test_thresholds_read_with_units_and_three_digits_never_as_raw_floats(
    samples: pd.DataFrame,
) -> None:
    # Thresholds computed or read from a profile carry a float's noise; a legend shows what a
    # person reads in the record: three significant digits and a unit.
    rules = Rules(
        error_ratio=0.0579452541770352,
        latency_p99=1.9959000000000011,
        business_smoothing=90.0,
        business_drop=0.125,
    )
    recovery = RecoveryCheck(recovery_error_ratio=0.00123456)
    figure = plot_error_and_latency(samples, moments=MOMENTS, rules=rules, recovery=recovery)
    assert legend_labels(figure, 0)[1:3] == [
        "rollback threshold (5.79 %)",
        "recovered below (0.123 %)",
    ]
    assert legend_labels(figure, 1)[1] == "rollback threshold (2.00 s)"
    business = plot_business(samples, moments=MOMENTS, rules=rules)
    mean, limit = legend_labels(business, 0)[1:3]
    assert mean == "mean over 1 min 30 s"
    assert limit == "rollback below 105 (12.5 % under baseline)"  # 104.7..., to 3 digits


def test_business_plot_without_business_metrics_says_so(samples: pd.DataFrame) -> None:
    figure = plot_business(samples[["error_ratio", "p99_latency_s"]], moments=MOMENTS)
    assert [t.get_text() for t in figure.axes[0].texts] == ["no business metrics in these samples"]
    assert png(figure).startswith(b"\x89PNG")


def test_time_labels_stay_distinct_on_a_two_minute_span() -> None:
    # The demo and the sandbox tests shorten the windows to seconds; every tick label used
    # to read "11:40", leaving a reader no way to tell the moments apart.
    start = datetime(2026, 11, 27, 11, 40, tzinfo=UTC)
    index = pd.date_range(start, periods=60, freq="2s", tz=UTC)
    frame = pd.DataFrame({"error_ratio": 0.05, "p99_latency_s": 1.5}, index=index)
    moments = Moments(deployed_at=start + timedelta(seconds=10))
    figure = plot_error_and_latency(frame, rules=Rules(), moments=moments)
    png(figure)  # draw, so the tick labels are computed
    labels = [t.get_text() for t in figure.axes[-1].get_xticklabels() if t.get_text()]
    assert len(labels) >= 3
    assert len(set(labels)) == len(labels), labels
