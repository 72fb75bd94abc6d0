"""Preflight learns about the release only from the ``helm`` CLI, after the decision.

The helm binary the run is given is a wrapper that logs its arguments and then runs the real
Helm 3 or Helm 4: what preflight asked is then read from the log, not assumed. It must read a
fresh ``helm history`` (nothing from before the decision is trusted), the values of exactly
the revisions the target scan compares, and the target's manifest by its explicit number.
Each test deploys on a release of its own (the plugin's ``release`` and ``deploy``).
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sandbox_runs import release_run

from runbook_lib import steps
from runbook_lib.errors import CommandFailed
from runbook_sandbox.team import TeamRelease

from .test_steps import events


def start(release: TeamRelease, tmp_path: Path, **over: Any) -> steps.RunContext:
    """A run against the release with what preflight needs (the parameter vocabulary's names)."""
    return steps.start_run(**(release_run(release, tmp_path, "e2e-preflight", step="5s") | over))


def logging_helm(real: Path, folder: Path) -> tuple[Path, Path]:
    """A helm that appends its subcommand line to a log, then execs ``real``."""
    log = folder / "helm-calls.log"
    wrapper = folder / "helm"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def calls(log: Path) -> list[str]:
    """Each logged helm call up to its first flag, e.g. ``get values app --revision 2``."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        words = line.split(" --namespace ")[0]  # the cluster flags are appended last
        out.append(words.replace(" --output json", ""))
    return out


@pytest.mark.parametrize("binary", ["helm", "helm4"])
def test_preflight_reads_history_needed_values_and_target_manifest_through_helm(
    release: TeamRelease, deploy: Callable[..., int], tmp_path: Path, binary: str
) -> None:
    sb = release
    # Revision 2 has revision 1's chart and app version, only other values: the target scan
    # must compare values to tell them apart, so preflight has to fetch them.
    deploy(values={"replicaCount": "3"})
    wrapper, log = logging_helm(sb.sandbox.bin_dir / binary, tmp_path)
    ctx = start(sb, tmp_path, helm_binary=str(wrapper), dry_run=True)
    steps.assess(ctx)
    steps.decide(ctx)
    before_preflight = len(calls(log))
    assert calls(log) == ["history app"]  # assess: deployed_at from the current revision

    plan = steps.preflight(ctx)

    assert isinstance(plan, steps.Plan)
    target = ctx.live.target
    assert target is not None
    assert (target.current.number, target.target.number) == (2, 1)
    assert calls(log)[before_preflight:] == [
        "history app",  # fresh, after the decision
        "get values app --revision 1",
        "get values app --revision 2",
        "get manifest app --revision 1",
    ]
    resolved = ctx.facts.target
    assert resolved is not None
    assert resolved.expected_images == ("registry.local/api:v1.0.0",)
    # The plan names the rollback by its explicit number, with the binary it was given.
    assert f"{wrapper} rollback app 1 --timeout" in plan.render()


def test_preflight_fetches_no_values_when_charts_already_differ(
    release: TeamRelease, deploy: Callable[..., int], tmp_path: Path
) -> None:
    sb = release
    deploy("v1.1.0")
    wrapper, log = logging_helm(sb.sandbox.bin_dir / "helm", tmp_path)
    ctx = start(sb, tmp_path, helm_binary=str(wrapper), dry_run=True, deployed_at=datetime.now(UTC))
    steps.assess(ctx)
    steps.decide(ctx)
    assert calls(log) == []  # deployed_at was given: assess needed no helm
    steps.preflight(ctx)
    assert calls(log) == ["history app", "get manifest app --revision 1"]


def test_helm_storage_is_helms_business(
    release: TeamRelease,
    deploy: Callable[..., int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sb = release
    deploy("v1.1.0")
    before = sb.snapshot()
    # Helm told to keep releases in ConfigMaps finds no release "app" (it lives in Secrets
    # here); the runbook reports Helm's answer and changes nothing.
    monkeypatch.setenv("HELM_DRIVER", "configmap")
    ctx = start(sb, tmp_path, deployed_at=datetime.now(UTC))
    steps.assess(ctx)
    steps.decide(ctx)
    with pytest.raises(CommandFailed, match="exited with status") as info:
        steps.preflight(ctx)
    assert "not found" in info.value.stderr
    monkeypatch.delenv("HELM_DRIVER")
    assert sb.snapshot() == before
    assert any(e["step"] == "preflight" and e["kind"] == "step_failed" for e in events(ctx))
