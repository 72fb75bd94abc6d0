"""The team harness's parts that run a process or a server (no sandbox needed):
``runbook gameday``'s refusals of bad input, Prometheus down in front of a local stand-in, the
webhook failing or hanging. Its pure parts are in ``tests/unit/test_harness_plugin.py``."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from runbook_sandbox.team import Faults

RUNBOOK = Path(sys.executable).parent / "runbook"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team-shop"


def test_gameday_refuses_bad_input_with_status_2() -> None:
    def gameday(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RUNBOOK), "gameday", *args], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    missing = gameday("--chart", "/nonexistent", "--profile", str(EXAMPLE / "profile.yaml"))
    assert missing.returncode == 2
    assert "/nonexistent: no such file or folder" in missing.stderr
    args = ["--chart", str(EXAMPLE / "chart"), "--profile", str(EXAMPLE / "profile.yaml")]
    unknown = gameday(*args, "--only", "no_such_scenario")
    assert unknown.returncode == 2
    assert "no scenario matches" in unknown.stderr


@pytest.fixture
def prometheus_stand_in() -> Iterator[str]:
    """A local HTTP server answering every GET with a fixed Prometheus-like JSON body."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": "success", "path": "%s"}' % self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_prometheus_down_for_a_while_answers_503_then_relays(
    prometheus_stand_in: str, tmp_path: Path
) -> None:
    release = SimpleNamespace(sandbox=SimpleNamespace(prometheus_url=prometheus_stand_in))
    faults = Faults(release, tmp_path)  # type: ignore[arg-type]
    try:
        down = faults.prometheus_down(for_s=3600)
        assert faults.overrides["prometheus_url"] == down
        assert _get(f"{down}/api/v1/query?query=up")[0] == 503
        back = faults.prometheus_down(for_s=0)
        status, body = _get(f"{back}/api/v1/query?query=up")
        assert status == 200
        assert json.loads(body)["path"] == "/api/v1/query?query=up"
        gone = faults.prometheus_down()  # for good: nothing listens there
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{gone}/api/v1/query?query=up", timeout=10)
    finally:
        faults.close()


def _post(url: str, timeout_s: float) -> int:
    request = urllib.request.Request(url, data=b'{"text": "x"}', method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_the_webhook_fails_or_hangs_as_told(tmp_path: Path) -> None:
    faults = Faults(SimpleNamespace(), tmp_path)  # type: ignore[arg-type]
    try:
        failing = faults.webhook_failing(503)
        assert faults.overrides["slack_webhook_url"] == failing
        assert _post(failing, 10) == 503
        hanging = faults.webhook_hanging()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            _post(hanging, 0.5)
    finally:
        faults.close()
