"""The sandbox's metrics: the traffic model and a Prometheus scraping it, as detached processes.

``start`` launches both (each in its own session, with a pid file under ``<state>/metrics``) so
that ``runbook sandbox down`` from another process can ``stop`` them; ``stop`` is idempotent and
returns only when neither process runs and neither port is bound. Ports come from
``RUNBOOK_SANDBOX_PORT_BASE`` (Prometheus base+90, traffic model base+91; CONTRACTS.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_sandbox import paths
from runbook_sandbox.prometheus_server import (
    PrometheusServer,
    ScrapeTarget,
    port_is_free,
    ports_in_use,
)

__all__ = ["TRAFFIC_JOB", "Endpoints", "MetricsStackError", "start", "status", "stop"]

TRAFFIC_JOB = "traffic"
_TRAFFIC_SCRIPT = Path(__file__).with_name("traffic_model.py")
_NAMES = ("traffic", "prometheus")
# Popen objects of processes this interpreter started, kept so they are reaped, not leaked.
_children: dict[int, subprocess.Popen[bytes]] = {}


class MetricsStackError(RuntimeError):
    """The metrics stack could not start (port taken, process died); says where the log is."""


@dataclass(frozen=True)
class Endpoints:
    prometheus_url: str
    traffic_url: str


def _work_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "metrics"


def _pid_file(state_dir: Path, name: str) -> Path:
    return _work_dir(state_dir) / f"{name}.pid"


def _endpoints() -> Endpoints:
    ports = paths.ports()
    return Endpoints(f"http://127.0.0.1:{ports.prometheus}", f"http://127.0.0.1:{ports.traffic}")


def start(
    state_dir: Path, kubeconfig: Path, *, namespace: str = "default", timeout_s: float = 60.0
) -> Endpoints:
    """Start the traffic model (following ``kubeconfig``'s pods) and Prometheus.

    Returns once Prometheus has scraped the model. Reuses a stack that is already running
    for this state dir. Raises ``MetricsStackError`` (after cleaning up) when a port is taken
    or a process does not come up.
    """
    state_dir = Path(state_dir)
    endpoints = _endpoints()
    if all(_running(state_dir, name) for name in _NAMES):
        return endpoints
    stop(state_dir)
    ports = paths.ports()
    for port in (ports.prometheus, ports.traffic):
        problem = ports_in_use([port])
        if problem:
            raise MetricsStackError(problem)
    work = _work_dir(state_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        argv = [
            sys.executable, str(_TRAFFIC_SCRIPT), "--port", str(ports.traffic),
            "--state-dir", str(state_dir), "--kubeconfig", str(kubeconfig),
            "--namespace", namespace,
            # Spans to the sandbox's Jaeger (tracing.py); dropped while it is not up.
            "--otlp-endpoint", f"http://127.0.0.1:{ports.jaeger_otlp_http}",
        ]  # fmt: skip
        traffic = spawn_recorded(state_dir, "traffic", argv, log=work / "traffic-model.log")
        _wait_http(f"{endpoints.traffic_url}/mix", traffic, work / "traffic-model.log", timeout_s)
        # The runbook's rules (runbook rules, demo windows); alerts go to the sandbox's
        # Alertmanager (alerting.py), which need not be up yet: Prometheus retries.
        from runbook_sandbox import alerting

        alerting.write_rules(state_dir)
        prom = PrometheusServer(
            port=ports.prometheus,
            targets=[ScrapeTarget(TRAFFIC_JOB, f"127.0.0.1:{ports.traffic}")],
            work_dir=work,
            rule_files=[alerting.rules_glob(state_dir)],
            alertmanagers=[f"127.0.0.1:{ports.alertmanager}"],
        )
        _record(state_dir, "prometheus", prom.start(detach=True, timeout_s=timeout_s))
        prom.wait_scraped(TRAFFIC_JOB, timeout_s=timeout_s)
    except BaseException as err:
        stop(state_dir)
        if isinstance(err, Exception) and not isinstance(err, MetricsStackError):
            raise MetricsStackError(f"metrics stack did not start: {err} (logs in {work})") from err
        raise
    return endpoints


def stop(state_dir: Path, *, timeout_s: float = 15.0) -> None:
    """Stop both processes (TERM, then KILL) and free their ports; safe to call any time."""
    state_dir = Path(state_dir)
    for name in _NAMES:
        stop_recorded(state_dir, name, timeout_s=timeout_s)
    ports = paths.ports()
    wait_ports_free((ports.prometheus, ports.traffic), timeout_s=timeout_s)
    PrometheusServer(port=ports.prometheus, targets=(), work_dir=_work_dir(state_dir)).stop()


def status(state_dir: Path) -> dict[str, Any]:
    """What runs: per process its pid and whether it is alive, the URLs, and the traffic mix."""
    state_dir = Path(state_dir)
    endpoints = _endpoints()
    result: dict[str, Any] = {
        "prometheus_url": endpoints.prometheus_url,
        "traffic_url": endpoints.traffic_url,
    }
    for name in _NAMES:
        result[name] = process_status(state_dir, name)
    result["mix"] = None
    if result["traffic"]["running"]:
        result["mix"] = answer_json(f"{endpoints.traffic_url}/mix")
    return result


# --- pid files -----------------------------------------------------------------------------


def spawn_recorded(
    state_dir: Path, name: str, argv: list[str], *, log: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a sandbox program in its own session, output appended to ``log``, and record
    its pid under ``name`` so ``stop``/``down`` find it again from another process."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _pid_file(state_dir, name).parent.mkdir(parents=True, exist_ok=True)
    _record(state_dir, name, proc)
    return proc


def stop_recorded(state_dir: Path, name: str, *, timeout_s: float) -> None:
    """Stop what ``spawn_recorded`` started under ``name`` (TERM, then KILL) and forget its
    pid; a pid that now runs another program (pids are reused) is left alone."""
    info = _read(state_dir, name)
    if info is not None and _is_ours(info):
        _terminate(int(info["pid"]), timeout_s)
    _pid_file(state_dir, name).unlink(missing_ok=True)


def wait_ports_free(ports: Sequence[int], *, timeout_s: float) -> None:
    """Return once no process listens on ``ports``, or after ``timeout_s``: a stopped
    server's socket can outlive it for a moment, and the next start needs the port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(port_is_free(p) for p in ports):
        time.sleep(0.1)


def _record(state_dir: Path, name: str, proc: subprocess.Popen[bytes]) -> None:
    _children[proc.pid] = proc
    argv = [str(a) for a in proc.args] if isinstance(proc.args, list) else [str(proc.args)]
    _pid_file(state_dir, name).write_text(json.dumps({"pid": proc.pid, "argv": argv}))


def process_status(state_dir: Path, name: str) -> dict[str, Any]:
    """A recorded process' ``pid`` (None: none recorded) and whether it still ``running``."""
    info = _read(state_dir, name)
    return {"pid": int(info["pid"]) if info else None, "running": _running(state_dir, name)}


def process_report(
    state_dir: Path, name: str, *, urls: dict[str, str], ask: str
) -> tuple[dict[str, Any], Any]:
    """A recorded service's status report (its ``urls``, ``pid`` and whether it is
    ``running``) and its JSON answer to ``ask`` (None when it is not running or gives none)."""
    process = process_status(Path(state_dir), name)
    answer = answer_json(ask) if process["running"] else None
    return {**urls, **process}, answer


def answer_json(url: str) -> Any:
    """``url``'s JSON answer, for a status report; None when it does not give one."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _read(state_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(_pid_file(state_dir, name).read_text())
    except (OSError, ValueError):
        return None
    return info


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie (state Z) has exited; only its parent can reap it.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_ours(info: dict[str, Any]) -> bool:
    """The pid still runs the command we started (pids get reused after a reboot or crash)."""
    pid = int(info["pid"])
    return _alive(pid) and _cmdline(pid) == info.get("argv")


def _running(state_dir: Path, name: str) -> bool:
    info = _read(state_dir, name)
    return info is not None and _is_ours(info)


def _terminate(pid: int, timeout_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            # Started with start_new_session: its process group is its own pid.
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            break
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(5)


def wait_ready(
    proc: subprocess.Popen[bytes],
    log: Path,
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    error: type[Exception],
    what: str,
    late: str,
) -> None:
    """Wait until ``ready()``. Raises ``error``: "``what`` exited" with the tail of ``log``
    when ``proc`` ends first, ``late`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise error(f"{what} exited with {proc.returncode}:\n{tail}")
        if ready():
            return
        time.sleep(0.1)
    raise error(late)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    late = f"{url} did not answer in {timeout_s:.0f} s (log: {log})"
    wait_ready(
        proc,
        log,
        lambda: _answers(url),
        timeout_s=timeout_s,
        error=MetricsStackError,
        what=repr(proc.args),
        late=late,
    )
