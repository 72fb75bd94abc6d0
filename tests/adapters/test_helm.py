"""The Helm adapter against the sandbox's real cluster, with Helm 3 and Helm 4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cluster_faults import Blackhole, free_port, kubeconfig_via

from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.kube import Kube
from runbook_lib.core.images import expected_images, image_mismatches
from runbook_lib.core.revisions import resolve_target
from runbook_lib.core.rollout import rollout_state
from runbook_lib.errors import CommandFailed, ParameterError

pytestmark = pytest.mark.sandbox

GOOD = "registry.local/api:v1.0.0"
BAD = "registry.local/api:v1.1.0"


def make_helm(sandbox: Any, binary: str, **kwargs: Any) -> Helm:
    options: dict[str, Any] = {
        "kubeconfig": sandbox.kubeconfig,
        "context": sandbox.context,
        "namespace": "default",
        "timeout_s": 60.0,
    }
    options.update(kwargs)
    return Helm(binary=str(sandbox.bin_dir / binary), **options)


@pytest.fixture(params=["helm", "helm4"])
def helm(request: pytest.FixtureRequest, sandbox: Any) -> Helm:
    return make_helm(sandbox, request.param)


def test_major_version_is_detected(sandbox: Any) -> None:
    assert make_helm(sandbox, "helm").major_version() == 3
    assert make_helm(sandbox, "helm4").major_version() == 4


def test_rollback_to_resolved_revision_then_second_run_is_a_no_op(
    helm: Helm, clean_sandbox: Any
) -> None:
    clean_sandbox.deploy("v1.1.0")
    before = helm.history("app")
    assert [r.app_version for r in before] == ["v1.0.0", "v1.1.0"]
    assert before[-1].status == "deployed"

    values = {r.number: helm.values("app", r.number) for r in before}
    assert values[1] != values[2]  # the deploy changed image.tag
    plan = resolve_target(before, values_by_revision=values)
    assert (plan.current.number, plan.target.number) == (2, 1)
    assert expected_images(helm.manifest("app", plan.target.number), name="app") == (GOOD,)
    assert expected_images(helm.manifest("app", plan.current.number), name="app") == (BAD,)

    helm.rollback("app", plan.target.number, timeout_s=60)

    after = helm.history("app")
    assert len(after) == 3
    assert after[-1].status == "deployed"
    assert after[-1].app_version == "v1.0.0"
    assert after[-1].rolled_back_to == 1
    assert [r.status for r in after[:-1]] == ["superseded", "superseded"]

    # A second run resolves "already rolled back" instead of flipping back to v1.1.0.
    values = {r.number: helm.values("app", r.number) for r in after}
    again = resolve_target(after, values_by_revision=values)
    assert again.already_rolled_back
    assert again.target.number == 1

    # No --wait: helm returned after applying; the pods converge to the target's image.
    with Kube(kubeconfig=clean_sandbox.kubeconfig, context=clean_sandbox.context) as kube:
        for status in kube.watch_deployment("default", "app", timeout_s=120):
            if rollout_state(status).done:
                break
        assert rollout_state(kube.deployment_status("default", "app")).done
        assert image_mismatches(kube.pods("default", "app=api"), (GOOD,)) == []


@pytest.mark.parametrize("revision", [0, -1])
def test_rollback_refuses_revision_zero_without_running_helm(sandbox: Any, revision: int) -> None:
    helm = make_helm(sandbox, "helm")
    before = helm.history("app")
    with pytest.raises(ParameterError, match="explicit revision"):
        helm.rollback("app", revision, timeout_s=30)
    assert helm.history("app") == before


def test_rollback_command_is_an_argv_with_cluster_flags(sandbox: Any) -> None:
    argv = make_helm(sandbox, "helm4").rollback_command("app", 3, timeout_s=90.5)
    assert argv[1:5] == ["rollback", "app", "3", "--timeout"]
    assert argv[5] == "91s"
    assert "--wait" not in argv
    assert argv[argv.index("--kube-context") + 1] == sandbox.context
    assert argv[argv.index("--kubeconfig") + 1] == str(sandbox.kubeconfig)
    assert argv[argv.index("--namespace") + 1] == "default"


def test_missing_binary_is_not_retryable_and_names_it(sandbox: Any, tmp_path: Path) -> None:
    helm = Helm(binary=str(tmp_path / "no-such-helm"), kubeconfig=sandbox.kubeconfig)
    with pytest.raises(CommandFailed, match="no-such-helm") as info:
        helm.history("app")
    assert not info.value.retryable


def test_unknown_release_fails_with_helms_message(helm: Helm) -> None:
    with pytest.raises(CommandFailed) as info:
        helm.history("no-such-release")
    assert "not found" in info.value.stderr
    assert "history no-such-release" in info.value.command
    assert not info.value.retryable
    assert info.value.returncode == 1


def test_unknown_revision_fails(helm: Helm) -> None:
    with pytest.raises(CommandFailed, match="exited with status"):
        helm.manifest("app", 999)


def test_api_server_unreachable_is_retryable(helm: Helm, sandbox: Any, tmp_path: Path) -> None:
    config = kubeconfig_via(sandbox.kubeconfig, sandbox.context, free_port(), tmp_path / "kc")
    down = make_helm(sandbox, Path(helm.binary).name, kubeconfig=config)
    with pytest.raises(CommandFailed) as info:
        down.history("app")
    assert info.value.retryable
    assert "connection refused" in info.value.stderr.lower()


def test_hanging_api_server_is_killed_at_the_timeout(sandbox: Any, tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        config = kubeconfig_via(sandbox.kubeconfig, sandbox.context, hole.port, tmp_path / "kc")
        stuck = make_helm(sandbox, "helm", kubeconfig=config, timeout_s=2.0)
        with pytest.raises(CommandFailed, match="did not finish within 2 s") as info:
            stuck.history("app")
    finally:
        hole.close()
    assert info.value.retryable
