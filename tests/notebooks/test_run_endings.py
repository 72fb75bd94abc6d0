"""``runbook run`` ends with a truthful, sealed, secret-free bundle however the run ends.

Without a cluster: a replay run with the planted-secret corpus in its parameters and its
environment, signed; a run terminated (SIGTERM) while preflight waits on an API server that
never answers; an evidence folder on a filesystem too small for the bundle (a real tmpfs,
mounted when the tests run as root). Refusals before the kernel starts (a bad ``output_dir``,
a key that cannot sign) run in-process: tests/unit/test_run_refusals.py and
tests/adapters/test_evidence_signing.py. The sandbox endings (rollback,
failure, interrupt during ``check_recovery``, disk full after the rollback) are in
``tests/e2e/test_run_endings_sandbox.py``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from secret_corpus import CORPUS, leaks

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "notebooks" / "data"
RUNBOOK = Path(sys.executable).parent / "runbook"
WINDOW = {"deployed_at": "2026-11-20T14:00:00+00:00", "now": "2026-11-20T14:30:00+00:00"}


def _argv(output_dir: Path, params: Mapping[str, Any]) -> list[str]:
    argv = [str(RUNBOOK), "run", "rollback", "--quiet", "--output-dir", str(output_dir)]
    for name, value in params.items():
        argv += ["-r" if isinstance(value, str) else "-p", name, str(value)]
    return argv


def _env(scratch: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # TMPDIR: the run's scratch folder goes here, so the test sees whether it was removed.
    return {**os.environ, "TMPDIR": str(scratch), **(extra or {})}


def _grep_planted(folder: Path) -> str:
    """``grep -r`` the bundle for the corpus' marker, as a reader of the bundle would."""
    found = subprocess.run(["grep", "-r", "-l", "PLANTED", str(folder)], capture_output=True,
                           text=True, check=False)  # fmt: skip
    return found.stdout


def _assert_clean(folder: Path, *streams: str) -> None:
    assert _grep_planted(folder) == ""
    for path in folder.rglob("*"):
        if path.is_file():
            assert leaks(path.read_bytes().decode("utf-8", "replace")) == [], path
            assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
        elif path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o750, path
    for text in streams:
        assert leaks(text) == []


def _verify(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUNBOOK), "verify-evidence", str(folder)], capture_output=True,
                          text=True, check=False)  # fmt: skip


def _record(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "record.json").read_text())
    return data


def _signing_key(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh ed25519 key and an allowed-signers file naming it for runbook-evidence."""
    key = tmp_path / "signing" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(key)],
                   check=True, capture_output=True)  # fmt: skip
    signers = tmp_path / "signing" / "allowed_signers"
    public = key.with_suffix(".pub").read_text().strip()
    signers.write_text(f'ci@example.org namespaces="runbook-evidence" {public}\n')
    return key, signers


def test_replay_run_with_planted_secrets_leaves_a_clean_bundle(
    tmp_path: Path, scratch: Path
) -> None:
    planted = "\n".join(p.text for p in CORPUS)
    replay = DATA / "healthy_deploy.csv"
    key, signers = _signing_key(tmp_path)
    params = {"incident_id": "INC-CORPUS", "replay_csv": str(replay),
              "expected_cluster": "kwok-runbook", "root_cause_hypothesis": planted,
              "signing_key": str(key), **WINDOW}  # fmt: skip
    env = _env(scratch, {f"PLANTED_API_TOKEN_{i}": p.text for i, p in enumerate(CORPUS)})
    result = subprocess.run(_argv(tmp_path / "ev", params), capture_output=True, text=True,
                            env=env, timeout=900, check=False)  # fmt: skip
    folder = tmp_path / "ev" / "INC-CORPUS"
    assert result.returncode == 0, result.stderr
    assert "outcome: no_rollback" in result.stdout
    assert "cluster: not changed by this run" in result.stdout
    _assert_clean(folder, result.stdout, result.stderr)
    # The run's paths appear as written (no "[REDACTED]" for the working directory).
    assert str(replay) in (folder / "rollback.ipynb").read_text()
    assert str(REPO) in (folder / "rollback.ipynb").read_text()
    assert _record(folder)["outcome"] == "no_rollback"
    assert _record(folder)["rolled_back"] is False
    assert _verify(folder).returncode == 0
    argv = [str(RUNBOOK), "verify-evidence", str(folder), "--allowed-signers", str(signers)]
    signed = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert list(scratch.iterdir()) == []  # papermill's scratch copy is gone


@dataclass
class SilentServer:
    """A TCP port that accepts connections and never answers: an API server that hangs.

    ``connected`` is set once a client is inside a call that will not return.
    """

    port: int
    connected: threading.Event


@pytest.fixture
def silent_api_server() -> Iterator[SilentServer]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()
    silent = SilentServer(server.getsockname()[1], threading.Event())

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return
            silent.connected.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield silent
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _hanging_kubeconfig(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "kubeconfig"
    planted = next(p for p in CORPUS if "PLANTED" in p.text and "\n" not in p.text).text
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- cluster: {{server: 'https://127.0.0.1:{port}', "
        "insecure-skip-tls-verify: true}\n  name: hangs\n"
        "contexts:\n- context: {cluster: hangs, user: oncall}\n  name: kwok-hangs\n"
        "current-context: kwok-hangs\n"
        f"users:\n- name: oncall\n  user: {{token: {json.dumps(planted)}}}\n"
    )
    return path


def _wait_for(path: Path, text: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_terminated_run_is_sealed_with_the_partial_notebook(
    tmp_path: Path, scratch: Path, silent_api_server: SilentServer
) -> None:
    # SIGTERM (a runner or `runbook serve` stopping the run); Ctrl-C (SIGINT) is the sandbox
    # test's, during check_recovery after a real rollback.
    sig = signal.SIGTERM
    kubeconfig = _hanging_kubeconfig(tmp_path, silent_api_server.port)
    webhook = "https://hooks.slack.com/services/T0PLANTED/B0PLANTED/PLANTEDhookPath123"
    params = {"incident_id": "INC-STOP", "replay_csv": str(DATA / "bad_deploy.csv"),
              "expected_cluster": "kwok-hangs", "kubeconfig": str(kubeconfig), "confirm": True,
              "slack_webhook_url": webhook, **WINDOW}  # fmt: skip
    folder = tmp_path / "ev" / "INC-STOP"
    proc = subprocess.Popen(_argv(tmp_path / "ev", params), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(scratch))  # fmt: skip
    try:
        # Preflight has written its evidence check and now waits on the silent API server.
        _wait_for(folder / "timeline.jsonl", "evidence folder")
        assert silent_api_server.connected.wait(300), "the run never called the API server"
        folders = list(scratch.iterdir())
        assert [p.name.startswith("runbook-run-") for p in folders] == [True]
        assert folders[0].stat().st_mode & 0o777 == 0o700  # private while it exists
        assert (folders[0] / "kernel.json").exists()  # the kernel's key is in there too
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert "outcome: interrupted" in out
    assert "cluster: not changed by this run" in out
    assert list(scratch.iterdir()) == []  # nothing unredacted left behind
    record = _record(folder)
    assert record["outcome"] == "interrupted"
    assert record["rolled_back"] is False
    failed = [s for s in record["steps"] if s["status"] == "failed"]
    assert [s["step"] for s in failed] == ["preflight"]
    notebook = (folder / "rollback.ipynb").read_text()
    assert "KeyboardInterrupt" in notebook  # the partial notebook, stopped where it was
    assert (folder / "rollback.html").exists()
    assert _verify(folder).returncode == 0
    _assert_clean(folder, out, err)


@pytest.fixture
def tiny_filesystem(tmpfs: Callable[[str], Path]) -> Path:
    return tmpfs("8m")


def test_preflight_stops_before_any_change_when_the_evidence_has_no_room(
    scratch: Path, tiny_filesystem: Path
) -> None:
    params = {"incident_id": "INC-FULL", "replay_csv": str(DATA / "bad_deploy.csv"),
              "expected_cluster": "kwok-runbook", "confirm": True, **WINDOW}  # fmt: skip
    result = subprocess.run(_argv(tiny_filesystem, params), capture_output=True, text=True,
                            env=_env(scratch), timeout=600, check=False)  # fmt: skip
    folder = tiny_filesystem / "INC-FULL"
    assert result.returncode == 6, result.stderr  # refused before any change
    assert "MiB free, at least 50 MiB needed" in result.stderr
    assert "without_evidence=True" in result.stderr
    assert "outcome: refused" in result.stdout
    assert "cluster: not changed by this run" in result.stdout
    record = _record(folder)
    assert record["outcome"] == "refused"
    assert record["rolled_back"] is False
    assert "Nothing was rolled back" in (folder / "record.md").read_text()
    assert _verify(folder).returncode == 0
