"""Helm's records read straight from their Secrets answer exactly what the helm CLI answers.

A differential test on the sandbox, for Helm 3 and Helm 4: after an install, a deploy, a
rollback made by that major and a deploy with extra values, every revision's history row,
values and manifest read through ``read_release`` equal what ``helm history``, ``helm get
values`` and ``helm get manifest`` print.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.helm_records import read_release
from runbook_lib.adapters.kube import Kube
from runbook_lib.errors import AdapterError

pytestmark = pytest.mark.sandbox


def kube_of(sandbox: Any) -> Kube:
    return Kube(kubeconfig=sandbox.kubeconfig, context=sandbox.context)


@pytest.mark.parametrize("binary", ["helm", "helm4"])
def test_records_read_directly_equal_the_helm_cli(binary: str, clean_sandbox: Any) -> None:
    sb = clean_sandbox
    helm = Helm(
        binary=str(sb.bin_dir / binary), kubeconfig=sb.kubeconfig, context=sb.context,
        namespace="default",
    )  # fmt: skip
    sb.deploy("v1.1.0")
    helm.rollback("app", 1, timeout_s=60)
    with kube_of(sb) as kube:
        after_rollback = read_release(kube, "default", "app")
    assert after_rollback is not None
    rollback = after_rollback.history("app")[-1]
    assert (rollback.number, rollback.rolled_back_to) == (3, 1)
    # Helm 4 writes the restored revision into the record; Helm 3 only into the description
    # (and a later Helm 3 upgrade rewrites the record without Helm 4's field).
    assert rollback.rollback_revision == (1 if binary == "helm4" else None)
    sb.deploy("v1.1.0", values={"replicaCount": "3"})

    with kube_of(sb) as kube:
        snapshot = read_release(kube, "default", "app")
    assert snapshot is not None
    cli_history = helm.history("app")
    assert [r.number for r in cli_history] == [1, 2, 3, 4]
    assert snapshot.history("app") == cli_history  # status, chart, times, descriptions
    for number in (1, 2, 3, 4):
        assert snapshot.values("app", number) == helm.values("app", number), number
        # helm 3 prints the stored manifest followed by a newline of its own
        printed = helm.manifest("app", number)
        assert printed.rstrip("\n") == snapshot.manifest("app", number).rstrip("\n"), number
    assert snapshot.values("app", 4) == {"image": {"tag": "v1.1.0"}, "replicaCount": 3}


def test_a_release_without_records_reads_as_none(sandbox: Any) -> None:
    with kube_of(sandbox) as kube:
        assert read_release(kube, "default", "no-such-release") is None


def test_a_labelled_secret_that_is_no_record_fails_the_read_naming_it(
    clean_sandbox: Any,
) -> None:
    sb = clean_sandbox
    junk = base64.b64encode(b"not a helm record").decode()
    sb.kubectl("create", "secret", "generic", "sh.helm.release.v1.app.v99",
               f"--from-literal=release={junk}")  # fmt: skip
    try:
        sb.kubectl("label", "secret", "sh.helm.release.v1.app.v99", "owner=helm", "name=app")
        with kube_of(sb) as kube, pytest.raises(AdapterError, match=r"app\.v99: .*not JSON"):
            read_release(kube, "default", "app")
    finally:
        sb.kubectl("delete", "secret", "sh.helm.release.v1.app.v99")
