"""The series a PromQL query reads: its vector selectors and their range windows (pure).

``runbook profile check`` asks Prometheus about each series a profile's queries read (does
the metric exist, does the selector match anything, how often is it scraped), so it needs the
selectors of a raw query as well as of a built one::

    sum(rate(http_requests_total{job="api",code=~"5.."}[1m])) / sum(rate(x[30s]))
    -> Selector("http_requests_total", 'job="api",code=~"5.."', 60.0), Selector("x", "", 30.0)

A small scanner rather than a PromQL parser library: the only maintained one for Python is a
compiled extension that conda-forge does not carry, and this needs only the selectors. It
skips string literals, function and aggregation names, keywords, the label lists of ``by``,
``without``, ``on``, ``ignoring``, ``group_left`` and ``group_right``, and subquery ranges
(``[10m:1m]`` spans an expression, not a series). Queries it cannot read are Prometheus' to
refuse; here they just yield what was recognised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Selector", "promql_duration_s", "selectors_in"]

_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'
_TOKEN = re.compile(
    rf"(?P<space>\s+)"
    rf"|(?P<string>{_STRING})"
    rf"|(?P<braces>\{{(?:[^{{}}\"'`]|{_STRING})*\}})"
    rf"|(?P<brackets>\[[^\]]*\])"
    r"|(?P<number>0[xX][0-9a-fA-F]+|[0-9.][0-9a-zA-Z.]*)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"|(?P<other>.)",
    re.DOTALL,
)
# Words that are no series even when no parenthesis follows.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# Words followed by a parenthesised list of label names, not of expressions.
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_NAME_MATCHER = re.compile(r'(?:^|,)\s*__name__\s*=\s*"([^"\\]*)"')
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Selector:
    """One vector selector: the metric's name, its matchers as written, the range it reads.

    ``metric`` is empty only for a selector without a name (``{__name__=~"a|b"}``);
    ``range_s`` is the ``[5m]`` after it (seconds), None for an instant selector.
    """

    metric: str
    matchers: str = ""
    range_s: float | None = None

    @property
    def text(self) -> str:
        """The selector as PromQL (``metric{matchers}``), without its range."""
        if not self.matchers:
            return self.metric
        if "__name__" in self.matchers:  # the name is among the matchers: not given twice
            return f"{{{self.matchers}}}"
        return f"{self.metric}{{{self.matchers}}}"


def promql_duration_s(text: str) -> float | None:
    """Seconds of a PromQL duration (``5m``, ``1h30m``, ``250ms``); None if it is none."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(number) * _DURATION_S[unit] for number, unit in parts)


def _tokens(query: str) -> list[tuple[str, str]]:
    return [
        (found.lastgroup or "other", found.group())
        for found in _TOKEN.finditer(query)
        if found.lastgroup != "space"
    ]


def _skip_parentheses(tokens: list[tuple[str, str]], at: int) -> int:
    """The index after the parenthesised group that starts at ``at``."""
    depth = 0
    for index in range(at, len(tokens)):
        kind, text = tokens[index]
        if kind == "other" and text == "(":
            depth += 1
        elif kind == "other" and text == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(tokens)


def selectors_in(query: str) -> tuple[Selector, ...]:
    """Every vector selector of ``query``, in order of appearance (repeats included)."""
    tokens = _tokens(query)
    found: list[Selector] = []
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text in _LABEL_LISTS:
            index += 1
            if following == ("other", "("):
                index = _skip_parentheses(tokens, index)
            continue
        if kind == "name" and (
            following == ("other", "(")
            or following in (("name", "by"), ("name", "without"))  # sum by (le) (...)
            or text.lower() in _KEYWORDS
        ):
            index += 1  # a function, an aggregation or a keyword
            continue
        if kind not in ("name", "braces"):
            index += 1
            continue
        metric, matchers = (text, "") if kind == "name" else ("", text)
        index += 1
        if kind == "name" and following[0] == "braces":
            matchers = following[1]
            index += 1
        inner = matchers[1:-1].strip() if matchers else ""
        if not metric:
            named = _NAME_MATCHER.search(inner)
            metric = named.group(1) if named else ""
        range_s = None
        if index < len(tokens) and tokens[index][0] == "brackets":
            window = tokens[index][1][1:-1]
            if ":" not in window:  # a subquery's range spans the expression, not this series
                range_s = promql_duration_s(window)
            index += 1
        found.append(Selector(metric, inner, range_s))
    return tuple(found)
