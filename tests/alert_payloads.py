"""Alertmanager webhook payloads (version 4) for the receiver's tests and benchmark."""

from __future__ import annotations

import hashlib
from typing import Any


def alert(
    release: str = "app",
    namespace: str = "default",
    *,
    status: str = "firing",
    name: str = "RunbookErrorRatioHigh",
    starts_at: str = "2026-12-01T12:00:00.123456789Z",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager sends it (fingerprint from the labels, like Alertmanager's)."""
    all_labels = {"alertname": name, "release": release, "namespace": namespace}
    all_labels.update(labels or {})
    all_labels = {k: v for k, v in all_labels.items() if v}
    fingerprint = hashlib.sha256(repr(sorted(all_labels.items())).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": all_labels,
        "annotations": {"summary": f"5xx ratio above 1% in release {release}"},
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T12:10:00Z",
        "generatorURL": "http://127.0.0.1:19090/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A webhook post grouping ``alerts``."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": '{}:{alertname="RunbookErrorRatioHigh"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "runbook",
        "groupLabels": {"alertname": "RunbookErrorRatioHigh"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:19395",
        "alerts": list(alerts),
    }
