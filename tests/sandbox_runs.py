"""What every end-to-end run against the sandbox is given, in the parameter vocabulary."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox_waits import release_series

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox
    from runbook_sandbox.team import TeamRelease

__all__ = ["RUNBOOK", "lease_holder", "release_run", "rollback_argv", "sandbox_run"]

RUNBOOK = Path(sys.executable).parent / "runbook"


def sandbox_run(sb: Sandbox, tmp_path: Path, incident_id: str, **over: Any) -> dict[str, Any]:
    """The sandbox's cluster, helm and Prometheus (a 20 s rate window: a steady ratio at 200
    req/s, short lag), a rollback decided by hand and confirmed, no console, the evidence in
    ``tmp_path/evidence``; ``over`` adds to or replaces any of those."""
    params: dict[str, Any] = {
        **sb.run_parameters,
        "helm_binary": str(sb.bin_dir / "helm"),
        "prometheus_rate_window": "20s",
        "manual_reason": "e2e: on-call decided to roll back",
        "confirm": True,
        "console": False,
        "output_dir": str(tmp_path / "evidence"),
        "incident_id": incident_id,
    }
    return params | over


def release_run(
    release: TeamRelease, tmp_path: Path, incident_id: str, **over: Any
) -> dict[str, Any]:
    """``sandbox_run`` on a release of its own (the plugin's ``release``): its namespace, its
    name and its series only; once Prometheus has those series (a run's assessment reads
    them at once)."""
    release_series(release, str(over.get("prometheus_rate_window", "20s")))
    own = release.parameters()
    where = {k: own[k] for k in ("namespace", "release", "prometheus_selector")}
    return sandbox_run(release.sandbox, tmp_path, incident_id, **where) | over


def rollback_argv(params: Mapping[str, Any]) -> list[str]:
    """``runbook run rollback --quiet`` with ``params``: text as it is (``-r``), anything
    else as a Python value (``-p``)."""
    argv = [str(RUNBOOK), "run", "rollback", "--quiet"]
    for name, value in params.items():
        argv += ["-r" if isinstance(value, str) else "-p", name, str(value)]
    return argv


def lease_holder(sb: Sandbox) -> str | None:
    """Who holds release ``app``'s rollback lock (its Lease) in the sandbox; None: nobody."""
    out = sb.kubectl(
        "get", "lease", "runbook-rollback-app", "--ignore-not-found",
        "-o", "jsonpath={.spec.holderIdentity}",
    )  # fmt: skip
    return out.strip() or None
