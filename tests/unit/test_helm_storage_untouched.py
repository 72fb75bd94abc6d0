"""No module reads Helm's storage itself: releases are known only through the ``helm`` CLI.

DESIGN.md: Helm is driven through its own CLI, never re-implemented, "not its storage format".
Helm's release Secrets (``sh.helm.release.v1.<name>.v<N>``, labelled ``owner=helm``, base64 of
gzipped JSON) are Helm's business; reading them directly would tie the runbook to one storage
driver and one record format. The sandbox tests show the CLI path working for both majors
(tests/adapters/test_helm.py, tests/e2e/test_preflight_helm_cli.py).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import runbook_lib

PACKAGE = Path(runbook_lib.__file__).parent
# Text that only code decoding Helm's records would need.
STORAGE_MARKS = re.compile(
    r"sh\.helm\.release|owner=helm|release_records|helm_records|gzip|"
    r"list_namespaced_secret|read_namespaced_secret|list_secret_for_all_namespaces",
    re.IGNORECASE,
)
DECOMPRESSORS = {"gzip", "zlib", "lzma", "bz2"}


def modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 20, "the walk must see the package"
    return found


def test_no_module_mentions_helms_storage() -> None:
    hits = [
        f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
        for path in modules()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if STORAGE_MARKS.search(line)
    ]
    assert hits == []


def test_no_module_imports_a_decompressor() -> None:
    hits = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            hits += [f"{path.name}: {n}" for n in names if n.split(".")[0] in DECOMPRESSORS]
    assert hits == []


@pytest.mark.parametrize(
    "module",
    [
        "runbook_lib.core.release_records",
        "runbook_lib.adapters.helm_records",
        "runbook_lib.steps.release_source",
    ],
)
def test_the_record_decoders_are_gone(module: str) -> None:
    assert importlib.util.find_spec(module) is None


def test_the_marks_would_be_found() -> None:
    # The patterns above must match what a decoder would contain, or the scan proves nothing.
    for text in ('label_selector="owner=helm,name=app"', "gzip.decompress(raw)",
                 "sh.helm.release.v1.app.v2", "kube.core.list_namespaced_secret("):  # fmt: skip
        assert STORAGE_MARKS.search(text), text
