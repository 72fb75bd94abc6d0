"""The rules a setting's text must follow: Kubernetes names, label selectors, URLs, addresses.

Each function takes a parsed value and returns a one-line message (without the setting's name)
or None; ``core.settings`` attaches them to its fields (``setting(check=...)``). Pure.
"""

from __future__ import annotations

import re

from runbook_lib.core import names

__all__ = [
    "INCIDENT_ID",
    "deployment_name",
    "e_mail",
    "http_url",
    "incident_id",
    "label_selector",
    "namespace_name",
    "release_name",
    "secret_http_url",
]

_LABEL_NAME = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
# An incident id names the evidence folder and the fix-forward branch.
INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EMAIL = re.compile(r"[^@\s<>\"',;:]+@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?")
_URL = re.compile(r"https?://[^\s/]+\S*")
# A set-based term, ``key in (a, b)`` or ``key notin (a)``: Kubernetes' other selector syntax.
_SET_TERM = re.compile(r"(?P<key>\S+)\s+(?:in|notin)\s+\((?P<values>[^()]*)\)")


def release_name(value: str) -> str | None:
    return names.release_problem(value) or None


def namespace_name(value: str) -> str | None:
    return names.namespace_problem(value) or None


def deployment_name(value: str) -> str | None:
    return names.object_name_problem(value) or None


def label_selector(value: str) -> str | None:
    """A Kubernetes label selector: ``app=api,tier in (web, api)``."""
    if not value.strip():
        return f"expected a label selector like app=api, got {value!r}"
    for term in re.split(r",(?![^()]*\))", value):
        found = _SET_TERM.fullmatch(term.strip())
        if found is not None:
            values = [v.strip() for v in found["values"].split(",")]
            if not _LABEL_NAME.fullmatch(found["key"]) or not all(
                v and _LABEL_VALUE.fullmatch(v) for v in values
            ):
                return f"{term.strip()!r} is not a valid 'key in (values)' term"
            continue
        key, sep, val = term.strip().partition("=")
        val = val.removeprefix("=")  # "==" is Kubernetes' other spelling
        if not sep or not _LABEL_NAME.fullmatch(key) or not _LABEL_VALUE.fullmatch(val):
            return f"{term.strip()!r} is not a key=value label term (alphanumerics, '-', '_', '.')"
        if len(val) > 63 or len(key.rpartition("/")[2]) > 63:
            return f"{term.strip()!r}: label names and values are <= 63 characters"
    return None


def optional_label_selector(value: str) -> str | None:
    return label_selector(value) if value else None


def http_url(value: str) -> str | None:
    if not value or _URL.fullmatch(value.strip()):
        return None
    return f"expected http(s)://host:port, got {value!r}"


def secret_http_url(value: str) -> str | None:
    # The value is a secret: name the problem, never echo it.
    if not value or _URL.fullmatch(value):
        return None
    return "expected an http(s) URL (value not shown: secret)"


def e_mail(value: str) -> str | None:
    if not value or _EMAIL.fullmatch(value):
        return None
    return f"expected one e-mail address such as oncall@example.com, got {value!r}"


def incident_id(value: str) -> str | None:
    if not value or INCIDENT_ID.fullmatch(value):
        return None
    return f"expected letters, digits, '.', '_' or '-' (<= 64), got {value!r}"


def migrate_command(value: str) -> str | None:
    if not value.strip():
        return "expected a command such as './migrate down {n}'"
    try:
        value.format(n=1)
    except (KeyError, IndexError, ValueError):
        return f"only the placeholder {{n}} is allowed, got {value!r}"
    return None


def reason(value: str) -> str | None:
    """A reason that is recorded: empty (none given) or some words, never only blanks."""
    if value and not value.strip():
        return "give the reason for the manual call (it is recorded)"
    return None


def step(value: float | None) -> str | None:
    # Prometheus and the rule files work in whole milliseconds.
    if value is None:
        return None
    if value < 0.001 or abs(round(value * 1000) - value * 1000) > 1e-6:
        return f"at least 1ms, in whole milliseconds, got {value:g} s"
    return None


def at_least_one(value: int) -> str | None:
    return None if value >= 1 else "must be at least 1"


def at_least_1kib(value: int) -> str | None:
    return None if value >= 1024 else f"at least 1KiB (a few log lines), got {value} B"
