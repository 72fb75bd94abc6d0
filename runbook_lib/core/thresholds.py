"""The runbook's numbers for "When to Rollback" and "Check error rate", as one validated value.

Every threshold, duration and window of the decision is a parameter whose default is the
runbook's value. Field names are the parameter vocabulary of the notebooks and the CLI
(``sustain``, ``window``, ...); durations are float seconds, ratios fractions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from runbook_lib.core.series import LAST_NS, NS_PER_S, seconds_to_ns
from runbook_lib.core.units import parse_duration, parse_ratio
from runbook_lib.errors import ParameterError

__all__ = ["Thresholds"]

_RATIOS = ("error_ratio", "business_drop", "recovery_error_ratio")
_DURATIONS = (
    "sustain",
    "window",
    "business_baseline",
    "business_smoothing",
    "recovery_within",
)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Thresholds of the "When to Rollback" rules and of the recovery check (runbook defaults).

    Constructing one validates every field and raises ``ParameterError`` listing all problems.
    """

    error_ratio: float = 0.01  # 5xx / all requests; a breach is strictly more than this
    latency_p99: float = 1.0  # seconds; a breach is strictly more than this
    sustain: float = 120.0  # a run must last strictly longer than this to fire
    window: float = 1800.0  # only samples within this long after the deploy count
    business_drop: float = 0.10  # fires when smoothed < (1 - drop) * baseline
    business_baseline: float = 1800.0  # baseline = mean over [deploy - this, deploy)
    business_smoothing: float = 300.0  # smoothed(t) = mean over (t - this, t]
    recovery_error_ratio: float = 0.001  # "Check error rate": must fall below this ...
    recovery_within: float = 120.0  # ... within this long after the rollout completes ...
    recovery_consecutive: int = 2  # ... and stay below for this many consecutive samples
    step: float | None = None  # sample spacing; None = median spacing of the timestamps

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ``ParameterError`` naming each problem at once."""
        problems: list[str] = []
        for name in (*_RATIOS, "latency_p99", *_DURATIONS):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append(f"{name}: expected a number, got {value!r}")
            elif not math.isfinite(value):
                problems.append(f"{name}: must be finite, got {value!r}")
            elif value < 0:
                problems.append(f"{name}: must not be negative, got {value!r}")
            elif name in _RATIOS and value > 1:
                problems.append(f"{name}: a ratio must be between 0 and 1, got {value!r}")
            elif name in _DURATIONS and seconds_to_ns(value) > LAST_NS:
                problems.append(_too_long(name, value))
        for name in ("window", "business_baseline", "business_smoothing"):
            value = getattr(self, name)
            if isinstance(value, int | float) and value == 0:
                problems.append(f"{name}: must be longer than 0 s")
        sustain, window = self.sustain, self.window
        if (
            isinstance(sustain, int | float)
            and isinstance(window, int | float)
            and math.isfinite(sustain)
            and 0 <= window <= sustain
        ):
            problems.append(
                f"sustain: {sustain:g} s is not shorter than window ({window:g} s); "
                "no run inside the window could last longer, so the rule could never fire"
            )
        consecutive = self.recovery_consecutive
        if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
            problems.append(
                f"recovery_consecutive: must be a whole number >= 1, got {consecutive!r}"
            )
        step = self.step
        if step is not None and (
            isinstance(step, bool)
            or not isinstance(step, int | float)
            or not math.isfinite(step)
            or step <= 0
        ):
            problems.append(f"step: must be a positive number of seconds or None, got {step!r}")
        elif step is not None and seconds_to_ns(step) > LAST_NS:
            problems.append(_too_long("step", step))
        if problems:
            raise ParameterError(problems)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Thresholds:
        """Build thresholds from people's text: ``{"sustain": "2m", "error_ratio": "1%"}``.

        Durations accept units (``90``, ``90s``, ``2m``, ``1h``), ratios accept percentages;
        ``None`` or ``""`` keeps the runbook default. Raises ``ParameterError`` listing every
        unknown name, unknown unit and out-of-range value together.
        """
        known = {f.name for f in fields(cls)}
        problems = [f"{name}: unknown threshold" for name in params if name not in known]
        values: dict[str, Any] = {}
        for name, raw in params.items():
            if name not in known or raw is None or raw == "":
                continue
            parse = _parser_for(name)
            try:
                values[name] = parse(raw)
            except (ValueError, TypeError) as err:
                problems.append(f"{name}: {err}")
        try:
            thresholds = cls(**values)
        except ParameterError as err:
            problems.extend(err.problems)
        if problems:
            raise ParameterError(problems)
        return thresholds


def _too_long(name: str, seconds: float) -> str:
    # Times are int64 nanoseconds (pandas' range): a longer duration cannot be added to one.
    return (
        f"{name}: {seconds:g} s is longer than the tool can represent "
        f"(at most {LAST_NS // NS_PER_S} s, about 292 years)"
    )


def _parser_for(name: str) -> Callable[[Any], Any]:
    if name in _RATIOS:
        return parse_ratio
    if name in (*_DURATIONS, "step"):
        return parse_duration
    if name == "latency_p99":
        return parse_duration  # a latency is a duration: "800ms" and "1s" both make sense
    return _whole_number


def _whole_number(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"expected a whole number, got {value!r}")
