"""The demo release ``app``: install, upgrade to a version, migrate, and reset.

Each version is packaged from ``sandbox/chart/app`` with its chart version and appVersion set
from the version, so ``helm history app`` reads like a real service's history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from runbook_lib.errors import CommandFailed, ParameterError
from runbook_sandbox import paths
from runbook_sandbox.cluster import ClusterEnv, run

__all__ = [
    "GOOD_VERSION",
    "NAMESPACE",
    "RELEASE",
    "deploy",
    "history",
    "is_pristine",
    "migrate",
    "migrations_tool",
    "reset",
]

RELEASE = "app"
NAMESPACE = "default"
GOOD_VERSION = "v1.0.0"
CHART_DIR = paths.chart_dir()
_VERSION = re.compile(r"^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$")


def migrations_tool() -> Path:
    return paths.migrations_dir() / "migrate"


def _kubectl(ce: ClusterEnv, *args: str, timeout_s: float = 60.0) -> str:
    argv = ["kubectl", "--context", ce.context, "--namespace", NAMESPACE, *args]
    return run(ce, argv, timeout_s=timeout_s).stdout


def _helm(ce: ClusterEnv, *args: str, timeout_s: float = 180.0) -> str:
    argv = [
        str(ce.bin_dir / "helm"),
        "--kubeconfig",
        str(ce.kubeconfig),
        "--kube-context",
        ce.context,
        "--namespace",
        NAMESPACE,
        *args,
    ]
    return run(ce, argv, timeout_s=timeout_s).stdout


def _package(ce: ClusterEnv, version: str) -> Path:
    match = _VERSION.match(version)
    if not match:
        raise ParameterError([f"version: {version!r} is not of the form vMAJOR.MINOR.PATCH"])
    out = ce.state / "charts"
    out.mkdir(parents=True, exist_ok=True)
    chart_version = match.group(1)
    _helm(
        ce,
        "package",
        str(CHART_DIR),
        "--version",
        chart_version,
        "--app-version",
        version,
        "--destination",
        str(out),
    )
    return out / f"app-{chart_version}.tgz"


def deploy(
    ce: ClusterEnv,
    version: str,
    *,
    values: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = 120.0,
    run_migrations: bool = True,
    values_file: Path | None = None,
) -> None:
    """Upgrade (or install) release ``app`` to ``version``, then migrate the schema for it.

    This is the deploy the runbook later undoes (``runbook sandbox deploy VERSION``). With
    ``wait`` it returns once the rollout is complete. ``values`` are extra ``--set`` pairs,
    e.g. ``{"faults.unschedulable": "true"}`` for a rollout that never completes (pass
    ``wait=False`` then); ``values_file`` is a ``-f`` values file (any text, e.g. the chart's
    test-only ``env`` and ``secret``). Raises ``ParameterError`` for a malformed version and
    ``CommandFailed`` when helm, the rollout or the migration fails.
    """
    chart = _package(ce, version)
    args = ["upgrade", "--install", RELEASE, str(chart), "--set", f"image.tag={version}"]
    for key, value in (values or {}).items():
        args += ["--set", f"{key}={value}"]
    if values_file is not None:
        args += ["-f", str(values_file)]
    if wait:
        args += ["--wait", "--timeout", f"{timeout_s:.0f}s"]
    _helm(ce, *args, timeout_s=timeout_s + 30)
    if wait:
        _kubectl(
            ce,
            "rollout",
            "status",
            "deployment/app",
            f"--timeout={timeout_s:.0f}s",
            timeout_s=timeout_s + 10,
        )
    if run_migrations and migrations_tool().exists():
        migrate(ce, "for-app", version)


def migrate(ce: ClusterEnv, *args: str, timeout_s: float = 60.0) -> str:
    """Run ``./migrate ARGS`` in the migrator pod (kwok ClusterExec runs it on this host)."""
    _kubectl(ce, "wait", "--for=condition=Ready", "pod/migrator", f"--timeout={timeout_s:.0f}s")
    return _kubectl(ce, "exec", "migrator", "--", "./migrate", *args, timeout_s=timeout_s)


def history(ce: ClusterEnv) -> list[dict[str, object]]:
    """``helm history app -o json``; empty when the release is not installed."""
    argv = [
        str(ce.bin_dir / "helm"),
        "--kube-context",
        ce.context,
        "--namespace",
        NAMESPACE,
        "history",
        RELEASE,
        "-o",
        "json",
    ]
    proc = run(ce, argv, check=False)
    if proc.returncode != 0:
        if "not found" in proc.stderr:
            return []
        raise CommandFailed("helm history failed", command=" ".join(argv), stderr=proc.stderr)
    data: list[dict[str, object]] = json.loads(proc.stdout)
    return data


def is_pristine(ce: ClusterEnv) -> bool:
    """One revision, the good version, deployed and fully rolled out."""
    revisions = history(ce)
    if len(revisions) != 1:
        return False
    only = revisions[0]
    if only.get("status") != "deployed" or only.get("app_version") != GOOD_VERSION:
        return False
    status = json.loads(_kubectl(ce, "get", "deployment/app", "-o", "json"))["status"]
    replicas = status.get("replicas", 0)
    return bool(
        replicas
        and status.get("updatedReplicas") == replicas
        and status.get("readyReplicas") == replicas
        and status.get("availableReplicas") == replicas
    )


def reset(ce: ClusterEnv, *, timeout_s: float = 120.0) -> None:
    """Back to one good revision: release at v1.0.0, schema at v1.0.0, no rollback lock.

    ``runbook sandbox reset``; the test fixtures call it between tests. Uninstalling and
    installing again is what leaves exactly one revision in ``helm history``.
    """
    # A lock left by an interrupted rollback run would block the next test's run.
    _kubectl(ce, "delete", "lease", "--ignore-not-found", "runbook-rollback-app")
    if not is_pristine(ce):
        if history(ce):
            _helm(ce, "uninstall", RELEASE, "--wait", "--timeout", f"{timeout_s:.0f}s")
        deploy(ce, GOOD_VERSION, timeout_s=timeout_s, run_migrations=False)
    if migrations_tool().exists():
        migrate(ce, "for-app", GOOD_VERSION)
