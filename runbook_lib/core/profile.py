"""A service profile: the settings of one service written down once, as YAML (pure: text in).

    release: shop
    namespace: prod
    expected_cluster: prod-eu-1
    prometheus_url: http://prometheus.monitoring:9090
    sustain: 3m
    metrics_preset: istio
    prometheus_selector: destination_workload="shop",reporter="destination"
    business_queries:
      orders: sum(rate(orders_placed_total{app="shop"}[1m]))
      basket_size: avg(basket_items)

Its keys are the settings' flat names (``core.settings``), the same as the notebooks'
parameters and the command line's options, with the same units; every entry point takes it,
and a value given there overrides the profile's. Settings that describe one run (``incident_id``,
``dry_run``, ``deployed_at``, ...) are not a profile's to set. ``parse_profile`` reads the text
(the caller reads the file) and checks every key and value, each problem carrying the file and
line: "sustain: 90 has no unit ... (shop.yaml, line 7)".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from runbook_lib.core.kinds import check_value, parse
from runbook_lib.core.settings import FIELDS, field_named

__all__ = ["Profile", "located", "parse_profile"]

_NAMES = tuple(spec.name for spec in FIELDS)
_LOCATION = re.compile(r" \([^()]*(, lines? [0-9]+( and [0-9]+)?)?\)$")


@dataclass(frozen=True)
class Profile:
    """A parsed profile: the valid values by name (parsed), their lines, and every problem."""

    source: str
    values: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    problems: tuple[str, ...] = ()

    def where(self, name: str) -> str:
        """`` (shop.yaml, line 7)``: where ``name`` is set, for a problem's message."""
        line = self.lines.get(name)
        return f" ({self.source}, line {line})" if line else f" ({self.source})"


def parse_profile(text: str, *, source: str) -> Profile:
    """The profile in ``text`` (``source`` names it in messages: the file's path).

    Never raises for bad content: every problem (YAML syntax, a key that is no setting or that
    describes one run, a key given twice, a bad value) is in ``problems`` with its line.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            return Profile(source, problems=(f"profile: not YAML ({source}{line}): {err.problem}",))
        except yaml.YAMLError as err:
            return Profile(source, problems=(f"profile: not YAML ({source}): {err}",))
        if root is None:
            return Profile(source)
        if not isinstance(root, yaml.MappingNode):
            return Profile(
                source,
                problems=(
                    f"profile: expected setting names and their values ({source}, line "
                    f"{root.start_mark.line + 1})",
                ),
            )
        return _read(loader, root, source)
    finally:
        loader.dispose()


def _read(loader: yaml.SafeLoader, root: yaml.MappingNode, source: str) -> Profile:
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    problems: list[str] = []
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        at = f"({source}, line {line})"
        name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(name, str) or name not in _NAMES:
            problems.append(f"{name}: not a setting {at}{_did_you_mean(name)}")
            continue
        if name in lines:
            problems.append(f"{name}: given twice ({source}, lines {lines[name]} and {line})")
            continue
        lines[name] = line
        spec = field_named(name)
        if spec.per_run:
            problems.append(
                f"{name}: describes one run, not the service: give it with the run, not in "
                f"a profile {at}"
            )
            continue
        try:
            raw = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as err:
            problems.append(f"{name}: {err} {at}")
            continue
        try:
            value = parse(spec, raw)
            found = check_value(spec, value)
        except (ValueError, TypeError, OverflowError) as err:
            found = [str(err)]
        if found:
            problems.extend(f"{name}: {message} {at}" for message in found)
        else:
            values[name] = value
    return Profile(source, MappingProxyType(values), MappingProxyType(lines), tuple(problems))


def located(problem: str) -> bool:
    """Whether a problem names where in a profile it is (it is the profile's, not an option's)."""
    return _LOCATION.search(problem) is not None and " line" in problem


def _did_you_mean(name: object) -> str:
    close = difflib.get_close_matches(str(name), _NAMES, n=1)
    return f"; did you mean {close[0]}?" if close else ""
