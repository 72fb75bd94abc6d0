"""Decoding Helm's release records into the same revisions, values and manifests helm prints.

The records here are shaped like the ones Helm 3 and Helm 4 write (fields seen on the
sandbox); tests/e2e/test_release_records.py checks the decoding against both real binaries.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from runbook_lib.adapters.helm import Helm
from runbook_lib.core.release_records import decode_record, revision_of, snapshot_of
from runbook_lib.core.revisions import resolve_target
from runbook_lib.errors import AdapterError


def record(
    number: int,
    status: str,
    tag: str,
    *,
    description: str = "Upgrade complete",
    rollback_revision: int | None = None,
    config: dict[str, Any] | None = None,
    chart_version: str | None = None,
) -> dict[str, Any]:
    """A release record as Helm stores it (the fields the runbook reads, plus some it ignores)."""
    info: dict[str, Any] = {
        "first_deployed": "2026-11-27T13:52:37.459455339Z",
        "last_deployed": f"2026-11-27T13:{number:02d}:18.825471477Z",
        "deleted": "",
        "description": description,
        "status": status,
    }
    if rollback_revision is not None:
        info["rollback_revision"] = rollback_revision
    version = chart_version or tag.removeprefix("v")
    return {
        "name": "app",
        "info": info,
        "chart": {
            "metadata": {"name": "app", "version": version, "appVersion": tag, "apiVersion": "v2"},
            "templates": [
                {"name": "templates/deployment.yaml", "data": "a2luZDogRGVwbG95bWVudA=="}
            ],
            "values": {"image": {"tag": "v0"}, "replicas": 4},
        },
        "config": {"image": {"tag": tag}} if config is None else config,
        "manifest": f"---\nkind: Deployment\nimage: registry.local/api:{tag}\n",
        "version": number,
        "namespace": "default",
    }


def encode(rec: dict[str, Any], *, compress: bool = True) -> str:
    """Helm's own encoding of a record: base64 of gzipped JSON."""
    raw = json.dumps(rec).encode()
    return base64.b64encode(gzip.compress(raw) if compress else raw).decode()


@pytest.mark.parametrize("compress", [True, False], ids=["gzipped", "plain-json"])
def test_decode_record_round_trips(compress: bool) -> None:
    rec = record(2, "deployed", "v1.1.0")
    assert decode_record(encode(rec, compress=compress)) == rec


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        pytest.param("not base64!", "not base64", id="not-base64"),
        pytest.param(
            base64.b64encode(b"\x1f\x8b\x08broken").decode(), "not valid gzip", id="broken-gzip"
        ),
        pytest.param(base64.b64encode(b"{nope").decode(), "not JSON", id="not-json"),
        pytest.param(base64.b64encode(b"[1, 2]").decode(), "not a JSON object", id="a-list"),
    ],
)
def test_decode_record_names_what_is_wrong(encoded: str, message: str) -> None:
    with pytest.raises(AdapterError, match=message):
        decode_record(encoded)


def test_revision_of_gives_helm_history_columns() -> None:
    rev = revision_of(record(2, "superseded", "v1.1.0"))
    assert rev.number == 2
    assert rev.status == "superseded"
    assert rev.chart == "app-1.1.0"
    assert rev.app_version == "v1.1.0"
    assert rev.description == "Upgrade complete"
    # Go prints nanoseconds; Python keeps microseconds, as parse_history does for helm history.
    assert rev.updated == datetime(2026, 11, 27, 13, 2, 18, 825471, tzinfo=UTC)
    assert rev.rolled_back_to is None


def test_helm4_rollback_revision_is_read_from_info() -> None:
    rev = revision_of(
        record(3, "deployed", "v1.0.0", description="incident 42", rollback_revision=1)
    )
    assert rev.rollback_revision == 1
    assert rev.rolled_back_to == 1


def test_helm3_rollback_is_recognised_from_its_description() -> None:
    rev = revision_of(record(3, "deployed", "v1.0.0", description="Rollback to 1"))
    assert rev.rollback_revision is None
    assert rev.rolled_back_to == 1


def test_chart_without_app_version_reads_as_empty() -> None:
    rec = record(1, "deployed", "v1.0.0")
    del rec["chart"]["metadata"]["appVersion"]
    assert revision_of(rec).app_version == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda r: r.pop("version"), "no integer version", id="no-version"),
        pytest.param(lambda r: r.update(version="2"), "no integer version", id="version-text"),
        pytest.param(lambda r: r["info"].pop("status"), "lacks info.status", id="no-status"),
        pytest.param(
            lambda r: r["chart"]["metadata"].pop("version"),
            "lacks chart.metadata.version",
            id="no-chart-version",
        ),
        pytest.param(lambda r: r.pop("chart"), "chart.metadata.name", id="no-chart"),
        pytest.param(
            lambda r: r["info"].update(last_deployed="yesterday"), "unreadable time", id="bad-time"
        ),
        pytest.param(
            lambda r: r["info"].update(last_deployed="2026-11-27T13:52:18"),
            "no offset",
            id="naive-time",
        ),
    ],
)
def test_revision_of_names_the_missing_field(change: Any, message: str) -> None:
    rec = record(2, "deployed", "v1.1.0")
    change(rec)
    with pytest.raises(AdapterError, match=message):
        revision_of(rec)


def test_snapshot_answers_like_helm() -> None:
    snap = snapshot_of(
        "app",
        [  # the API lists records in name order: v10 before v2
            record(10, "deployed", "v1.0.0", description="Rollback to 1"),
            record(1, "superseded", "v1.0.0"),
            record(2, "superseded", "v1.1.0", config={}),
        ],
    )
    assert [r.number for r in snap.history("app")] == [1, 2, 10]
    assert snap.values("app", 1) == {"image": {"tag": "v1.0.0"}}
    assert snap.values("app", 2) == {}
    assert "registry.local/api:v1.0.0" in snap.manifest("app", 10)
    assert resolve_target(snap.history("app")).already_rolled_back


def test_snapshot_values_are_copies() -> None:
    snap = snapshot_of("app", [record(1, "deployed", "v1.0.0")])
    snap.values("app", 1)["image"] = "changed"
    assert snap.values("app", 1) == {"image": {"tag": "v1.0.0"}}


def test_release_installed_without_values_has_empty_values() -> None:
    rec = record(1, "deployed", "v1.0.0")
    rec["config"] = None  # Helm stores null when no values were given
    assert snapshot_of("app", [rec]).values("app", 1) == {}


def test_values_stay_out_of_the_snapshot_repr() -> None:
    rec = record(1, "deployed", "v1.0.0", config={"db": {"password": "hunter2"}})
    assert "hunter2" not in repr(snapshot_of("app", [rec]))


@pytest.mark.parametrize(
    ("records", "message"),
    [
        pytest.param(
            [{**record(1, "deployed", "v1.0.0"), "name": "other"}], "names 'other'", id="other"
        ),
        pytest.param(
            [record(1, "superseded", "v1.0.0"), record(1, "deployed", "v1.0.0")],
            "two records for revision 1",
            id="duplicate",
        ),
    ],
)
def test_snapshot_refuses_inconsistent_records(records: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(AdapterError, match=message):
        snapshot_of("app", records)


def test_snapshot_refuses_another_release() -> None:
    snap = snapshot_of("app", [record(1, "deployed", "v1.0.0")])
    with pytest.raises(AdapterError, match="holds release 'app', not 'other'"):
        snap.history("other")


def test_snapshot_refuses_a_revision_it_does_not_hold() -> None:
    snap = snapshot_of("app", [record(1, "deployed", "v1.0.0")])
    with pytest.raises(AdapterError, match="no stored revision 7"):
        snap.manifest("app", 7)


def test_records_are_read_directly_only_for_helms_secret_driver() -> None:
    assert Helm(env={}).storage_driver() == "secret"
    assert Helm(env={"HELM_DRIVER": "secrets"}).storage_driver() == "secret"
    assert Helm(env={"HELM_DRIVER": "ConfigMaps"}).storage_driver() == "configmap"
    assert Helm(env={"HELM_DRIVER": "sql"}).storage_driver() == "sql"
