"""What a Prometheus holds for a profile's queries, and for one release (``runbook profile``).

``observe`` runs each probe of ``core.profile_check`` over a window and asks, for every series
its query reads: does the metric exist, how many series does the selector match, how often is
its target scraped (``/api/v1/targets``, else the spacing of its samples). ``survey`` gathers
what ``core.profile_init`` needs to propose a profile for a release: the metric names and
metadata, and for each naming preset whose metrics exist, the labels of its request counter
that carry the release or namespace, the histogram's buckets, the metrics the release exposes
and the scrape interval. Decisions are core's; this module only asks.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from runbook_lib.adapters.prometheus_api import PrometheusApi, QueryRejected
from runbook_lib.core.profile_check import Observed, Probe, SelectorSeen
from runbook_lib.core.profile_init import (
    MetricInfo,
    PresetSeen,
    Survey,
    candidate_presets,
    interesting_labels,
)
from runbook_lib.core.promql import PRESETS
from runbook_lib.core.promql_selectors import Selector, promql_duration_s

__all__ = ["observe", "survey"]

_LABEL_IN_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


def _label_matchers(labels: Mapping[str, str]) -> str:
    escaped = (
        f'{name}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in sorted(labels.items())
    )
    return "{" + ",".join(escaped) + "}"


class _Intervals:
    """Scrape intervals by target (job, instance), read once; sample spacing as fallback."""

    def __init__(self, api: PrometheusApi, *, end_s: float, window_s: float) -> None:
        self.api, self.end_s, self.window_s = api, end_s, window_s
        self.by_target: dict[tuple[str, str], float] = {}
        for target in api.targets():
            labels = target.get("labels") or {}
            seconds = promql_duration_s(str(target.get("scrapeInterval") or ""))
            if seconds:
                self.by_target[(labels.get("job", ""), labels.get("instance", ""))] = seconds

    def of(self, series: Sequence[Mapping[str, str]]) -> float | None:
        """The longest scrape interval among the series' targets."""
        found = [
            self.by_target[key]
            for key in {(s.get("job", ""), s.get("instance", "")) for s in series}
            if key in self.by_target
        ]
        if found:
            return max(found)
        return self._spacing(series[0]) if series else None

    def _spacing(self, labels: Mapping[str, str]) -> float | None:
        # A federated or remote-written series has no target here: its samples tell.
        window = max(int(self.window_s), 60)
        try:
            result = self.api.query(f"{_label_matchers(labels)}[{window}s]", at_s=self.end_s)
        except QueryRejected:
            return None
        stamps = [float(t) for r in result[:1] for t, _ in r.get("values") or []]
        gaps = [b - a for a, b in itertools.pairwise(stamps) if b > a]
        return statistics.median(gaps) if gaps else None


def observe(
    api: PrometheusApi,
    probes: Sequence[Probe],
    *,
    start_s: float,
    end_s: float,
    step_s: float,
) -> tuple[Observed, ...]:
    """Each probe's query over ``[start_s, end_s]`` and what Prometheus holds for its selectors.

    Raises ``MetricsError`` when Prometheus cannot be read; a query or selector it refuses is
    part of the observation.
    """
    names = frozenset(api.label_values("__name__"))
    intervals = _Intervals(api, end_s=end_s, window_s=end_s - start_s)
    seen: dict[Selector, SelectorSeen] = {}
    found = []
    for probe in probes:
        for selector in probe.selectors:
            if selector not in seen:
                seen[selector] = _see(api, selector, names, intervals, start_s, end_s)
        found.append(
            _run(api, probe, start_s, end_s, step_s)
            | {"selectors": tuple(seen[s] for s in probe.selectors)}
        )
    return tuple(Observed(probe=p, **fields) for p, fields in zip(probes, found, strict=True))


def _run(
    api: PrometheusApi, probe: Probe, start_s: float, end_s: float, step_s: float
) -> dict[str, Any]:
    step_ms = round(step_s * 1000)
    first = math.ceil(start_s * 1000 / step_ms) * step_ms
    last = math.floor(end_s * 1000 / step_ms) * step_ms
    steps = (last - first) // step_ms + 1
    try:
        series, _ = api.query_range(probe.query, start_ms=first, end_ms=last, step_ms=step_ms)
    except QueryRejected as err:
        return {"rejected": err.stderr or str(err), "steps": steps}
    values = [math.nan] * steps
    for stamp, text in (series[0].get("values") or []) if series else []:
        slot = (round(float(stamp) * 1000) - first) // step_ms
        if 0 <= slot < steps:
            values[slot] = float(text)
    buckets: tuple[float, ...] = ()
    if probe.histogram:
        bucket_selector = next(
            (s for s in probe.selectors if s.metric == f"{probe.histogram}_bucket"), None
        )
        if bucket_selector is not None:
            buckets = _buckets(api, bucket_selector.text, start_s, end_s)
    return {"series": len(series), "values": tuple(values), "steps": steps, "buckets": buckets}


def _buckets(api: PrometheusApi, match: str, start_s: float, end_s: float) -> tuple[float, ...]:
    try:
        bounds = api.label_values("le", match=match, start_s=start_s, end_s=end_s)
    except QueryRejected:
        return ()
    finite = []
    for bound in bounds:
        try:
            value = float(bound)
        except ValueError:
            continue
        if math.isfinite(value):
            finite.append(value)
    return tuple(sorted(finite))


def _see(
    api: PrometheusApi,
    selector: Selector,
    names: frozenset[str],
    intervals: _Intervals,
    start_s: float,
    end_s: float,
) -> SelectorSeen:
    if selector.metric and selector.metric not in names:
        close = difflib.get_close_matches(selector.metric, sorted(names), n=3, cutoff=0.6)
        return SelectorSeen(selector, exists=False, series=0, similar=tuple(close))
    try:
        series = api.series(selector.text, start_s=start_s, end_s=end_s)
    except QueryRejected:
        return SelectorSeen(selector)
    known: dict[str, tuple[str, ...]] = {}
    if not series and selector.metric:
        for label in dict.fromkeys(_LABEL_IN_MATCHER.findall(selector.matchers)):
            if label != "__name__":
                known[label] = tuple(
                    api.label_values(label, match=selector.metric, start_s=start_s, end_s=end_s)
                )
    return SelectorSeen(
        selector,
        series=len(series),
        scrape_interval_s=intervals.of(series),
        known_values=known,
    )


# --- survey: what `runbook profile init` proposes from ----------------------------------------


def survey(
    api: PrometheusApi, *, release: str, namespace: str, start_s: float, end_s: float
) -> Survey:
    """What Prometheus holds that names ``release`` (and ``namespace``) in ``[start_s, end_s]``.

    Raises ``MetricsError`` when Prometheus cannot be read.
    """
    names = frozenset(api.label_values("__name__"))
    metadata = {
        name: MetricInfo(
            type=str(entries[0].get("type", "")),
            help=str(entries[0].get("help", "")),
            unit=str(entries[0].get("unit", "")),
        )
        for name, entries in api.metadata().items()
        if entries
    }
    intervals = _Intervals(api, end_s=end_s, window_s=end_s - start_s)
    window = {"start_s": start_s, "end_s": end_s}
    seen = []
    for name in candidate_presets(names):
        preset = PRESETS[name]
        counter = preset.request_counter
        labels = {
            label: tuple(api.label_values(label, match=counter, **window))
            for label in interesting_labels(
                api.label_names(match=counter, **window), preset_name=name
            )
        }
        by_release = [label for label, values in labels.items() if release in values]
        by_namespace = [
            label for label, values in labels.items() if namespace and namespace in values
        ]
        release_metrics: dict[tuple[str, str], tuple[str, ...]] = {}
        for label in by_release:
            for other in ("", *by_namespace):
                if other != label:
                    matchers = {label: release, **({other: namespace} if other else {})}
                    release_metrics[(label, other)] = tuple(
                        api.label_values("__name__", match=_label_matchers(matchers), **window)
                    )
        series = (
            api.series(f"{counter}{_label_matchers({by_release[0]: release})}", **window)
            if by_release
            else []
        )
        seen.append(
            PresetSeen(
                name=name,
                labels=labels,
                buckets=_buckets(api, f"{preset.latency_histogram}_bucket", start_s, end_s),
                release_metrics=release_metrics,
                scrape_interval_s=intervals.of(series[:50]),
            )
        )
    return Survey(url=api.url, names=names, metadata=metadata, presets=tuple(seen))
