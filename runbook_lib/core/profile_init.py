"""``runbook profile init``: a first profile for a release, from what its Prometheus holds (pure).

The adapter (``adapters.prometheus_survey.survey``) gathers a ``Survey``: the metric names and
metadata, and for each naming preset whose request counter and latency histogram exist, the
values of its counter's labels, the histogram's buckets, the metrics that carry the release's
labels and the scrape interval. ``propose`` picks the preset whose counter carries the release,
the label that names the release (the convention's own first: Istio's
``destination_canonical_service``, then ``release``, ``app_kubernetes_io_instance``, ``app``,
...), the one that names the namespace, and lists the release's other counters and gauges as
business candidates. ``render`` writes it as annotated YAML: what was found, and what a person
must review (the Deployment, the cluster, the business metrics), in comments.

A proposal is a start, not a verdict: ``runbook profile check`` judges it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import yaml

from runbook_lib.core.promql import PRESETS, selector_from_labels

__all__ = [
    "Candidate",
    "MetricInfo",
    "PresetSeen",
    "Proposal",
    "Survey",
    "candidate_presets",
    "interesting_labels",
    "propose",
    "render",
]

# Labels that name a release, by convention, best first; then any label that carries it.
_RELEASE_LABELS: Mapping[str, tuple[str, ...]] = {
    "istio": (
        "destination_canonical_service",
        "destination_workload",
        "destination_service_name",
        "destination_app",
    ),
    "linkerd": ("deployment", "dst_deployment"),
    "nginx-ingress": ("ingress", "exported_service", "service"),
}
_ANY_RELEASE_LABELS = (
    "release",
    "app_kubernetes_io_instance",
    "helm_release",
    "app_kubernetes_io_name",
    "app",
    "service_name",
    "service",
    "job",
)
_NAMESPACE_LABELS_OF: Mapping[str, tuple[str, ...]] = {
    "istio": ("destination_workload_namespace", "destination_service_namespace"),
}
_NAMESPACE_LABELS = (
    "namespace",
    "destination_workload_namespace",
    "destination_service_namespace",
    "exported_namespace",
    "kubernetes_namespace",
    "k8s_namespace_name",
    "service_namespace",
)
# Matchers a convention needs besides the release's (each counted once, not twice).
_EXTRA_MATCHERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "istio": (("reporter", "destination"),),
    "linkerd": (("direction", "inbound"),),
}
# Labels never worth asking about: no release is named by them.
_NOT_NAMES = frozenset({"__name__", "le", "quantile"})
# Metrics of the process or the scrape, never a business signal; nor are the series
# Prometheus writes for its own alerting rules (they carry the release's labels once an
# alert about it fires).
_RUNTIME = re.compile(
    r"^(process_|go_|python_|promhttp_|scrape_|jvm_|nodejs_|dotnet_"
    r"|up$|target_info$|ALERTS$|ALERTS_FOR_STATE$)"
)
_FAMILY_SUFFIXES = ("_bucket", "_count", "_sum", "_created")
_DEFAULT_WINDOW_S = 60.0


@dataclass(frozen=True)
class MetricInfo:
    """A metric family's metadata as its targets expose it (``/api/v1/metadata``)."""

    type: str = ""
    help: str = ""
    unit: str = ""


@dataclass(frozen=True)
class PresetSeen:
    """What Prometheus holds for one naming preset whose metrics exist.

    ``labels``: label -> values of the preset's request counter; ``buckets``: the histogram's
    finite bounds; ``release_metrics``: (release label, namespace label or "") -> the metric
    names whose series carry the release (and namespace) under those labels;
    ``scrape_interval_s``: the counter's targets' (None: unknown).
    """

    name: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    buckets: tuple[float, ...] = ()
    release_metrics: Mapping[tuple[str, str], tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    scrape_interval_s: float | None = None


@dataclass(frozen=True)
class Survey:
    url: str
    names: frozenset[str] = frozenset()
    metadata: Mapping[str, MetricInfo] = field(default_factory=lambda: MappingProxyType({}))
    presets: tuple[PresetSeen, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """A business metric a person may keep: its name, query, type and help text."""

    name: str
    query: str
    type: str
    help: str


@dataclass(frozen=True)
class Proposal:
    """A profile to review. ``preset`` is None when no convention carries the release."""

    release: str
    namespace: str
    url: str
    preset: str | None = None
    selector: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    rate_window: str = "1m"
    business: tuple[Candidate, ...] = ()
    found: tuple[str, ...] = ()  # what was seen, for the header
    review: tuple[str, ...] = ()  # what a person must look at

    @property
    def complete(self) -> bool:
        return self.preset is not None


def candidate_presets(names: Iterable[str]) -> tuple[str, ...]:
    """The presets whose request counter and latency histogram both exist, in PRESETS order."""
    known = frozenset(names)
    return tuple(
        name
        for name, preset in PRESETS.items()
        if preset.request_counter in known and f"{preset.latency_histogram}_bucket" in known
    )


def interesting_labels(label_names: Iterable[str], *, preset_name: str) -> tuple[str, ...]:
    """The counter's labels whose values may name a release or namespace (not ``le``, ...),
    plus the labels the preset needs matched."""
    extra = {label for label, _ in _EXTRA_MATCHERS.get(preset_name, ())}
    return tuple(sorted({n for n in label_names if n not in _NOT_NAMES} | extra))


def _ranked(labels: Iterable[str], preferred: tuple[str, ...]) -> list[str]:
    order: dict[str, int] = {}
    for index, name in enumerate(preferred):
        order.setdefault(name, index)
    return sorted(labels, key=lambda name: (order.get(name, len(order)), name))


def _release_labels(seen: PresetSeen, release: str) -> list[str]:
    carrying = [label for label, values in seen.labels.items() if release in values]
    return _ranked(carrying, (*_RELEASE_LABELS.get(seen.name, ()), *_ANY_RELEASE_LABELS))


def propose(survey: Survey, *, release: str, namespace: str) -> Proposal:
    """The profile ``survey`` suggests for ``release`` (in ``namespace``, when given)."""
    present = [s.name for s in survey.presets]
    chosen = next((s for s in survey.presets if _release_labels(s, release)), None)
    if chosen is None:
        return _unrecognised(survey, release, namespace, present)
    preset = PRESETS[chosen.name]
    labels = _release_labels(chosen, release)
    release_label = labels[0]
    found = [
        f"naming: {chosen.name} ({preset.request_counter}, {preset.latency_histogram} in "
        f"{'milliseconds' if preset.latency_unit == 'ms' else 'seconds'})",
        f"the release: {release_label}={release}"
        + (f" (also in {', '.join(labels[1:])})" if labels[1:] else ""),
    ]
    others = [name for name in present if name != chosen.name]
    if others:
        found.append(f"other conventions present in this Prometheus: {', '.join(others)}")
    review = []
    selector = {release_label: release}
    namespace_label = ""
    if namespace:
        carrying = [
            label
            for label, values in chosen.labels.items()
            if namespace in values and label != release_label
        ]
        if carrying:
            preferred = (*_NAMESPACE_LABELS_OF.get(chosen.name, ()), *_NAMESPACE_LABELS)
            namespace_label = _ranked(carrying, preferred)[0]
            selector[namespace_label] = namespace
            found.append(f"the namespace: {namespace_label}={namespace}")
        else:
            review.append(
                f"no label of {preset.request_counter} carries the namespace {namespace!r}: "
                "the selector matches the release in every namespace"
            )
    for label, value in _EXTRA_MATCHERS.get(chosen.name, ()):
        if value in chosen.labels.get(label, ()):
            selector[label] = value
    review.extend(_unit_review(chosen))
    window_s = _DEFAULT_WINDOW_S
    if chosen.scrape_interval_s:
        window_s = max(window_s, 60.0 * math.ceil(4 * chosen.scrape_interval_s / 60.0))
        found.append(f"scrape interval: {chosen.scrape_interval_s:g}s")
    window = f"{int(window_s // 60)}m"
    business = _business(
        survey, chosen, (release_label, namespace_label), release, namespace, window
    )
    return Proposal(
        release=release,
        namespace=namespace,
        url=survey.url,
        preset=chosen.name,
        selector=MappingProxyType(selector),
        rate_window=window,
        business=business,
        found=tuple(found),
        review=tuple(review),
    )


def _unrecognised(survey: Survey, release: str, namespace: str, present: list[str]) -> Proposal:
    if present:
        why = (
            f"the metrics of {', '.join(present)} exist, but no series of their request "
            f"counters carries {release!r} in any label"
        )
    else:
        known = ", ".join(f"{p.request_counter} + {p.latency_histogram}" for p in PRESETS.values())
        why = f"none of the conventions' metrics exist ({known})"
    return Proposal(
        release=release,
        namespace=namespace,
        url=survey.url,
        found=(f"no convention recognised: {why}",),
        review=(
            "give error_ratio_query (a ratio 0..1) and latency_p99_query (seconds) as raw "
            "PromQL, or the building blocks (request_counter, status_label, error_regex, "
            "latency_histogram, latency_unit)",
        ),
    )


def _unit_review(seen: PresetSeen) -> list[str]:
    preset = PRESETS[seen.name]
    if not seen.buckets:
        return []
    top = max(seen.buckets)
    if preset.latency_unit == "s" and top >= 1000:
        return [
            f"{preset.latency_histogram}'s buckets reach {top:g}: they look like milliseconds "
            "although its name says seconds; check what the service measures"
        ]
    if preset.latency_unit == "ms" and top <= 10:
        return [
            f"{preset.latency_histogram}'s buckets end at {top:g}: they look like seconds "
            "although the convention counts milliseconds; check what the service measures"
        ]
    return []


def _family(name: str, metadata: Mapping[str, MetricInfo]) -> tuple[str, str]:
    """The metric's family and type: ``x_bucket`` of histogram ``x`` is ``(x, histogram)``."""
    if name in metadata:
        return name, metadata[name].type
    for suffix in ("_total", *_FAMILY_SUFFIXES):  # OpenMetrics names the family without them
        base = name.removesuffix(suffix)
        if base != name and base in metadata:
            return base, metadata[base].type
    return name, "counter" if name.endswith("_total") else "unknown"


def _business(
    survey: Survey,
    seen: PresetSeen,
    chosen: tuple[str, str],
    release: str,
    namespace: str,
    window: str,
) -> tuple[Candidate, ...]:
    """The release's counters and gauges, each selected by the labels that carry the release
    on it (the chosen ones first: a mesh's labels are on its own metrics only)."""
    preset = PRESETS[seen.name]
    own = {
        preset.request_counter,
        *(f"{preset.latency_histogram}{s}" for s in ("", *_FAMILY_SUFFIXES)),
    }
    keys = sorted(seen.release_metrics, key=lambda key: (key != chosen, not key[1], key))
    found: dict[str, Candidate] = {}
    for release_label, namespace_label in keys:
        labels = {
            release_label: release,
            **({namespace_label: namespace} if namespace_label else {}),
        }
        matchers = selector_from_labels(labels)
        for metric in seen.release_metrics[(release_label, namespace_label)]:
            if metric in own or metric in found or _RUNTIME.match(metric) or ":" in metric:
                continue  # the preset's own, the process's, and recording rules' results
            family, kind = _family(metric, survey.metadata)
            if kind == "counter":
                query = f"sum(rate({metric}{{{matchers}}}[{window}]))"
            elif kind in ("gauge", "unknown") and not metric.endswith(_FAMILY_SUFFIXES):
                query = f"sum({metric}{{{matchers}}})"
            else:
                continue  # histograms and summaries: a latency, not a count of business
            name = re.sub(r"[^a-zA-Z0-9_]", "_", metric.removesuffix("_total"))
            info = survey.metadata.get(family, MetricInfo())
            found[metric] = Candidate(name, query, kind, " ".join(info.help.split()))
    return tuple(found.values())


# --- the YAML a person reviews --------------------------------------------------------------


def _scalar(value: str) -> str:
    text = yaml.safe_dump(value, width=10_000, allow_unicode=True)
    return text.removesuffix("\n...\n").removesuffix("\n")


def _comment(text: str, width: int = 96) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return lines


def render(proposal: Proposal, *, command: str, at: str) -> str:
    """The proposal as a profile file: settings by the profile's keys, findings as comments.

    ``command`` is how it was made (shown), ``at`` when (ISO 8601).
    """
    p = proposal
    out = [
        f"# Service profile for release {p.release}, proposed by `{command}`",
        f"# from {p.url} at {at}.",
        "# A person must review it: every line marked REVIEW, and whether the queries say what",
        "# the service means by an error and by its latency. Then check it against Prometheus:",
        f"#   runbook profile check FILE --prometheus-url {p.url}",
        "#",
        "# Found:",
        *(line for item in p.found for line in _comment(f"- {item}")),
    ]
    if p.review:
        out += ["#", "# REVIEW:", *(line for item in p.review for line in _comment(f"- {item}"))]
    out += [
        "",
        "# What to roll back, and where (the run refuses any other cluster).",
        f"release: {_scalar(p.release)}",
    ]
    if p.namespace:
        out.append(f"namespace: {_scalar(p.namespace)}")
    else:
        out.append("# namespace: default  # REVIEW: the release's namespace (not given)")
    out += [
        "# REVIEW: the Deployment the release runs (default: app) and the cluster to act on:",
        f"# deployment: {_scalar(p.release)}",
        "# expected_cluster: KUBE-CONTEXT-OR-API-SERVER-URL",
        "",
        "# Where the series are.",
        f"prometheus_url: {_scalar(p.url)}  # REVIEW: the address the runbook will use",
    ]
    if p.preset is None:
        out += [
            "# REVIEW: no naming convention was recognised; give the queries, e.g.:",
            "# error_ratio_query: sum(rate(ERRORS[1m])) / sum(rate(REQUESTS[1m]))",
            "# latency_p99_query: histogram_quantile(0.99, sum by (le) (rate(H_bucket[1m])))",
        ]
    else:
        preset = PRESETS[p.preset]
        unit = "ms: the query divides by 1000" if preset.latency_unit == "ms" else "seconds"
        out += [
            f"metrics_preset: {p.preset}  # {preset.request_counter}, histogram in {unit}",
            f"prometheus_selector: {_scalar(selector_from_labels(p.selector))}",
            f"prometheus_rate_window: {p.rate_window}  # at least four scrape intervals",
        ]
    out.append("")
    if p.business:
        out += [
            "# Business metrics: what this release exposes besides its requests. Keep those whose",
            "# drop means lost business (uncomment business_queries and their lines), drop the",
            "# rest. REVIEW: a counter's rate, or a gauge as it is.",
            "# business_queries:",
        ]
        for candidate in p.business:
            about = f"  # {candidate.type}" + (f": {candidate.help}" if candidate.help else "")
            out.append(f"#   {candidate.name}: {_scalar(candidate.query)}{about}")
    else:
        out.append("# Business metrics: none found under the release's labels (business_queries).")
    return "\n".join(out) + "\n"
