"""A secret in a metric's name or a plot title is not drawn into the evidence plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from runbook_lib.display.plots import Moments, plot_business, plot_error_and_latency

DEPLOY = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
TOKEN = "xoxb-1234567890-1234567890123-PLANTEDplotLabel0"


def _samples() -> pd.DataFrame:
    index = pd.date_range(DEPLOY - timedelta(minutes=40), periods=60, freq="1min", tz=UTC)
    return pd.DataFrame(
        {"error_ratio": 0.001, "p99_latency_s": 0.2, f"business:orders_{TOKEN}": 100.0},
        index=index,
    )


def _texts(figure: object) -> str:
    parts = [figure._suptitle.get_text()]  # type: ignore[attr-defined]
    for axes in figure.axes:  # type: ignore[attr-defined]
        parts += [axes.get_ylabel(), axes.get_title()]
        legend = axes.get_legend()
        if legend is not None:
            parts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(parts)


def test_metric_names_and_titles_are_redacted() -> None:
    moments = Moments(deployed_at=DEPLOY)
    business = plot_business(_samples(), moments=moments, title=f"orders via {TOKEN}")
    latency = plot_error_and_latency(_samples(), moments=moments, title=f"api {TOKEN}")
    for figure in (business, latency):
        text = _texts(figure)
        assert "PLANTED" not in text
    assert business.axes[0].get_ylabel() == "orders_[REDACTED]"
