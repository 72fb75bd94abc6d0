"""The Helm adapter against the sandbox's real cluster, with Helm 3 and Helm 4.

Everything the runbook knows about a release's revisions comes through these three commands
(``helm history -o json``, ``helm get values --revision N``, ``helm get manifest --revision N``),
so each is checked for every revision of a history that holds an install, a deploy, a rollback
made by the same Helm major and a deploy with extra values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_faults import Blackhole, free_port, kubeconfig_via

from runbook_lib.adapters.helm import Helm
from runbook_lib.adapters.kube import Kube
from runbook_lib.core.images import expected_images, image_mismatches
from runbook_lib.core.revisions import resolve_target
from runbook_lib.core.rollout import rollout_state
from runbook_lib.errors import CommandFailed, ParameterError

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


def deployment_replicas(manifest: str) -> int:
    """``spec.replicas`` of the Deployment in a rendered manifest."""
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return int(deployment["spec"]["replicas"])


def test_history_values_and_manifest_of_every_revision(helm: Helm, clean_sandbox: Any) -> None:
    sb = clean_sandbox
    sb.deploy("v1.1.0")  # revision 2
    helm.rollback("app", 1, timeout_s=60)  # revision 3, made by the Helm under test
    sb.deploy("v1.1.0", values={"replicaCount": "3"})  # revision 4

    history = helm.history("app")
    assert [r.number for r in history] == [1, 2, 3, 4]
    assert [r.status for r in history] == ["superseded"] * 3 + ["deployed"]
    assert [r.app_version for r in history] == ["v1.0.0", "v1.1.0", "v1.0.0", "v1.1.0"]
    assert [r.chart for r in history] == ["app-1.0.0", "app-1.1.0", "app-1.0.0", "app-1.1.0"]
    assert [r.rolled_back_to for r in history] == [None, None, 1, None]
    assert all(r.updated.tzinfo is not None for r in history)
    assert [r.updated for r in history] == sorted(r.updated for r in history)

    values = {r.number: helm.values("app", r.number) for r in history}
    assert values == {
        1: {"image": {"tag": "v1.0.0"}},
        2: {"image": {"tag": "v1.1.0"}},
        3: {"image": {"tag": "v1.0.0"}},  # a rollback restores the values too
        4: {"image": {"tag": "v1.1.0"}, "replicaCount": 3},
    }

    manifests = {r.number: helm.manifest("app", r.number) for r in history}
    images = {n: expected_images(m, name="app") for n, m in manifests.items()}
    assert images == {1: (GOOD,), 2: (BAD,), 3: (GOOD,), 4: (BAD,)}
    assert [deployment_replicas(manifests[n]) for n in (1, 2, 3, 4)] == [4, 4, 4, 3]
    assert manifests[3] == manifests[1]  # the rollback re-applied revision 1 as it was

    # The one rollback that matters, resolved from these answers alone: back to the last
    # good revision before the deploy being undone (3), by its number; then nothing to do.
    plan = resolve_target(history, values_by_revision=values)
    assert (plan.current.number, plan.target.number, plan.already_rolled_back) == (4, 3, False)
    helm.rollback("app", plan.target.number, timeout_s=60)
    after = helm.history("app")
    assert [(r.number, r.status) for r in after[-2:]] == [(4, "superseded"), (5, "deployed")]
    assert after[-1].rolled_back_to == 3
    assert helm.values("app", 5) == values[3]
    again = resolve_target(
        after, values_by_revision={r.number: helm.values("app", r.number) for r in after}
    )
    assert (again.target.number, again.already_rolled_back) == (3, True)


def test_a_release_installed_without_values_has_empty_values(
    helm: Helm, sandbox: Any, tmp_path: Path
) -> None:
    # A chart of one ConfigMap: nothing in it can disturb the sandbox's release "app".
    chart = tmp_path / "plain"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: plain\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  greeting: hello\n"
    )
    name = f"plain-{Path(helm.binary).name}"
    sandbox.helm("install", name, str(chart), "--namespace", "default")
    try:
        assert helm.values(name, 1) == {}  # helm prints null for "no user values"
        (only,) = helm.history(name)
        assert (only.number, only.status, only.chart, only.app_version) == (
            1, "deployed", "plain-0.1.0", "",
        )  # fmt: skip
        (config_map,) = [d for d in yaml.safe_load_all(helm.manifest(name, 1)) if d]
        assert config_map["metadata"]["name"] == name
    finally:
        sandbox.helm("uninstall", name, "--namespace", "default")


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
