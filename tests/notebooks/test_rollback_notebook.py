"""The rollback notebook, run headlessly the way an engineer or CI runs it.

Replay tests need no cluster: a healthy deploy stops cleanly after the decision; a bad deploy
aimed at a cluster that is not the expected one fails at the guard, which is the "failing step
mid-run" path (partial notebook, evidence, non-zero exit). Sandbox tests roll a real (local)
release back. Every run plants secrets in the parameters, the environment and the kubeconfig
(and, on the sandbox, the pod logs) and checks none of them reaches the bundle.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
import yaml
from sandbox_waits import pods_have_logged

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "rollback.ipynb"
DATA = REPO / "notebooks" / "data"
RUNBOOK = Path(sys.executable).parent / "runbook"
PAPERMILL = Path(sys.executable).parent / "papermill"

# Planted secrets: none may appear in any file of the bundle.
WEBHOOK_SECRET = "pl4ntedW3bhookPath"
WEBHOOK = f"https://hooks.slack.com/services/T0TEST/B0TEST/{WEBHOOK_SECRET}"
ENV_SECRET = "envPlantedApiToken7781"
KUBE_TOKEN = "kubePlantedBearer5521"
LOG_SECRET = "logPlantedPassw0rd"
SECRETS = (WEBHOOK_SECRET, ENV_SECRET, KUBE_TOKEN, LOG_SECRET)

REPLAY = {
    "deployed_at": "2026-11-20T14:00:00+00:00",
    "now": "2026-11-20T14:30:00+00:00",
}


def _foreign_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a cluster that is not the expected one, holding a planted token."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- cluster: {server: 'https://127.0.0.1:9'}\n  name: other\n"
        "contexts:\n- context: {cluster: other, user: oncall}\n  name: some-other-cluster\n"
        "current-context: some-other-cluster\n"
        f"users:\n- name: oncall\n  user: {{token: {KUBE_TOKEN}}}\n"
    )
    return path


def _run(
    tmp_path: Path, params: Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    incident = str(params.get("incident_id", "INC-TEST"))
    argv = [str(RUNBOOK), "run", "rollback", "--quiet", "--output-dir", str(tmp_path / "ev")]
    for name, value in {"incident_id": incident, **params}.items():
        argv += ["-p", name, str(value)]
    full_env = {**os.environ, **(env or {}), "RUNBOOK_TEST_API_TOKEN": ENV_SECRET}
    result = subprocess.run(
        argv, capture_output=True, text=True, env=full_env, timeout=900, check=False
    )
    return result, tmp_path / "ev" / incident


def _run_with_planted_secrets(
    tmp_path: Path, replay: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """A confirmed run over the bundled ``replay`` against the foreign cluster, with secrets
    planted in its kubeconfig, the Slack webhook URL and the environment."""
    params = {
        "replay_csv": DATA / replay,
        "expected_cluster": "kwok-runbook",
        "kubeconfig": _foreign_kubeconfig(tmp_path),
        "slack_webhook_url": WEBHOOK,
        "confirm": True,
    }
    return _run(tmp_path, params | REPLAY)


def _events(incident_dir: Path) -> list[dict[str, Any]]:
    lines = (incident_dir / "timeline.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line]


def _assert_no_secrets(incident_dir: Path, result: subprocess.CompletedProcess[str]) -> None:
    for path in incident_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in content, f"{secret} leaked into {path.name}"
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


def _verify(incident_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RUNBOOK), "verify-evidence", str(incident_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_healthy_replay_stops_cleanly_and_changes_nothing(tmp_path: Path) -> None:
    result, incident = _run_with_planted_secrets(tmp_path, "healthy_deploy.csv")
    assert result.returncode == 0, result.stderr
    executed = nbformat.read(incident / "rollback.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]  # fmt: skip
    assert errors == []
    events = _events(incident)
    decision = next(e for e in events if e["data"].get("fact") == "decided")
    assert decision["data"]["decision"]["rollback"] is False
    assert decision["data"]["verdict"] == "no_rollback"
    skipped = {e["step"] for e in events if "skipped: no rollback needed" in e["message"]}
    assert {"preflight", "helm_rollback", "revert_migrations", "draft_postmortem"} <= skipped
    # The cluster was never contacted: no step past the decision started, except the ones
    # that keep this run's record ("we looked, and why not").
    started = [e["step"] for e in events if e["kind"] == "step_start"]
    assert started[:5] == ["assess", "plot_assessment", "decide", "finish", "write_record"]
    assert set(started[5:]) <= {"save_notebook"}
    assert json.loads((incident / "record.json").read_text())["outcome"] == "no_rollback"
    assert (incident / "plots" / "before.png").stat().st_size > 1000
    assert (incident / "rollback.html").exists()
    assert _verify(incident).returncode == 0
    _assert_no_secrets(incident, result)


def test_failing_step_mid_run_leaves_partial_notebook_and_evidence(tmp_path: Path) -> None:
    result, incident = _run_with_planted_secrets(tmp_path, "bad_deploy.csv")
    assert result.returncode == 6  # refused before any change
    assert "WrongCluster" in result.stderr
    executed = nbformat.read(incident / "rollback.ipynb", as_version=4)
    failing = [c for c in executed.cells if c.cell_type == "code"
               and any(o.output_type == "error" for o in c.outputs)]  # fmt: skip
    assert [c.source for c in failing] == ["rb.preflight(ctx)"]
    assert "some-other-cluster" in (incident / "rollback.html").read_text()
    record = json.loads((incident / "record.json").read_text())
    assert record["outcome"] == "refused"  # the cluster guard stopped it before any change
    assert record["rolled_back"] is False
    assert [s["step"] for s in record["steps"] if s["status"] == "failed"] == ["preflight"]
    assert {t["rule"] for t in record["triggers"]} >= {"error_rate", "latency_p99"}
    assert (incident / "metrics" / "samples.csv").exists()
    # A cluster that is not the expected one is not read from at all, not even for evidence.
    assert not (incident / "kubernetes").exists()
    assert not (incident / "helm").exists()
    assert _verify(incident).returncode == 0
    _assert_no_secrets(incident, result)


def test_tampered_evidence_is_detected(tmp_path: Path) -> None:
    result, incident = _run(
        tmp_path,
        {"replay_csv": DATA / "healthy_deploy.csv", "expected_cluster": "x",
         "kubeconfig": _foreign_kubeconfig(tmp_path), **REPLAY},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with (incident / "timeline.jsonl").open("a") as fh:
        fh.write('{"note": "edited afterwards"}\n')
    check = _verify(incident)
    assert check.returncode == 2  # any change fails verification with exit 2
    assert "modified: timeline.jsonl" in check.stdout


def test_plain_papermill_runs_the_notebook(tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    argv = [str(PAPERMILL), str(NOTEBOOK), str(out), "--cwd", str(NOTEBOOK.parent),
            "-p", "replay_csv", str(DATA / "healthy_deploy.csv"), "-p", "expected_cluster", "x",
            "-p", "kubeconfig", str(_foreign_kubeconfig(tmp_path)),
            "-p", "output_dir", str(tmp_path / "ev"), "-p", "incident_id", "INC-PM"]  # fmt: skip
    for name, value in REPLAY.items():
        argv += ["-p", name, value]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ev" / "INC-PM" / "timeline.jsonl").exists()
    assert _verify(tmp_path / "ev" / "INC-PM").returncode == 0


# --- on the sandbox -------------------------------------------------------------------------

# Demo-length windows so a test takes a minute, not the runbook's half hour (the notebook's
# defaults stay the runbook's).
SHORT = {
    "sustain": "10s",
    "step": "2s",  # sample spacing, also the recovery check's
    "recovery_poll": "2s",
    "recovery_within": "2m",
    "prometheus_rate_window": "10s",
    "business_smoothing": "30s",
}


def _sandbox_params(sandbox: Sandbox, **extra: Any) -> dict[str, Any]:
    return {
        **sandbox.run_parameters,
        "slack_webhook_url": WEBHOOK,
        **SHORT,
        **extra,
    }


def _wait_for_healthy_rates(sandbox: Sandbox, timeout_s: float = 120) -> None:
    """Until the release's 5xx ratio, over the run's rate window, has stayed under 1% for a
    sustain: what the sandbox served before is out of what a run reads next."""
    sel = 'release="app",namespace="default"'
    window = SHORT["prometheus_rate_window"]
    ratio = (
        f'sum(rate(http_requests_total{{{sel},code=~"5.."}}[{window}]))'
        f" / sum(rate(http_requests_total{{{sel}}}[{window}]))"
    )
    query = f"max_over_time(({ratio})[{SHORT['sustain']}:1s])"
    url = f"{sandbox.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            found = json.load(response)["data"]["result"]
        if found and float(found[0]["value"][1]) < 0.01:
            return
        assert time.monotonic() < deadline, f"the 5xx ratio stayed high: {found}"
        time.sleep(1)


def _pod_images(sandbox: Sandbox) -> set[str]:
    out = sandbox.kubectl(
        "get", "pods", "-l", "app=api", "-o", "jsonpath={.items[*].spec.containers[*].image}"
    )
    return set(out.split())


def _helm_revisions(sandbox: Sandbox) -> int:
    return len(json.loads(sandbox.helm("history", "app", "-o", "json")))


def _wait_for_breach(sandbox: Sandbox) -> None:
    """Until the rules, with the test's short thresholds, fire for the latest deploy."""
    from runbook_lib.core.kinds import parse
    from runbook_lib.core.settings import Rules, field_named
    from runbook_sandbox.breach import last_deploy_time, wait_for_breach

    def short(name: str) -> Any:
        return parse(field_named(name), SHORT[name])

    deployed_at = last_deploy_time(sandbox.helm("history", "app", "-o", "json"))
    wait_for_breach(
        sandbox.prometheus_url,
        deployed_at,
        rules=Rules(sustain=short("sustain")),
        rate_window=SHORT["prometheus_rate_window"],
        step_s=short("step"),
        timeout_s=180,
    )


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def _service_repo(tmp_path: Path) -> Path:
    """The service's source: v1.0.0 tagged, the bad v1.1.0 on top."""
    repo = tmp_path / "service"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for version in ("v1.0.0", "v1.1.0"):
        (repo / "VERSION").write_text(version)
        _git(repo, "add", "VERSION")
        _git(repo, "commit", "-q", "-m", f"release {version}")
        _git(repo, "tag", version)
    return repo


@pytest.fixture
def deployed_bad_release(clean_sandbox: Sandbox) -> Sandbox:
    """v1.1.0 deployed, its pods' logs holding planted secrets (and some of their 5xx)."""
    clean_sandbox.deploy("v1.1.0")
    log = clean_sandbox.state_dir / "logs" / "inject.log"
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with log.open("a") as fh:  # copied into every api pod's log, later pods too (CRI format)
        fh.write(f"{stamp} stdout F GET /login?user=bob&password={LOG_SECRET} 200\n")
        fh.write(f"{stamp} stdout F debug: outgoing Authorization: Bearer {ENV_SECRET}\n")
    pods_have_logged(clean_sandbox, "v1.1.0", containing=ENV_SECRET, failures=True)
    return clean_sandbox


@pytest.fixture
def bad_release(deployed_bad_release: Sandbox) -> Sandbox:
    """The bad release once its error and latency rules fire: a run judges a real breach."""
    _wait_for_breach(deployed_bad_release)
    return deployed_bad_release


# The runs that are not about the decision take the on-call's call instead of waiting for the
# bad version to breach (the decision itself: tests/unit; a real breach: the rollback above).
MANUAL = {"manual_reason": "test: on-call decided to roll back"}


def test_bad_deploy_is_rolled_back_and_evidence_verifies(
    bad_release: Sandbox, tmp_path: Path
) -> None:
    repo = _service_repo(tmp_path)
    result, incident = _run(
        tmp_path,
        _sandbox_params(bad_release, confirm=True, fix_forward_repo=repo),
        env=bad_release.env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _pod_images(bad_release) == {"registry.local/api:v1.0.0"}
    # Fix forward: the chart's commit is not in this repository, the v1.0.0 tag is.
    tagged = _git(repo, "rev-parse", "v1.0.0^{commit}")
    assert _git(repo, "rev-parse", "fix/INC-TEST") == tagged
    assert "fix/INC-TEST" in (incident / "postmortem.md").read_text()
    record = json.loads((incident / "record.json").read_text())
    assert record["outcome"] == "recovered"
    assert (record["bad_version"], record["good_version"]) == ("v1.1.0", "v1.0.0")
    assert record["decision_to_recovery_s"] is not None
    md = (incident / "record.md").read_text()
    assert "Outcome: **recovered**" in md
    # The sealed record says what happened first, and every step in its final state: it was
    # written after the notebook's last step, not by the step writing it.
    assert md.splitlines()[2] == "**Rolled back, recovered**"
    steps = md.split("## Steps")[1].split("##")[0]
    for step in ("preserve_evidence", "fix_forward", "draft_postmortem", "save_notebook"):
        assert f"| {step} |" in steps, step
    assert "running" not in steps
    assert "in progress" not in steps
    happened = md.split("## What happened (UTC)")[1].split("##")[0]
    assert "Rolled back revision 2 -> 1" in happened
    assert "5xx ratio back under 0.1 %" in happened
    postmortem = (incident / "postmortem.md").read_text()
    assert "**Rolled back, recovered**" in postmortem
    assert "Rolled back revision 2 -> 1" in postmortem.split("## What happened (UTC)")[1]
    assert not re.search(r"(\w+): \1 finished", postmortem), "a step name, not what happened"
    # No float's repr: every figure has its unit and a few digits. The decision's own reasons
    # and warnings are quoted as `runbook evaluate --json` gives them (six digits, which tools
    # compare), and the event table is the timeline as written: both are left out.
    head, _, rest = md.partition("## Every rule, as the decision judged it")
    written = head + rest.partition("\n## ")[2].partition("## Every event (UTC)")[0] + postmortem
    ours = [line for line in written.splitlines() if "(decide):" not in line]
    raw = [line for line in ours if re.search(r"\d\.\d{5,}", line)]
    assert not raw, f"a raw float in record.md/postmortem.md: {raw}"
    executed = json.loads((incident / "rollback.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    shown = [o for o in outputs if "runbook_summary" in o.get("metadata", {})]
    banner = "".join(shown[0]["data"]["text/plain"])
    assert banner.splitlines()[0].endswith(": Rolled back, recovered"), banner
    for rel in ("plots/before.png", "plots/before_after.png", "metrics/samples.csv",
                "helm/history.json", "helm/manifest-diff.txt", "kubernetes/pods.json",
                "postmortem.md", "postmortem.ics", "rollback.html"):  # fmt: skip
        assert (incident / rel).exists(), rel
    assert "v1.1.0" in (incident / "helm" / "manifest-diff.txt").read_text()
    logs = list((incident / "kubernetes" / "logs").glob("*.log"))
    assert logs
    assert any("password=[REDACTED]" in p.read_text() for p in logs)
    assert _verify(incident).returncode == 0
    _assert_no_secrets(incident, result)


def test_a_profile_describes_the_service_and_the_command_line_overrides_it(
    bad_release: Sandbox, tmp_path: Path
) -> None:
    # Everything about the service in one file; the run gives only what is its own, and one
    # value that overrides the profile's.
    profile = tmp_path / "app.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "release": "app",
                "expected_cluster": bad_release.context,
                "kubeconfig": str(bad_release.kubeconfig),
                "context": bad_release.context,
                "prometheus_url": bad_release.prometheus_url,
                "metrics_preset": "prometheus-client",
                "prometheus_selector": 'job="traffic"',
                **SHORT,
                "recovery_within": "10s",  # overridden below
            }
        ),
        encoding="utf-8",
    )
    result, incident = _run(
        tmp_path,
        {"profile": profile, "confirm": True, "recovery_within": "2m"},
        env=bad_release.env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _pod_images(bad_release) == {"registry.local/api:v1.0.0"}
    record = json.loads((incident / "record.json").read_text())
    assert record["outcome"] == "recovered"
    started = next(e for e in _events(incident) if e["step"] == "start_run")
    shown = started["data"]["params"]
    assert (shown["sustain"], shown["step"], shown["recovery_within"]) == (10.0, 2.0, 120.0)
    assert shown["prometheus_selector"] == 'job="traffic"'
    assert shown["expected_cluster"] == bad_release.context


def test_dry_run_changes_nothing(deployed_bad_release: Sandbox, tmp_path: Path) -> None:
    sb = deployed_bad_release
    revisions = _helm_revisions(sb)
    result, incident = _run(tmp_path, _sandbox_params(sb, dry_run=True, **MANUAL), env=sb.env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _helm_revisions(sb) == revisions
    assert _pod_images(sb) == {"registry.local/api:v1.1.0"}
    assert json.loads((incident / "record.json").read_text())["outcome"] == "dry_run"
    assert any(e["kind"] == "dry_run" for e in _events(incident))
    _assert_no_secrets(incident, result)


def test_healthy_release_needs_no_rollback(clean_sandbox: Sandbox, tmp_path: Path) -> None:
    # The reset reinstalls the release: while no pod is ready the traffic model answers 5xx,
    # and a slow machine stretches that past the sustain. The deploy judged here is a healthy
    # upgrade made once those errors have left the rate window.
    _wait_for_healthy_rates(clean_sandbox)
    clean_sandbox.deploy("v1.0.0")
    revisions = _helm_revisions(clean_sandbox)
    result, incident = _run(
        tmp_path, _sandbox_params(clean_sandbox, confirm=True), env=clean_sandbox.env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _helm_revisions(clean_sandbox) == revisions
    decision = next(e for e in _events(incident) if e["data"].get("fact") == "decided")
    assert decision["data"]["decision"]["rollback"] is False
    assert json.loads((incident / "record.json").read_text())["outcome"] == "no_rollback"


def test_recovery_that_fails_escalates_and_keeps_evidence(
    deployed_bad_release: Sandbox, tmp_path: Path
) -> None:
    # With rates over 1 minute, the bad version's errors stay in the window for about a minute
    # after the rollout, so the ratio cannot be below 0.001% (the good version alone serves
    # ~0.05%) within 20 s: recovery must fail.
    params = _sandbox_params(
        deployed_bad_release, confirm=True, recovery_error_ratio="0.001%", recovery_within="20s",
        prometheus_rate_window="1m", notify_file=tmp_path / "notifications.txt", **MANUAL,
    )  # fmt: skip
    result, incident = _run(tmp_path, params, env=deployed_bad_release.env)
    assert result.returncode == 1
    assert "VerificationFailed" in result.stderr
    assert "ESCALATION" in (tmp_path / "notifications.txt").read_text()
    record = json.loads((incident / "record.json").read_text())
    assert record["outcome"] == "not_recovered"
    assert (incident / "helm" / "history.json").exists()
    assert _verify(incident).returncode == 0
    _assert_no_secrets(incident, result)


def test_every_notebook_parameter_reaches_the_run() -> None:
    """The notebook hands every parameter to the run, by name, and salvage reads the same."""
    import ast

    import papermill

    from runbook_lib.core.settings import Entry, Settings, from_flat

    declared = papermill.inspect_notebook(str(NOTEBOOK))
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    parameters_cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    assigned = [n.target.id for n in ast.parse(parameters_cell.source).body
                if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]  # fmt: skip
    # papermill skips lines it cannot parse (e.g. two "=" signs): then -p NAME is refused.
    assert list(declared) == assigned
    # One to one: every parameter is a setting of the same name, and back.
    assert list(declared) == list(Settings().flat())
    defaults = {name: ast.literal_eval(p["default"]) for name, p in declared.items()}
    settings = from_flat(
        defaults | {"expected_cluster": "x", "replay_csv": "x.csv"}, used_by=Entry.ROLLBACK
    )
    # The runbook's own numbers are the notebook's defaults.
    assert (settings.rules, settings.recovery) == (Settings().rules, Settings().recovery)
    # The first step takes them all from the notebook's globals, by name.
    code = "\n".join(c.source for c in cells if c.cell_type == "code" and c is not parameters_cell)
    assert "rb.start_run(**rb.notebook_parameters(globals()))" in code
