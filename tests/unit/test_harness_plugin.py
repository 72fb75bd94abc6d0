"""The team harness's pure parts: selectors per namespace, sandboxes per xdist worker, the
game-day report, ``runbook gameday``'s refusals of bad input, and Prometheus down in front of a
local stand-in (no sandbox needed)."""

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

from runbook_sandbox.gameday import Row, markdown
from runbook_sandbox.pytest_plugin import worker_environment
from runbook_sandbox.team import Faults, Team, _selector_in

RUNBOOK = Path(sys.executable).parent / "runbook"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "team-shop"


def test_the_profiles_selector_is_narrowed_to_the_tests_namespace() -> None:
    assert _selector_in('release="shop"', "t-1") == 'release="shop",namespace="t-1"'
    assert _selector_in('release="shop",namespace="prod"', "t-1") == (
        'release="shop",namespace="t-1"'
    )
    assert _selector_in("", "t-1") == 'namespace="t-1"'


def test_each_xdist_worker_after_the_first_gets_its_own_sandbox() -> None:
    base = {
        "RUNBOOK_SANDBOX_NAME": "ci",
        "RUNBOOK_SANDBOX_PORT_BASE": "33000",
        "RUNBOOK_SANDBOX_STATE": "/s",
    }
    assert worker_environment(base, "") == {}
    assert worker_environment(base, "gw0") == {}
    assert worker_environment(base, "gw2") == {
        "RUNBOOK_SANDBOX_NAME": "ci-gw2",
        "RUNBOOK_SANDBOX_PORT_BASE": "33200",
        "RUNBOOK_SANDBOX_STATE": "/s/gw2",
    }


def test_the_example_profile_names_its_release_deployment_and_dialect() -> None:
    team = Team(chart=EXAMPLE / "chart", profile=EXAMPLE / "profile.yaml")
    assert (team.release_name, team.deployment, team.dialect) == ("shop", "shop-web", "otel")


def test_the_report_has_a_row_per_scenario_and_says_which_did_not_hold() -> None:
    rows = [
        Row("wrong_cluster_refused", True, "held", "refused", "outcome refused", 41.2, "/ev/A"),
        Row(
            "bad_deploy_rolled_back",
            False,
            "FAILED (call): did not roll back",
            "rolled back",
            "outcome failed | x",
            90.0,
            "/ev/B",
        ),
    ]
    text = markdown(rows, chart=Path("chart"), profile=Path("p.yaml"), total_s=131)
    assert "1 of 2 scenarios held in 131 s" in text
    lines = text.splitlines()
    assert "| wrong_cluster_refused | yes | refused | outcome refused | 41 s | /ev/A |" in lines
    assert (
        "| bad_deploy_rolled_back | **no** | rolled back | FAILED (call): did not roll back; "
        "outcome failed \\| x | 90 s | /ev/B |"
    ) in lines


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
