"""A private Prometheus server (Debian's ``prometheus``) on 127.0.0.1, for the sandbox and tests.

Each server gets its own generated config (scrape interval 1 s by default), a fresh storage
directory under its work dir (deleted at start and stop: the data is only for this run) and a
loopback listen address, so several can run at once and none touches the system service.

Used by ``metrics_stack`` (detached, pid file) and by the test fixtures (a context manager)::

    with PrometheusServer(port=free_port(), targets=[ScrapeTarget("app", "127.0.0.1:8000")],
                          work_dir=tmp_path) as prom:
        prom.wait_scraped("app")
        prom.query("up")
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PrometheusServer",
    "PrometheusStartError",
    "ScrapeTarget",
    "free_port",
    "port_is_free",
    "prometheus_binary",
    "render_config",
]

INSTALL_HINT = "apt-get install prometheus"


class PrometheusStartError(RuntimeError):
    """Prometheus is missing, did not become ready, or its port is taken. Says why and where."""


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port
    metrics_path: str = "/metrics"


def prometheus_binary() -> str | None:
    """``$RUNBOOK_PROMETHEUS_BINARY`` or ``prometheus`` on PATH (Debian: /usr/bin/prometheus)."""
    explicit = os.environ.get("RUNBOOK_PROMETHEUS_BINARY")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus")


def free_port() -> int:
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def ports_in_use(ports: Sequence[int]) -> str:
    """What to tell the person when any of ``ports`` is taken ("" when all are free)."""
    busy = [port for port in ports if not port_is_free(port)]
    if not busy:
        return ""
    where = f"127.0.0.1:{busy[0]} is" if len(ports) == 1 else f"127.0.0.1 ports {busy} are"
    return (
        f"{where} in use by another process; stop it or set RUNBOOK_SANDBOX_PORT_BASE to run "
        "this sandbox on other ports"
    )


def answers_ready(base: str) -> bool:
    """Whether ``base/-/ready`` answers 200 now (Prometheus and Alertmanager both serve it)."""
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def render_config(
    targets: Sequence[ScrapeTarget],
    *,
    scrape_interval_s: float = 1.0,
    rule_files: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
) -> str:
    """Prometheus YAML (JSON is valid YAML) scraping each target as its own job.

    ``rule_files`` (paths or globs) are loaded at start and on reload; alerts go to each
    ``alertmanagers`` address (host:port).
    """
    interval = f"{round(scrape_interval_s * 1000)}ms"
    # A scrape must finish before the next one starts; the default timeout (10 s) is refused.
    timeout = f"{round(scrape_interval_s * 800)}ms"
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "scrape_timeout": timeout},
        "scrape_configs": [
            {
                "job_name": t.job,
                "metrics_path": t.metrics_path,
                "static_configs": [{"targets": [t.address]}],
            }
            for t in targets
        ],
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    if alertmanagers:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]
        }
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer:
    """One Prometheus process: ``start()``, ``wait_scraped()``, ``query()``, ``stop()``."""

    def __init__(
        self,
        *,
        port: int,
        targets: Sequence[ScrapeTarget],
        work_dir: Path,
        scrape_interval_s: float = 1.0,
        binary: str | None = None,
        rule_files: Sequence[str] = (),
        alertmanagers: Sequence[str] = (),
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.targets = tuple(targets)
        self.work_dir = Path(work_dir)
        self.scrape_interval_s = scrape_interval_s
        self.binary = binary
        self.rule_files = tuple(rule_files)
        self.alertmanagers = tuple(alertmanagers)
        self.extra_args = tuple(extra_args)  # e.g. --rules.alert.resend-delay=2s in tests
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "prometheus-data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "prometheus.log"

    def argv(self) -> list[str]:
        binary = self.binary or prometheus_binary()
        if not binary:
            raise PrometheusStartError(f"no prometheus binary on PATH ({INSTALL_HINT})")
        return [
            binary,
            f"--config.file={self.work_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.extra_args,
        ]

    def start(self, *, detach: bool = False, timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
        """Start and wait until ``/-/ready``; ``detach`` puts it in its own session.

        Raises ``PrometheusStartError`` (binary missing, port taken, not ready in time: the
        message carries the end of its log).
        """
        argv = self.argv()
        if not port_is_free(self.port):
            raise PrometheusStartError(f"127.0.0.1:{self.port} is already in use")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        (self.work_dir / "prometheus.yml").write_text(
            render_config(
                self.targets,
                scrape_interval_s=self.scrape_interval_s,
                rule_files=self.rule_files,
                alertmanagers=self.alertmanagers,
            )
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                start_new_session=detach,
            )
        try:
            self._wait_ready(timeout_s)
        except PrometheusStartError:
            self.stop()
            raise
        return self.process

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise PrometheusStartError(
                    f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if answers_ready(self.url):
                return
            time.sleep(0.2)
        raise PrometheusStartError(
            f"prometheus not ready on {self.url} after {timeout_s:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list of the API's answer (for waits and tests)."""
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=5) as resp:
            body = json.load(resp)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_scraped(
        self, job: str, *, times: int = 1, window: str = "1m", timeout_s: float = 30.0
    ) -> None:
        """Wait until the job's target has been scraped successfully ``times`` times within
        the last ``window`` (a PromQL range): once to know it is up, more to fill a rate
        window or a check's range with samples."""
        query = f'sum_over_time(up{{job="{job}"}}[{window}])'
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if any(float(r["value"][1]) >= times for r in self.query(query)):
                    return
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.25)
        raise PrometheusStartError(
            f"prometheus did not scrape job {job!r} {times} times in {timeout_s:.0f} s"
        )

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Terminate (then kill) the process and delete its storage; idempotent."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()  # whether or not the block raised
