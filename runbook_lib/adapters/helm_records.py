"""Read a release's Helm records from their Secrets: one API call instead of helm processes.

Only for Helm's default storage driver (Secrets); ``Helm.storage_driver`` says which one the
helm binary would use. Preflight falls back to the ``helm`` CLI whenever this returns nothing
or fails, so the records are never the only source of truth about a release.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from runbook_lib.adapters.kube import Kube
from runbook_lib.core.release_records import ReleaseSnapshot, decode_record, snapshot_of
from runbook_lib.errors import AdapterError

__all__ = ["read_release"]


def read_release(kube: Kube, namespace: str, release: str) -> ReleaseSnapshot | None:
    """Every stored revision of ``release`` in ``namespace``, or ``None`` when no record is
    stored as a Secret (no such release, or Helm keeps it elsewhere).

    Raises ``ApiError`` when the API refuses or cannot answer, ``AdapterError`` when a record
    cannot be decoded.
    """
    command = f"list secrets -n {namespace} -l owner=helm,name={release}"

    def fetch(**options: Any) -> bytes:
        # The records are large (each holds its chart): the raw body, without the client's
        # model deserialisation, is most of the saving. Read inside ``call`` so a connection
        # dropped mid-body is an ``ApiError`` too.
        response: Any = kube.core.list_namespaced_secret(
            namespace,
            label_selector=f"owner=helm,name={release}",
            _preload_content=False,
            **options,
        )
        try:
            return bytes(response.data)
        finally:
            response.release_conn()

    body = kube.call(command, fetch)
    try:
        listing: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterError(f"{command}: the API answer is not JSON", command=command) from err
    items = listing.get("items") if isinstance(listing, dict) else None
    if not items:
        return None
    records = []
    for item in items:
        name = (item.get("metadata") or {}).get("name", "?")
        # Like Helm, every Secret with these labels counts: one it cannot read fails the read.
        encoded = (item.get("data") or {}).get("release")
        if not isinstance(encoded, str):
            raise AdapterError(f"helm record {name} has no release field", command=command)
        # The API base64-encodes Secret data; Helm base64-encoded the gzipped record itself.
        try:
            inner = _unwrap(encoded)
            records.append(decode_record(inner))
        except AdapterError as err:
            raise AdapterError(f"helm record {name}: {err}", command=command) from err
    return snapshot_of(release, records)


def _unwrap(api_encoded: str) -> bytes:
    try:
        return base64.b64decode(api_encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AdapterError(f"Secret data is not base64: {err}") from err
