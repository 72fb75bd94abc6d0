"""How each app version behaves (``sandbox/traffic/versions.yaml``) and which pods serve.

Pure: data in, values out. The traffic model (``traffic_model.py``) reads the config once and
feeds ``PodView``s of the listed pods through ``serving_pods``; what a pod does when it serves
is ``TrafficConfig.behaviour(version)`` unless a per-target override matches the pod
(``traffic_targets.Override``).
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from runbook_sandbox import paths

__all__ = [
    "DEFAULT_CONFIG",
    "PodView",
    "TrafficConfig",
    "VersionBehaviour",
    "fixed_pods",
    "image_version",
    "load_config",
    "parse_mix",
    "serving_pods",
    "version_mix",
]

DEFAULT_CONFIG = paths.traffic_config()
# z-score of the 99th percentile of a standard normal: turns (median, p99) into a log-normal.
Z99 = 2.326347874


@dataclass(frozen=True)
class VersionBehaviour:
    """How one version answers: its 5xx share, log-normal latency and order conversion."""

    error_ratio: float
    latency_median_s: float
    latency_p99_s: float
    orders_factor: float = 1.0
    schema: int | None = None

    @property
    def latency_sigma(self) -> float:
        return math.log(self.latency_p99_s / self.latency_median_s) / Z99

    def problems(self, where: str) -> list[str]:
        """What is out of range, as "<where>.<field>: why" lines (empty when valid)."""
        found = []
        if not 0 <= self.error_ratio <= 1:
            found.append(f"{where}.error_ratio: {self.error_ratio} not in 0..1")
        if not 0 < self.latency_median_s < self.latency_p99_s:
            found.append(f"{where}: need 0 < latency_median_s < latency_p99_s")
        if not 0 <= self.orders_factor <= 10:
            found.append(f"{where}.orders_factor: {self.orders_factor} not in 0..10")
        return found


@dataclass(frozen=True)
class TrafficConfig:
    default: str
    request_rate_per_s: float
    order_share: float
    versions: Mapping[str, VersionBehaviour]

    def behaviour(self, version: str) -> VersionBehaviour:
        """The version's behaviour; an unknown version behaves like the default one."""
        return self.versions.get(version) or self.versions[self.default]


def load_config(path: Path = DEFAULT_CONFIG) -> TrafficConfig:
    """Read ``versions.yaml``; raises ``ValueError`` listing every problem found."""
    raw = yaml.safe_load(path.read_text()) or {}
    problems: list[str] = []
    versions: dict[str, VersionBehaviour] = {}
    for name, spec in (raw.get("versions") or {}).items():
        try:
            behaviour = VersionBehaviour(
                error_ratio=float(spec["error_ratio"]),
                latency_median_s=float(spec["latency_median_s"]),
                latency_p99_s=float(spec["latency_p99_s"]),
                orders_factor=float(spec.get("orders_factor", 1.0)),
                schema=int(spec["schema"]) if "schema" in spec else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"versions.{name}: {type(err).__name__}: {err}")
            continue
        problems += behaviour.problems(f"versions.{name}")
        versions[str(name)] = behaviour
    default = str(raw.get("default", ""))
    if default not in versions:
        problems.append(f"default: {default!r} is not one of the versions {sorted(versions)}")
    rate = float(raw.get("request_rate_per_s", 200))
    share = float(raw.get("order_share", 0.1))
    if rate <= 0:
        problems.append(f"request_rate_per_s: {rate} must be > 0")
    if not 0 <= share <= 1:
        problems.append(f"order_share: {share} not in 0..1")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return TrafficConfig(default, rate, share, versions)


# --- which pods serve --------------------------------------------------------------------


@dataclass(frozen=True)
class PodView:
    """What the load balancer needs to know about one pod.

    ``template_hash`` (the ``pod-template-hash`` label a Deployment revision gives its pods)
    and ``image`` (the first container's full reference) are what a behaviour override can
    match; ``container`` is that container's name, whose ``kubectl logs`` the model writes.
    """

    name: str
    version: str
    ready: bool
    terminating: bool = False
    uid: str = ""
    crash_every_s: float = 0.0  # crash-looping pod: its container restarts this often
    template_hash: str = ""
    image: str = ""
    container: str = "api"


def image_version(image: str) -> str:
    """The tag of an image reference: ``registry.local:5000/api:v1.1.0@sha256:..`` -> ``v1.1.0``."""
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def serving_pods(pods: Iterable[PodView]) -> tuple[PodView, ...]:
    """Pods an endpoint controller would route to: ready and not being deleted, sorted by name."""
    return tuple(sorted((p for p in pods if p.ready and not p.terminating), key=lambda p: p.name))


def version_mix(pods: Iterable[PodView]) -> dict[str, int]:
    """Number of serving pods per version: each pod gets an equal share of the traffic."""
    return dict(sorted(Tally(p.version for p in serving_pods(pods)).items()))


def fixed_pods(mix: Mapping[str, int], *, prefix: str = "api") -> tuple[PodView, ...]:
    """Synthetic ready pods for a fixed mix (``{"v1.0.0": 3}`` -> three v1.0.0 pods).

    Each version's pods share a template hash (``v1-0-0``), as one Deployment revision's do.
    """
    return tuple(
        PodView(
            f"{prefix}-{version.replace('.', '-')}-{i}",
            version,
            ready=True,
            template_hash=version.replace(".", "-"),
            image=f"registry.local/api:{version}",
        )
        for version, count in sorted(mix.items())
        for i in range(count)
    )


def parse_mix(text: str) -> dict[str, int]:
    """``"v1.0.0=3,v1.1.0=1"`` -> ``{"v1.0.0": 3, "v1.1.0": 1}``."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        version, _, count = part.partition("=")
        mix[version] = int(count or "1")
    return mix
