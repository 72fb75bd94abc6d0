"""``runbook serve`` itself, as an operator starts it: TLS, options, SIGTERM (loopback).

The real command in its own process; the posts name releases the policy has no entry for, so
no notebook runs (the sandbox tests run it): what is checked here is the command line, the
listener and how it stops.
"""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alert_payloads import alert, payload

RUNBOOK = str(Path(sys.executable).parent / "runbook")
TOKEN = "command-suite-token"


def _refused_serve(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``runbook serve`` with ``tmp_path``'s policy.yaml, a token file and ``options``, for
    options it refuses before it listens (so it ends by itself)."""
    (tmp_path / "token").write_text(TOKEN)
    policy, token = str(tmp_path / "policy.yaml"), str(tmp_path / "token")
    command = [RUNBOOK, "serve", "--policy", policy, "--token-file", token, *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class Serve:
    def __init__(self, tmp: Path, *extra: str) -> None:
        (tmp / "policy.yaml").write_text("releases: [{release: app, auto_rollback: true}]\n")
        (tmp / "token").write_text(TOKEN + "\n")
        self.err = tmp / "serve.err"
        argv = [
            RUNBOOK,
            "serve",
            "--policy",
            str(tmp / "policy.yaml"),
            "--token-file",
            str(tmp / "token"),
            "--port",
            "0",
            "--state-dir",
            str(tmp / "state"),
            "--output-dir",
            str(tmp / "evidence"),
            *extra,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.err.open("wb"))
        deadline = time.monotonic() + 60
        while "/alerts" not in self.text() and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(self.text())
            time.sleep(0.05)
        self.url = self.text().split("runbook serve: ", 1)[1].split(" ")[0]

    def text(self) -> str:
        return self.err.read_text() if self.err.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Serve] = []

    def start(*extra: str) -> Serve:
        started.append(Serve(tmp_path, *extra))
        return started[-1]

    try:
        yield start
    finally:
        for one in started:
            one.close()


def _post(url: str, body: Any, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_tls_serves_https_only_and_sigterm_stops_it(
    serve: Any, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    running = serve("--tls-cert", str(cert), "--tls-key", str(key))
    assert running.url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(cert))
    status, answer = _post(running.url, payload(alert("stranger")), trusting)
    assert (status, answer) == (200, {"alerts": ["queued"]})
    with pytest.raises(urllib.error.URLError):  # a client that does not trust it
        _post(running.url, payload(alert("other")), ssl.create_default_context())
    plain = running.url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _post(plain, payload(alert("other")))  # no clear text on the TLS port
    running.proc.send_signal(signal.SIGTERM)
    assert running.proc.wait(30) == 0
    assert "SIGTERM: taking no new work" in running.text()
    assert running.text().rstrip().endswith("runbook serve: stopped")


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--tls-cert", "x.crt"], "--tls-cert and --tls-key: give both"),
        (["--grace", "90"], "--grace:"),
        (["--tls-cert", "missing.crt", "--tls-key", "missing.key"], "--tls-cert/--tls-key"),
    ],
    ids=["cert-without-key", "grace-without-unit", "missing-files"],
)
def test_bad_options_exit_2_naming_them(tmp_path: Path, extra: list[str], problem: str) -> None:
    (tmp_path / "policy.yaml").write_text("releases: []\n")
    done = _refused_serve(tmp_path, "--state-dir", str(tmp_path / "state"), *extra)
    assert done.returncode == 2
    assert problem in done.stderr
    assert "Traceback" not in done.stderr


def test_a_credential_in_the_policy_is_refused_with_job_dispatch(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "parameters: {slack_webhook_url: 'https://hooks.slack.com/services/T/B/s3cr3t'}\n"
        "releases: []\n"
    )
    done = _refused_serve(tmp_path, "--dispatch", "job", "--runner-image", "r.example/rb:1")
    assert done.returncode == 2
    assert "RUNBOOK_SLACK_WEBHOOK_URL" in done.stderr
    assert "s3cr3t" not in done.stderr
