"""Preflight reads the release from Helm's records, and from the helm CLI when it must.

The direct read is an optimisation only: the same target must come out either way, and a
release Helm keeps elsewhere (``HELM_DRIVER``) is never looked for in Secrets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from runbook_lib import steps
from runbook_lib.errors import ApiError, CommandFailed
from runbook_lib.steps import release_source

from .test_steps import deploy_bad_version, events, snapshot, start

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture
def bad_deploy(sandbox: Sandbox) -> Sandbox:
    return deploy_bad_version(sandbox)


def preflight_messages(ctx: steps.RunContext) -> list[str]:
    return [e["message"] for e in events(ctx) if e["step"] == "preflight"]


def test_records_and_helm_cli_resolve_the_same_plan(
    bad_deploy: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = start(bad_deploy, tmp_path / "direct", dry_run=True)
    steps.assess(direct)
    steps.decide(direct)
    direct_plan = steps.preflight(direct)
    assert "read 2 helm records of app in one API call" in preflight_messages(direct)

    # A double for what the sandbox cannot produce on demand: records helm can read but the
    # runbook cannot (say, a record format newer than this code).
    def unreadable(*_args: object) -> None:
        raise ApiError("injected: records unreadable", command="list secrets")

    monkeypatch.setattr(release_source, "read_release", unreadable)
    via_cli = start(bad_deploy, tmp_path / "cli", dry_run=True)
    steps.assess(via_cli)
    steps.decide(via_cli)
    cli_plan = steps.preflight(via_cli)
    assert any("asking the helm CLI" in m for m in preflight_messages(via_cli))

    assert isinstance(direct_plan, steps.Plan)
    assert direct_plan == cli_plan  # revisions, images, commands: the whole plan
    assert direct.state.target is not None
    assert direct.state.target.target.number == 1
    assert direct.state.expected_images == via_cli.state.expected_images
    assert direct.state.history == via_cli.state.history


def test_another_helm_driver_is_asked_through_the_helm_cli(
    bad_deploy: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(bad_deploy)
    # With ConfigMaps as storage, helm finds no release "app" (it lives in Secrets here): the
    # runbook must report that, not quietly use the Secrets it was told not to trust.
    with monkeypatch.context() as env:
        env.setenv("HELM_DRIVER", "configmap")
        ctx = start(bad_deploy, tmp_path, deployed_at=datetime.now(UTC))
        steps.assess(ctx)
        steps.decide(ctx)
        with pytest.raises(CommandFailed, match="release: not found"):
            steps.preflight(ctx)
    assert "helm keeps releases in 'configmap': asking the helm CLI" in preflight_messages(ctx)
    assert snapshot(bad_deploy) == before
