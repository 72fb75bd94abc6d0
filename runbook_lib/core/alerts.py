"""Alertmanager's webhook payload (version 4), read into frozen values (pure).

Used by ``runbook serve`` (alert-driven runs): each alert names the release and namespace in
its labels (``runbook rules`` puts them there). ``parse_webhook`` checks the shape and raises
``ParameterError`` naming every bad field (``alerts[2].startsAt: ...``); it does not judge the
labels: an alert without a release label is a valid alert the receiver records and ignores,
and whether a label is a valid Kubernetes name is the receiver's check (``core.names``). Text
that cannot be UTF-8 (a lone surrogate from a ``\\ud800`` escape) is replaced by U+FFFD on
reading, so no later write, page or message can fail on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from runbook_lib.core.units import parse_instant
from runbook_lib.errors import ParameterError

__all__ = ["FIRING", "RESOLVED", "Alert", "Notification", "parse_webhook", "read_alert"]

FIRING = "firing"
RESOLVED = "resolved"
# Alertmanager sends "0001-01-01T00:00:00Z" for "not ended"; Python's datetime cannot hold
# a time zone-aware year 1 comfortably everywhere, so it reads as None.
_ZERO_TIME = "0001-01-01T00:00:00Z"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Alert:
    """One alert of a notification: what fired, since when, and for which release."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""

    @property
    def release(self) -> str:
        return self.labels.get("release", "")

    @property
    def namespace(self) -> str:
        return self.labels.get("namespace", "")

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def key(self) -> str:
        """Identity of one firing episode: the same alert delivered again has the same key.

        Alertmanager repeats a notification (group_interval, repeat_interval, retries) with the
        same fingerprint and start time; a new episode after it resolved starts later.
        """
        return f"{self.fingerprint}@{self.starts_at.isoformat()}"

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at.isoformat(),
            "endsAt": self.ends_at.isoformat() if self.ends_at else None,
            "fingerprint": self.fingerprint,
            "generatorURL": self.generator_url,
        }


@dataclass(frozen=True)
class Notification:
    """One webhook post: a group of alerts and the receiver it was routed to."""

    receiver: str
    status: str
    group_key: str
    alerts: tuple[Alert, ...]
    external_url: str = ""
    truncated_alerts: int = 0


def _text(value: str) -> str:
    """``value`` with every lone surrogate replaced by U+FFFD (valid UTF-8 from here on)."""
    return _SURROGATE.sub("\ufffd", value)


def _text_map(value: object, where: str, problems: list[str]) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.append(f"{where}: expected an object of strings")
        return MappingProxyType({})
    return MappingProxyType({_text(k): _text(v) for k, v in value.items()})


def _instant(value: object, where: str, problems: list[str]) -> datetime | None:
    if value in (None, "", _ZERO_TIME):
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: expected an RFC 3339 time, got {value!r}")
        return None
    try:
        return parse_instant(value)
    except ValueError as err:
        problems.append(f"{where}: {err}")
        return None


def _fingerprint(labels: Mapping[str, str]) -> str:
    # Alertmanager always sends one; a hand-made payload without it still dedups by labels.
    text = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _alert(raw: object, where: str, problems: list[str]) -> Alert | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected an object")
        return None
    before = len(problems)
    status = raw.get("status")
    if status not in (FIRING, RESOLVED):
        problems.append(f"{where}.status: expected 'firing' or 'resolved', got {status!r}")
    labels = _text_map(raw.get("labels"), f"{where}.labels", problems)
    annotations = _text_map(raw.get("annotations"), f"{where}.annotations", problems)
    starts_at = _instant(raw.get("startsAt"), f"{where}.startsAt", problems)
    if starts_at is None and len(problems) == before:
        problems.append(f"{where}.startsAt: missing")
    ends_at = _instant(raw.get("endsAt"), f"{where}.endsAt", problems)
    fingerprint = raw.get("fingerprint") or _fingerprint(labels)
    if not isinstance(fingerprint, str):
        problems.append(f"{where}.fingerprint: expected a string")
    generator = raw.get("generatorURL") or ""
    if not isinstance(generator, str):
        problems.append(f"{where}.generatorURL: expected a string")
    if len(problems) > before or starts_at is None:
        return None
    return Alert(
        status=str(status),
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=_text(str(fingerprint)),
        generator_url=_text(str(generator)),
    )


def read_alert(raw: object) -> Alert:
    """One alert from its ``Alert.to_json_dict()`` form (the receiver's journal). Raises
    ``ParameterError`` naming what is wrong."""
    problems: list[str] = []
    alert = _alert(raw, "alert", problems)
    if alert is None:
        raise ParameterError(problems or ["alert: unreadable"])
    return alert


def parse_webhook(body: bytes | str | Mapping[str, Any]) -> Notification:
    """Read one Alertmanager webhook post (JSON text or already decoded).

    Raises ``ParameterError`` for text that is not JSON, a version other than "4", or any
    malformed alert (each problem names its field).
    """
    if isinstance(body, bytes | str):
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise ParameterError([f"body: not JSON: {err}"]) from err
        except RecursionError as err:
            raise ParameterError(["body: JSON nested too deeply"]) from err
    else:
        data = body
    if not isinstance(data, Mapping):
        raise ParameterError(["body: expected a JSON object (Alertmanager webhook payload)"])
    problems: list[str] = []
    version = data.get("version")
    if version != "4":
        problems.append(f'version: expected "4" (Alertmanager webhook), got {version!r}')
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list):
        problems.append("alerts: expected a list")
        raw_alerts = []
    alerts = [_alert(raw, f"alerts[{i}]", problems) for i, raw in enumerate(raw_alerts)]
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        problems.append(f"truncatedAlerts: expected a count, got {truncated!r}")
        truncated = 0
    if problems:
        raise ParameterError(problems)
    return Notification(
        receiver=_text(str(data.get("receiver") or "")),
        status=_text(str(data.get("status") or "")),
        group_key=_text(str(data.get("groupKey") or "")),
        alerts=tuple(a for a in alerts if a is not None),
        external_url=_text(str(data.get("externalURL") or "")),
        truncated_alerts=truncated,
    )
