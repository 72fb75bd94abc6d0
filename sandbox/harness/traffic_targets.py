"""What the traffic model serves (targets) and how chosen pods misbehave (overrides).

A *target* is one service under simulated load: a Helm release in a namespace, the label
selector of its serving pods, the metric *dialect* its series are exposed in, and its request
rate. The model always has the sandbox's own target (release ``app`` in ``default``, pods
``app=api``, the ``prometheus`` dialect); more can be added and removed while it runs.

An *override* makes the pods of one target that match it behave as told, whatever their image
tag says. It matches the ``pod-template-hash`` label (what any new Deployment revision
changes, even when only values changed) or the exact image reference; the hash is tried first.
Fields an override leaves out take the default version's values, so ``{"error_ratio": 0.2}``
describes "healthy, except for 20% 5xx".

Targets and overrides are kept in ``<state>/traffic/targets.json`` (``TargetStore``), so a
restarted model serves what it served before. Everything here except the store is pure.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runbook_sandbox.traffic_config import PodView, TrafficConfig, VersionBehaviour

__all__ = [
    "DEFAULT_TARGET",
    "MAX_RATE",
    "DefaultTargetError",
    "Dialect",
    "MatchKind",
    "Override",
    "Target",
    "TargetStore",
    "behaviour_of",
    "forget",
    "parse_override",
    "parse_target",
    "store_path",
    "target_key",
]

log = logging.getLogger("runbook_sandbox.traffic_targets")

MAX_RATE = 2000.0  # req/s per target: the model shares two cores with the whole test suite
_MAX_MIX_PODS = 50
# A Kubernetes namespace is a DNS-1123 label; Helm release names follow the same rule (<= 53).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_EMPTY_MIX: Mapping[str, int] = MappingProxyType({})


class Dialect(StrEnum):
    """The naming convention a target's series follow (``traffic_metrics`` renders each)."""

    PROMETHEUS = "prometheus"  # client-library style: http_requests_total{code}, seconds
    OTEL = "otel"  # OpenTelemetry HTTP semantic conventions, as Prometheus exposes them
    ISTIO = "istio"  # Istio's standard metrics: istio_requests_total, milliseconds


class MatchKind(StrEnum):
    """What of a pod an override matches (in this order of precedence)."""

    POD_TEMPLATE_HASH = "pod_template_hash"
    IMAGE = "image"


class DefaultTargetError(ValueError):
    """The sandbox's own target cannot be removed (change it with a PUT instead)."""


def target_key(namespace: str, release: str) -> str:
    return f"{namespace}/{release}"


@dataclass(frozen=True)
class Target:
    """One service the model sends traffic to.

    ``rate`` is requests per second; ``None`` takes the model's own rate (``--rate`` or
    ``versions.yaml``). ``traced``: its requests become spans when the model has an OTLP
    endpoint (service name = the release). ``mix``: fixed synthetic ready pods
    (version -> count) instead of the cluster's pods, for a model without a cluster.
    """

    release: str
    namespace: str
    selector: str = "app=api"
    dialect: Dialect = Dialect.PROMETHEUS
    rate: float | None = None
    traced: bool = False
    mix: Mapping[str, int] = field(default_factory=lambda: _EMPTY_MIX)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mix", MappingProxyType(dict(self.mix)))

    @property
    def key(self) -> str:
        return target_key(self.namespace, self.release)

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "namespace": self.namespace,
            "selector": self.selector,
            "dialect": str(self.dialect),
            "rate": self.rate,
            "traced": self.traced,
            "mix": dict(self.mix),
        }


DEFAULT_TARGET = Target(release="app", namespace="default", traced=True)


@dataclass(frozen=True)
class Override:
    """Pods of a target matching ``kind == value`` behave as ``behaviour``."""

    kind: MatchKind
    value: str
    behaviour: VersionBehaviour

    def matches(self, pod: PodView) -> bool:
        if self.kind is MatchKind.POD_TEMPLATE_HASH:
            return bool(pod.template_hash) and pod.template_hash == self.value
        return pod.image == self.value

    def to_json(self) -> dict[str, Any]:
        b = self.behaviour
        return {
            "match": {str(self.kind): self.value},
            "error_ratio": b.error_ratio,
            "latency_median_s": b.latency_median_s,
            "latency_p99_s": b.latency_p99_s,
            "orders_factor": b.orders_factor,
        }


def behaviour_of(
    pod: PodView, config: TrafficConfig, overrides: Sequence[Override]
) -> tuple[VersionBehaviour, Override | None]:
    """How ``pod`` answers: the first override matching its template hash, else the first
    matching its image, else its version's behaviour (the default version's when unknown)."""
    for kind in MatchKind:
        for override in overrides:
            if override.kind is kind and override.matches(pod):
                return override.behaviour, override
    return config.behaviour(pod.version), None


# --- requests to the control API: every problem at once --------------------------------


def _name_problems(namespace: str, release: str) -> list[str]:
    found = []
    if len(namespace) > 63 or not _NAME.match(namespace):
        found.append(f"namespace: {namespace!r} is not a Kubernetes namespace name")
    if len(release) > 53 or not _NAME.match(release):
        found.append(f"release: {release!r} is not a Helm release name")
    return found


def _number(body: Mapping[str, Any], name: str, problems: list[str]) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{name}: expected a number, got {value!r}")
        return None
    return float(value)


def parse_target(
    namespace: str, release: str, body: Mapping[str, Any], *, defaults: Target | None = None
) -> Target:
    """The target described by a ``PUT /targets/<namespace>/<release>`` body.

    Fields: ``selector``, ``dialect``, ``rate``, ``traced``, ``mix``; those left out take
    ``defaults``' values (a new target's: ``app=api``, ``prometheus``, the model's rate, not
    traced, the cluster's pods). Raises ``ValueError`` whose args are every problem found.
    """
    base = defaults or Target(release=release, namespace=namespace)
    problems = _name_problems(namespace, release)
    unknown = sorted(set(body) - {"selector", "dialect", "rate", "traced", "mix"})
    if unknown:
        problems.append(f"unknown fields: {unknown}")
    selector = body.get("selector", base.selector)
    if not isinstance(selector, str) or not selector.strip() or len(selector) > 1000:
        problems.append(f"selector: expected a label selector like 'app=api', got {selector!r}")
    elif any(ord(c) < 32 for c in selector):
        problems.append("selector: control characters are not allowed")
    dialect = body.get("dialect", base.dialect)
    if not isinstance(dialect, str) or dialect not in set(Dialect):
        problems.append(f"dialect: {dialect!r} is not one of {[str(d) for d in Dialect]}")
    rate = _number(body, "rate", problems) if "rate" in body else base.rate
    if rate is not None and not 0 < rate <= MAX_RATE:
        problems.append(f"rate: {rate} req/s not in (0, {MAX_RATE:g}]")
    traced = body.get("traced", base.traced)
    if not isinstance(traced, bool):
        problems.append(f"traced: expected true or false, got {traced!r}")
    mix = body.get("mix", base.mix) or {}
    if not isinstance(mix, Mapping) or not all(
        isinstance(v, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for v, n in mix.items()
    ):
        problems.append(f"mix: expected {{version: pod count}}, got {mix!r}")
    elif sum(mix.values()) > _MAX_MIX_PODS:
        problems.append(f"mix: at most {_MAX_MIX_PODS} pods")
    if problems:
        raise ValueError(*problems)
    return Target(
        release=release,
        namespace=namespace,
        selector=str(selector),
        dialect=Dialect(dialect),
        rate=rate,
        traced=bool(traced),
        mix=dict(mix),
    )


def parse_override(body: Mapping[str, Any], config: TrafficConfig) -> Override:
    """The override described by a ``PUT /behaviour/<namespace>/<release>`` body.

    ``{"match": {"pod_template_hash": H} | {"image": I}, "error_ratio", "latency_median_s",
    "latency_p99_s", "orders_factor"}``; left-out fields take the default version's values.
    Raises ``ValueError`` whose args are every problem found.
    """
    problems: list[str] = []
    fields = ("error_ratio", "latency_median_s", "latency_p99_s", "orders_factor")
    unknown = sorted(set(body) - {"match", *fields})
    if unknown:
        problems.append(f"unknown fields: {unknown}")
    match = body.get("match")
    kinds = [str(k) for k in MatchKind]
    kind: MatchKind | None = None
    value = ""
    if not isinstance(match, Mapping) or len(match) != 1:
        problems.append(f"match: expected exactly one of {kinds}, got {match!r}")
    else:
        ((name, raw),) = match.items()
        if name not in kinds:
            problems.append(f"match: {name!r} is not one of {kinds}")
        elif not isinstance(raw, str) or not raw.strip() or len(raw) > 500:
            problems.append(f"match.{name}: expected a non-empty string, got {raw!r}")
        else:
            kind, value = MatchKind(name), raw
    base = config.behaviour(config.default)
    given = {name: _number(body, name, problems) for name in fields}
    behaviour = replace(
        base, schema=None, **{name: v for name, v in given.items() if v is not None}
    )
    problems += behaviour.problems("behaviour")
    if problems or kind is None:
        raise ValueError(*problems)
    return Override(kind, value, behaviour)


# --- kept across restarts ----------------------------------------------------------------


def store_path(state_dir: Path) -> Path:
    return Path(state_dir) / "traffic" / "targets.json"


def forget(state_dir: Path) -> None:
    """Drop the kept targets and overrides (a new cluster starts with the default target)."""
    store_path(state_dir).unlink(missing_ok=True)


class TargetStore:
    """``<state>/traffic/targets.json``: every target and override, rewritten atomically."""

    def __init__(self, state_dir: Path, config: TrafficConfig) -> None:
        self.path = store_path(state_dir)
        self.config = config

    def load(
        self, default: Target = DEFAULT_TARGET
    ) -> tuple[list[Target], dict[str, list[Override]]]:
        """The kept targets (``default`` always among them) and overrides.

        A missing file means a fresh model; an unreadable one is logged and ignored, so a
        damaged file never keeps the sandbox's own traffic from flowing.
        """
        targets: dict[str, Target] = {default.key: default}
        overrides: dict[str, list[Override]] = {}
        try:
            raw = json.loads(self.path.read_text())
            for item in raw.get("targets", []):
                body = {k: v for k, v in item.items() if k not in ("release", "namespace")}
                target = parse_target(item["namespace"], item["release"], body)
                targets[target.key] = target
            for key, items in (raw.get("overrides") or {}).items():
                if key in targets:
                    overrides[key] = [parse_override(item, self.config) for item in items]
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("ignoring %s (%s): serving the default target only", self.path, err)
            return [default], {}
        return list(targets.values()), overrides

    def save(self, targets: Iterable[Target], overrides: Mapping[str, Sequence[Override]]) -> None:
        data = {
            "targets": [t.to_json() for t in targets],
            "overrides": {k: [o.to_json() for o in v] for k, v in overrides.items() if v},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)
