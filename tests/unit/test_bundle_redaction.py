"""Helm values, manifests, pods and samples reach the bundle redacted as data."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from helm_manifests import RELEASE_MANIFEST
from secret_corpus import leaks

from runbook_lib.core.redact import PLACEHOLDER, Redactor
from runbook_lib.evidence import bundle

GOOD_MANIFEST = RELEASE_MANIFEST
BAD_MANIFEST = (
    GOOD_MANIFEST.replace("UExBTlRFRG9sZFRsc0tleQ==", "UExBTlRFRG5ld1Rsc0tleQ==")
    .replace("PLANTEDoldPassword", "PLANTEDnewPassword")
    .replace("PLANTEDoldEnvPw", "PLANTEDnewEnvPw")
    .replace("api:v1.0.0", "api:v1.1.0")
)


class _Helm:
    """The three Helm reads the bundle makes, answering like ``helm get`` would."""

    def history(self, release: str) -> list[dict[str, Any]]:
        return [{"number": 1, "description": "Install complete"},
                {"number": 2, "description": "Upgrade complete"}]  # fmt: skip

    def values(self, release: str, revision: int) -> dict[str, Any]:
        tag = "v1.0.0" if revision == 1 else "v1.1.0"
        password = "PLANTEDvaluesOld" if revision == 1 else "PLANTEDvaluesNew"
        return {"image": {"tag": tag}, "db": {"password": password, "port": 5432},
                "apiToken": 123456789}  # fmt: skip

    def manifest(self, release: str, revision: int) -> str:
        return GOOD_MANIFEST if revision == 1 else BAD_MANIFEST


def test_helm_diffs_are_clean_on_both_sides(tmp_path: Path) -> None:
    report = bundle.collect_helm(
        tmp_path, _Helm(), release="app", bad_revision=2, good_revision=1,  # type: ignore[arg-type]
        redact=Redactor.build(),
    )  # fmt: skip
    assert report.problems == ()
    values = (tmp_path / "helm" / "values-diff.txt").read_text()
    manifest = (tmp_path / "helm" / "manifest-diff.txt").read_text()
    for text in (values, manifest):
        assert "PLANTED" not in text
        assert "UExBTlRFR" not in text
        assert leaks(text) == []
    assert "-  tag: v1.0.0" in values
    assert "+  tag: v1.1.0" in values
    assert f"password: '{PLACEHOLDER}'" in values
    assert "-        image: registry.local/api:v1.0.0" in manifest
    assert "+        image: registry.local/api:v1.1.0" in manifest
    # Redacted alike on both sides, the Secret whose values changed shows no difference.
    assert "tls.key" not in manifest
    assert stat.S_IMODE((tmp_path / "helm" / "values-diff.txt").stat().st_mode) == 0o640


def test_samples_csv_column_names_are_redacted(tmp_path: Path) -> None:
    index = pd.DatetimeIndex([datetime(2026, 11, 27, 10, tzinfo=UTC)], name="timestamp")
    frame = pd.DataFrame(
        {"error_ratio": [0.01], "business:orders_glpat-PLANTEDgitlab0123456": [3.0]}, index=index
    )
    bundle.write_samples_csv(tmp_path, frame)
    header = (tmp_path / bundle.SAMPLES_CSV).read_text().splitlines()[0]
    assert "PLANTED" not in header
    assert header.startswith("timestamp,error_ratio,business:orders_")


def test_problems_are_appended_redacted(tmp_path: Path) -> None:
    report = bundle.BundleReport((), ("prometheus http://u:PLANTEDprom@127.0.0.1:19090: down",))
    bundle.write_problems(tmp_path, report, redact=Redactor.build())
    bundle.write_problems(tmp_path, report, redact=Redactor.build())
    text = (tmp_path / bundle.COLLECTION_ERRORS).read_text()
    assert "PLANTED" not in text
    assert text.count("127.0.0.1:19090: down") == 2
