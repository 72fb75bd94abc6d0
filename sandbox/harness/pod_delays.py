"""How long the sandbox's fake pods take to become Ready (kwok Stage delays).

kwok marks a scheduled pod Running and Ready at once; on a real cluster that takes seconds
(image pull, start, readiness probe), which is what rollout waits and recovery checks are
about. kwokctl writes the stages it runs with (its defaults included) to the cluster's
``kwok.yaml``; ``apply`` adds a delay to the ``pod-ready`` stage there and restarts the kwok
controller, which reads that file only at start.

``cluster.create`` calls it after kwokctl has started the control plane and *before* the fake
nodes exist. The order matters: a controller restarted while nodes exist does not renew their
leases; 40 s later the node lifecycle controller marks them unhealthy, kwok's heartbeat
rewrites their status without ``status.addresses``, and ``kubectl exec`` (the migrator) fails
with "no preferred addresses found". So the delay is chosen when the sandbox comes up, never
changed on a running one.

``RUNBOOK_SANDBOX_POD_READY_DELAY`` sets it (default ``3s``: each new pod becomes Ready 3-4.5 s
after it is scheduled; ``0`` is kwok's instant readiness, which the test suite uses).
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.units import parse_duration

__all__ = ["DEFAULT_DELAY", "PodDelayError", "apply", "configured_delay_s", "current_delay_s"]

DEFAULT_DELAY = "3s"
ENV = "RUNBOOK_SANDBOX_POD_READY_DELAY"
_STAGE = "pod-ready"
_CONTROLLER = "kwok-controller"


class PodDelayError(RuntimeError):
    """The kwok controller's config or process is not where kwokctl leaves them."""


def configured_delay_s() -> float:
    """The delay ``up`` applies: ``$RUNBOOK_SANDBOX_POD_READY_DELAY``, else ``DEFAULT_DELAY``."""
    raw = os.environ.get(ENV) or DEFAULT_DELAY
    try:
        return parse_duration(raw)
    except ValueError as err:
        raise PodDelayError(f"{ENV}: {err}") from err


def _docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _stage(docs: list[Any]) -> dict[str, Any]:
    for doc in docs:
        if doc.get("kind") == "Stage" and doc.get("metadata", {}).get("name") == _STAGE:
            stage: dict[str, Any] = doc
            return stage
    raise PodDelayError(f"no Stage {_STAGE!r} in kwok's config")


def current_delay_s(cluster_dir: Path) -> float:
    """The pod-ready delay the kwok config names (0 when none)."""
    stage = _stage(_docs(cluster_dir / "kwok.yaml"))
    delay = stage.get("spec", {}).get("delay") or {}
    return float(delay.get("durationMilliseconds", 0)) / 1000


def apply(cluster_dir: Path, delay_s: float, *, healthz_port: int, timeout_s: float = 30.0) -> bool:
    """Set the pod-ready delay (jitter up to 1.5x) and restart the kwok controller.

    Returns False when the config already has this delay (nothing restarted). Raises
    ``PodDelayError`` when kwokctl's files or the controller are not found or it does not
    come back healthy.
    """
    config = cluster_dir / "kwok.yaml"
    docs = _docs(config)
    spec = _stage(docs).setdefault("spec", {})
    if abs(current_delay_s(cluster_dir) - delay_s) < 0.0005:
        return False
    if delay_s > 0:
        ms = round(delay_s * 1000)
        # kwok waits a random time between the duration and the jitter duration.
        spec["delay"] = {"durationMilliseconds": ms, "jitterDurationMilliseconds": ms * 3 // 2}
    else:
        spec.pop("delay", None)
    config.write_text(yaml.safe_dump_all(docs, sort_keys=False, width=1000))
    _restart_controller(cluster_dir, healthz_port, timeout_s)
    return True


def _restart_controller(cluster_dir: Path, healthz_port: int, timeout_s: float) -> None:
    pid_file = cluster_dir / "pids" / f"{_CONTROLLER}.pid"
    try:
        pid = int(pid_file.read_text().strip())
        proc = Path(f"/proc/{pid}")
        argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        env_pairs = (proc / "environ").read_bytes().split(b"\0")
        cwd = os.readlink(proc / "cwd")
    except (OSError, ValueError) as err:
        raise PodDelayError(f"kwok controller not running (pid file {pid_file}): {err}") from err
    if not any(a.startswith("--config=") for a in argv):
        raise PodDelayError(f"pid {pid} is not the kwok controller: {argv[:2]}")
    env = dict(p.decode().split("=", 1) for p in env_pairs if b"=" in p)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        _reap(pid)
        time.sleep(0.05)
    log = cluster_dir / "logs" / f"{_CONTROLLER}.log"
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    # kwokctl stops the components it finds in its pid files: it must find this one.
    pid_file.write_text(str(child.pid))
    # The controller serves HTTPS with the cluster's own certificate (loopback only).
    url = f"https://127.0.0.1:{healthz_port}/healthz"
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise PodDelayError(f"kwok controller exited with {child.returncode} (log: {log})")
        try:
            with urllib.request.urlopen(url, timeout=2, context=insecure) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError:
            return  # it answers (healthz may want credentials): it is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise PodDelayError(f"kwok controller not healthy on {url} after {timeout_s:.0f} s")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
