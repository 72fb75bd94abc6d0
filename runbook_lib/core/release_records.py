"""Helm's release records, decoded: history, values and manifests from one read.

Helm's default storage driver keeps every revision of a release as a Secret labelled
``owner=helm,name=<release>``; its ``release`` field holds the revision as base64 of gzipped
JSON. ``helm history``, ``helm get values`` and ``helm get manifest`` print fields of these
same records. Reading them in one API call instead of three helm processes takes preflight's
revision check from a few hundred milliseconds to a few (preflight is on the clock between
the decision and the rollout). The mapping to ``helm history``'s columns is checked against
both Helm majors on the sandbox (tests/e2e/test_release_records.py).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runbook_lib.core.revisions import Revision, helm_time
from runbook_lib.errors import AdapterError

__all__ = ["ReleaseSnapshot", "decode_record", "revision_of", "snapshot_of"]

_GZIP_MAGIC = b"\x1f\x8b\x08"


def decode_record(encoded: str | bytes) -> dict[str, Any]:
    """One record's ``release`` field (as Helm wrote it: base64 of gzipped JSON) as a dict.

    Uncompressed JSON is accepted too (Helm reads both). Raises ``AdapterError`` when the text
    is not base64, the gzip stream is broken, or the JSON is not an object.
    """
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AdapterError(f"helm release record is not base64: {err}") from err
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise AdapterError(f"helm release record is not valid gzip: {err}") from err
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterError(f"helm release record is not JSON: {err}") from err
    if not isinstance(record, dict):
        raise AdapterError("helm release record is not a JSON object")
    return record


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def revision_of(record: Mapping[str, Any]) -> Revision:
    """The ``helm history`` row of a decoded record (the same fields Helm prints).

    ``updated`` is ``info.last_deployed``, ``chart`` is ``<name>-<version>`` of the chart's
    metadata, ``rollback_revision`` is Helm 4's ``info.rollback_revision``. Raises
    ``AdapterError`` naming the missing or unreadable field.
    """
    info = _mapping(record.get("info"))
    meta = _mapping(_mapping(record.get("chart")).get("metadata"))
    number = record.get("version")
    if isinstance(number, bool) or not isinstance(number, int):
        raise AdapterError(f"helm release record has no integer version (got {number!r})")
    missing = [
        name
        for name, value in (
            ("info.status", info.get("status")),
            ("info.last_deployed", info.get("last_deployed")),
            ("chart.metadata.name", meta.get("name")),
            ("chart.metadata.version", meta.get("version")),
        )
        if not isinstance(value, str) or not value
    ]
    if missing:
        raise AdapterError(f"helm release record v{number} lacks {', '.join(missing)}")
    updated = helm_time(info["last_deployed"], where=f"helm release record v{number}")
    rollback = info.get("rollback_revision")
    return Revision(
        number=number,
        status=str(info["status"]),
        chart=f"{meta['name']}-{meta['version']}",
        app_version=str(meta.get("appVersion") or ""),
        updated=updated,
        description=str(info.get("description") or ""),
        rollback_revision=rollback if isinstance(rollback, int) and rollback > 0 else None,
    )


@dataclass(frozen=True)
class ReleaseSnapshot:
    """Every stored revision of one release, read at one moment.

    Answers the three questions preflight asks Helm (``history``, ``values``, ``manifest``)
    with the same signatures as ``adapters.helm.Helm``, so either can serve preflight. Values
    can hold secrets: callers compare them, never log them (``repr`` leaves them out).
    """

    release: str
    revisions: tuple[Revision, ...]
    _values: Mapping[int, dict[str, Any]] = field(repr=False)
    _manifests: Mapping[int, str] = field(repr=False)

    def _check(self, release: str, revision: int | None = None) -> None:
        if release != self.release:
            raise AdapterError(f"this snapshot holds release {self.release!r}, not {release!r}")
        if revision is not None and revision not in self._manifests:
            raise AdapterError(f"release {release!r} has no stored revision {revision}")

    def history(self, release: str) -> list[Revision]:
        """The revisions, oldest first, like ``helm history -o json``."""
        self._check(release)
        return list(self.revisions)

    def values(self, release: str, revision: int) -> dict[str, Any]:
        """User-supplied values of one revision, like ``helm get values --revision``."""
        self._check(release, revision)
        return dict(self._values[revision])

    def manifest(self, release: str, revision: int) -> str:
        """The rendered manifest of one revision, like ``helm get manifest --revision``."""
        self._check(release, revision)
        return self._manifests[revision]


def snapshot_of(release: str, records: Sequence[Mapping[str, Any]]) -> ReleaseSnapshot:
    """A snapshot from decoded records (any order). Raises ``AdapterError`` for a record of
    another release, an unreadable record, or two records claiming one revision number."""
    revisions: dict[int, Revision] = {}
    values: dict[int, dict[str, Any]] = {}
    manifests: dict[int, str] = {}
    for record in records:
        if record.get("name") != release:
            raise AdapterError(
                f"a record labelled for release {release!r} names {record.get('name')!r}"
            )
        revision = revision_of(record)
        if revision.number in revisions:
            raise AdapterError(f"release {release!r} has two records for revision "
                               f"{revision.number}")  # fmt: skip
        config = record.get("config")
        revisions[revision.number] = revision
        values[revision.number] = dict(config) if isinstance(config, Mapping) else {}
        manifests[revision.number] = str(record.get("manifest") or "")
    ordered = tuple(revisions[n] for n in sorted(revisions))
    return ReleaseSnapshot(release, ordered, values, manifests)
