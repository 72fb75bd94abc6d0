"""A team's service on the sandbox: its own chart, profile and notebook, driven like ours.

The pytest plugin (``runbook_sandbox.pytest_plugin``) and ``runbook gameday`` are thin layers
over this module:

- ``Team``: what a team brings (chart, service profile, optional values file and notebook);
- ``TeamRelease``: a fresh release of that chart in a namespace of its own, registered with the
  traffic model in the profile's metric dialect; ``deploy`` makes a new revision, ``break_``
  makes the pods of the current revision misbehave (keyed by their pod-template-hash, whatever
  the chart), and the read-outs say what a person checks (``helm history``, images, the Lease);
- ``Faults``: what goes wrong around a run, each as parameters the next run gets or as a
  change to the cluster (a Lease held by someone else);
- ``run_runbook``: ``runbook run rollback`` on the team's notebook, as people and automations
  run it, read back as the run's ``Ending``.

kwok runs no containers: what this proves is the runbook's logic, Helm's and Kubernetes'
mechanics and the evidence, not the application's behaviour (docs/HARNESS.md).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.verdict import Verdict
from runbook_lib.errors import CommandFailed
from runbook_lib.record.ending import Ending, Seal
from runbook_lib.record.timeline import Timeline
from runbook_sandbox import net_faults, traffic_control
from runbook_sandbox.breach import last_deploy_time
from runbook_sandbox.sandbox import Sandbox

__all__ = [
    "GOOD_VERSION",
    "SANDBOX_PACE",
    "FaultUnavailable",
    "Faults",
    "RunResult",
    "SigningKey",
    "Team",
    "TeamRelease",
    "evaluate",
    "new_signing_key",
    "run_runbook",
    "runbook_command",
    "wait_for_verdict",
]

GOOD_VERSION = "v1.0.0"
# The runbook's windows at the sandbox's pace: a profile's production windows (a 2-minute
# sustain, 5-minute smoothing) would make every scenario wait minutes for its breach.
SANDBOX_PACE: dict[str, str] = {
    "step": "2s",
    "prometheus_rate_window": "15s",
    "sustain": "20s",
    "business_smoothing": "30s",
    "recovery_poll": "2s",
    "recovery_within": "2m",
    "verify_settle": "5s",
}
_DIALECTS = {"otel": "otel", "istio": "istio", "prometheus-client": "prometheus"}
_VERSION = re.compile(r"^v(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)$")
_HELM_TIMEOUT_S = 180.0


class FaultUnavailable(RuntimeError):
    """A fault this machine cannot produce (mounting a full disk needs root)."""


def runbook_command() -> list[str]:
    """The ``runbook`` of this Python environment."""
    beside = Path(sys.executable).parent / "runbook"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("runbook")
    if found is None:
        raise FileNotFoundError("no `runbook` command next to this Python or on PATH")
    return [found]


@dataclass(frozen=True)
class Team:
    """What a team brings: its chart, its service profile, maybe a values file and a notebook
    (None: the bundled rollback notebook)."""

    chart: Path
    profile: Path
    values: Path | None = None
    notebook: Path | None = None

    def profile_values(self) -> dict[str, Any]:
        loaded = yaml.safe_load(self.profile.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{self.profile}: a profile is a mapping of settings")
        return loaded

    @property
    def release_name(self) -> str:
        return str(self.profile_values().get("release") or "app")

    @property
    def deployment(self) -> str:
        return str(self.profile_values().get("deployment") or self.release_name)

    @property
    def dialect(self) -> str:
        preset = str(self.profile_values().get("metrics_preset") or "prometheus-client")
        if preset not in _DIALECTS:
            raise ValueError(
                f"{self.profile}: the sandbox's traffic model speaks {sorted(_DIALECTS)}, "
                f"not metrics_preset {preset!r}"
            )
        return _DIALECTS[preset]


def _selector_in(selector: str, namespace: str) -> str:
    """The profile's PromQL selector, narrowed to one namespace (each test has its own)."""
    pair = f'namespace="{namespace}"'
    if re.search(r'\bnamespace\s*=~?\s*"[^"]*"', selector):
        return re.sub(r'\bnamespace\s*=~?\s*"[^"]*"', pair, selector)
    return f"{selector},{pair}" if selector.strip() else pair


@dataclass
class TeamRelease:
    """One release of the team's chart in its own namespace on the sandbox."""

    sandbox: Sandbox
    team: Team
    namespace: str
    name: str = ""
    charts: Path = field(default_factory=Path)
    # Filled in by ``install``: the traffic model sends this release's series.
    selector: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.team.release_name
        if self.charts == Path():
            self.charts = self.sandbox.state_dir / "team-charts" / self.namespace

    # -- helm and kubectl --------------------------------------------------------------------

    def helm(self, *args: str, timeout_s: float = _HELM_TIMEOUT_S) -> str:
        return self.sandbox.helm("--namespace", self.namespace, *args, timeout_s=timeout_s)

    def kubectl(self, *args: str, timeout_s: float = 60.0) -> str:
        return self.sandbox.kubectl("--namespace", self.namespace, *args, timeout_s=timeout_s)

    def _package(self, version: str) -> Path:
        match = _VERSION.match(version)
        if not match:
            raise ValueError(f"version {version!r} is not of the form vMAJOR.MINOR.PATCH")
        out = self.charts / version
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        self.sandbox.helm(
            "package", str(self.team.chart), "--version", match.group(1),
            "--app-version", version, "--destination", str(out),
        )  # fmt: skip
        (packaged,) = out.glob("*.tgz")
        return packaged

    def install(self, version: str = GOOD_VERSION) -> None:
        """The first revision (the good one), then the traffic model serves it."""
        args = ["upgrade", "--install", self.name, str(self._package(version))]
        args += ["--create-namespace"]
        if self.team.values is not None:
            args += ["-f", str(self.team.values)]
        self.helm(*args, "--wait", "--timeout", "120s")
        self.wait_for_one_template()
        labels = json.loads(self.kubectl("get", "deployment", self.deployment, "-o", "json"))
        match = labels["spec"]["selector"]["matchLabels"]
        self.selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        traffic_control.add_target(
            self.sandbox.traffic_url, release=self.name, namespace=self.namespace,
            selector=self.selector, dialect=self.team.dialect, rate=50,
        )  # fmt: skip

    def deploy(
        self,
        version: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        values_file: Path | None = None,
    ) -> int:
        """A new revision: the chart packaged as ``version`` (its appVersion, which the chart's
        images follow) and/or ``values`` set on the current ones (``values_file``: a values
        file on top, for text ``--set`` cannot carry). Returns the new revision, once its pods
        serve alone."""
        if version is None and not values and values_file is None:
            raise ValueError("deploy needs a version, values, or both")
        chart = self._package(version) if version is not None else None
        if chart is None:
            current = self.history()[-1]
            chart = self._package(str(current["app_version"]))
        args = ["upgrade", self.name, str(chart), "--reuse-values"]
        for key, value in (values or {}).items():
            args += ["--set", f"{key}={value}"]
        if values_file is not None:
            args += ["-f", str(values_file)]
        self.helm(*args, "--wait", "--timeout", "120s")
        self.wait_for_one_template()
        return self.revision()

    def uninstall(self) -> None:
        with contextlib.suppress(traffic_control.TrafficControlError):
            traffic_control.remove_target(
                self.sandbox.traffic_url, release=self.name, namespace=self.namespace
            )
        with contextlib.suppress(CommandFailed):
            self.helm("uninstall", self.name, "--wait", "--timeout", "60s")
        with contextlib.suppress(CommandFailed):
            self.sandbox.kubectl("delete", "namespace", self.namespace, "--wait=false")

    # -- what a person reads -----------------------------------------------------------------

    @property
    def deployment(self) -> str:
        return self.team.deployment

    @property
    def lease(self) -> str:
        return f"runbook-rollback-{self.name}"

    def history(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(self.helm("history", self.name, "-o", "json"))
        return rows

    def pending_revision(self) -> int | None:
        """The newest revision when Helm left it ``pending-rollback``, else None."""
        newest = max(self.history(), key=lambda r: int(r["revision"]))
        return int(newest["revision"]) if newest["status"] == "pending-rollback" else None

    def revision(self) -> int:
        """The deployed revision."""
        return int(next(r for r in self.history() if r["status"] == "deployed")["revision"])

    def rollbacks(self) -> list[str]:
        """``helm history``'s descriptions of the rollbacks made, e.g. ``["Rollback to 1"]``."""
        return [
            str(r["description"])
            for r in self.history()
            if str(r["description"]).startswith("Rollback")
        ]

    def _pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(
            self.kubectl("get", "pods", "-l", self.selector or f"app={self.name}", "-o", "json")
        )["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def images(self) -> set[str]:
        """The images the deployment's pods run."""
        return {c["image"] for p in self._pods() for c in p["spec"]["containers"]}

    def template_hashes(self) -> set[str]:
        return {p["metadata"]["labels"].get("pod-template-hash", "") for p in self._pods()}

    def wait_for_one_template(self, timeout_s: float = 90.0) -> str:
        """The pod-template-hash of the deployment's pods once only the newest serve."""
        deadline = time.monotonic() + timeout_s
        spec = json.loads(self.kubectl("get", "deployment", self.deployment, "-o", "json"))
        match = spec["spec"]["selector"]["matchLabels"]
        self.selector = self.selector or ",".join(f"{k}={v}" for k, v in sorted(match.items()))
        while True:
            pods = self._pods()
            hashes = {p["metadata"]["labels"].get("pod-template-hash") for p in pods}
            want = spec["spec"].get("replicas", 1)
            if len(hashes) == 1 and len(pods) == want:
                return str(hashes.pop())
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.namespace}/{self.deployment}: pods {hashes}")
            time.sleep(0.3)
            spec = json.loads(self.kubectl("get", "deployment", self.deployment, "-o", "json"))

    def lease_holder(self) -> str | None:
        out = self.kubectl("get", "lease", self.lease, "--ignore-not-found",
                           "-o", "jsonpath={.spec.holderIdentity}")  # fmt: skip
        return out.strip() or None

    def snapshot(self) -> tuple[Any, ...]:
        """What "nothing changed" compares: the revisions, the images, the Lease."""
        revisions = [(r["revision"], r["status"], r["description"]) for r in self.history()]
        return (revisions, sorted(self.images()), self.lease_holder())

    # -- misbehaviour ------------------------------------------------------------------------

    def break_(
        self,
        *,
        error_ratio: float | None = None,
        p99: float | None = None,
        business_drop: float | None = None,
    ) -> str:
        """The pods of the current revision misbehave (keyed by their pod-template-hash: any
        deploy, of an image or only of values); returns the hash."""
        pod_hash = self.wait_for_one_template()
        traffic_control.set_behaviour(
            self.sandbox.traffic_url, release=self.name, namespace=self.namespace,
            pod_template_hash=pod_hash, error_ratio=error_ratio, latency_p99_s=p99,
            orders_factor=None if business_drop is None else 1.0 - business_drop,
        )  # fmt: skip
        return pod_hash

    # -- a run's parameters ------------------------------------------------------------------

    def parameters(self) -> dict[str, Any]:
        """What every run on this release is given besides the profile: where the release
        and its series are on the sandbox, at the sandbox's pace."""
        selector = str(self.team.profile_values().get("prometheus_selector") or "")
        return {
            "profile": str(self.team.profile),
            **SANDBOX_PACE,
            "namespace": self.namespace,
            "release": self.name,
            "expected_cluster": self.sandbox.context,
            "kubeconfig": str(self.sandbox.kubeconfig),
            "context": self.sandbox.context,
            "prometheus_url": self.sandbox.prometheus_url,
            "prometheus_selector": _selector_in(selector, self.namespace),
        }


def new_namespace(prefix: str = "team") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- faults --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _DownFor(http.server.ThreadingHTTPServer):
    """Prometheus answering 503 until ``until`` (monotonic), then relaying to the real one."""

    daemon_threads = True

    def __init__(self, target: str, until: float) -> None:
        self.target = target.rstrip("/")
        self.until = until
        super().__init__(("127.0.0.1", 0), _Relay)


class _Relay(http.server.BaseHTTPRequestHandler):
    server: _DownFor

    def _relay(self, body: bytes | None) -> None:
        if time.monotonic() < self.server.until:
            self.send_error(503, "Prometheus is down (a game-day fault)")
            return
        request = urllib.request.Request(self.server.target + self.path, data=body,
                                         method=self.command)  # fmt: skip
        if body is not None:
            request.add_header("Content-Type", self.headers.get("Content-Type", ""))
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as err:
            status, payload = err.code, err.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._relay(None)

    def do_POST(self) -> None:
        self._relay(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def log_message(self, *_args: object) -> None:
        pass


@dataclass
class Faults:
    """What goes wrong around the next run: parameters ``run_runbook`` merges (the run's own
    keyword arguments win), and changes to the cluster, undone by ``close``."""

    release: TeamRelease
    folder: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    _undo: list[Callable[[], None]] = field(default_factory=list)

    def prometheus_down(self, for_s: float | None = None) -> str:
        """Prometheus unreachable for good (connection refused), or answering 503 for
        ``for_s`` seconds from now and then itself again. Returns the URL the run gets."""
        if for_s is None:
            url = f"http://127.0.0.1:{_free_port()}"
        else:
            server = _DownFor(self.release.sandbox.prometheus_url, time.monotonic() + for_s)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._undo.append(server.shutdown)
            url = f"http://127.0.0.1:{server.server_address[1]}"
        self.overrides["prometheus_url"] = url
        return url

    def helm_hanging(self, *, applies_first: bool = False, timeout: str = "3s") -> Path:
        """``helm rollback`` hangs (bounded, 120 s) until the run's ``helm_timeout`` kills it;
        with ``applies_first`` it applies the rollback for real before hanging. Every other
        helm command is the real one."""
        real = self.release.sandbox.bin_dir / "helm"
        self.folder.mkdir(parents=True, exist_ok=True)
        wrapper = self.folder / "helm"
        apply = f'  "{real}" "$@" || exit $?\n  touch "{self.folder}/applied"\n'
        wrapper.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = rollback ]; then\n'
            f"{apply if applies_first else ''}"
            f'  echo $$ > "{self.folder}/helm.pid"\n'
            "  exec sleep 120\n"
            "fi\n"
            f'exec "{real}" "$@"\n'
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        self.overrides.update(helm_binary=str(wrapper), helm_timeout=timeout)
        self._undo.append(self._kill_hanging_helm)
        return wrapper

    def rollback_cut_off(self, to_revision: int = 1, timeout_s: float = 60.0) -> int:
        """A ``helm rollback`` to ``to_revision`` cut off after Helm wrote its revision: the
        release is left ``pending-rollback``, as a run killed mid-helm or a helm past its
        timeout leaves it. Real Helm, held back by a ResourceQuota that admits no pod (so
        ``--wait`` waits), then killed; the quota goes with it. Returns the pending revision."""
        release, quota = self.release, "runbook-no-pods"
        release.kubectl("create", "quota", quota, "--hard=pods=0")
        self._undo.append(lambda: release.kubectl("delete", "quota", quota, "--ignore-not-found"))
        # The quota admits pods until its controller has counted them: wait for its status.
        release.kubectl("wait", f"quota/{quota}", "--for=jsonpath={.status.hard.pods}=0",
                        f"--timeout={timeout_s:.0f}s")  # fmt: skip
        sb = release.sandbox
        argv = sb.helm_argv("--namespace", release.namespace, "rollback", release.name,
                            str(to_revision), "--wait", "--timeout", "5m")  # fmt: skip
        helm = subprocess.Popen(argv, env=sb.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + timeout_s
        try:
            while (pending := release.pending_revision()) is None:
                if helm.poll() is not None or time.monotonic() > deadline:
                    raise FaultUnavailable(
                        f"helm rollback ended (exit {helm.poll()}) or wrote no pending "
                        f"revision within {timeout_s:.0f} s: the rollout was not held back"
                    )
                time.sleep(0.2)
        finally:
            helm.kill()
            helm.wait(timeout=30)
        release.kubectl("delete", "quota", quota)
        return pending

    def _kill_hanging_helm(self) -> None:
        pid = self.folder / "helm.pid"
        if pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid.read_text()), 9)

    def evidence_disk_full(self, room_mib: int = 4) -> Path:
        """The evidence goes to a file system nearly full: ``room_mib`` MiB left, far less than
        a bundle needs, so the run must refuse before any change. A real file system (a tmpfs,
        filled); needs root (``FaultUnavailable`` otherwise)."""
        if os.geteuid() != 0:
            raise FaultUnavailable("mounting a full disk for the evidence needs root")
        disk = self.folder / "full-disk"
        disk.mkdir(parents=True, exist_ok=True)
        used_mib = 8
        size = f"{used_mib + room_mib}m"
        argv = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FaultUnavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self._undo.append(lambda: subprocess.run(["umount", "-l", str(disk)], check=False))
        (disk / "filler").write_bytes(b"\0" * (used_mib << 20))
        self.overrides["output_dir"] = str(disk)
        return disk

    def lease_held_by_someone_else(self, holder: str = "alice@laptop/INC-7") -> str:
        """The release's Lease held, renewed now, by another engineer's run."""
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.release.lease, "namespace": self.release.namespace},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 900,
                     "acquireTime": at, "renewTime": at},
        }  # fmt: skip
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "lease.json"
        manifest.write_text(json.dumps(lease))
        self.release.kubectl("apply", "-f", str(manifest))
        self._undo.append(
            lambda: self.release.kubectl(
                "delete", "lease", self.release.lease, "--ignore-not-found"
            )
        )
        return holder

    def api_server_down(self, *, after_s: float = 0.0, for_s: float | None = None) -> Path:
        """The API server goes away for the run (``after_s`` seconds from now; for good, or
        back after ``for_s``): the run talks to it through a relay on 127.0.0.1 that is cut
        (connections refused, open ones reset), while the sandbox itself stays up for
        everyone else. Returns the kubeconfig the run gets."""
        sb = self.release.sandbox
        relay = net_faults.Forwarder(net_faults.api_port(sb.kubeconfig, sb.context))
        self.folder.mkdir(parents=True, exist_ok=True)
        kubeconfig = net_faults.kubeconfig_via(
            sb.kubeconfig, sb.context, relay.port, self.folder / "kubeconfig-via-relay"
        )
        timers = [threading.Timer(after_s, relay.cut)]
        if for_s is not None:
            timers.append(threading.Timer(after_s + for_s, relay.restore))
        for timer in timers:
            timer.daemon = True
            timer.start()

        def undo() -> None:
            for timer in timers:
                timer.cancel()
            relay.cut()

        self._undo.append(undo)
        self.overrides["kubeconfig"] = str(kubeconfig)
        return kubeconfig

    def webhook_failing(self, status: int = 500) -> str:
        """The notification webhook answers every POST with ``status``; returns its URL."""
        return self._webhook(status=status, hang=False)

    def webhook_hanging(self) -> str:
        """The notification webhook accepts the request and never answers (until the test
        ends); returns its URL."""
        return self._webhook(status=200, hang=True)

    def _webhook(self, *, status: int, hang: bool) -> str:
        released = threading.Event()

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if hang:
                    released.wait(600)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._undo.append(lambda: (released.set(), server.shutdown(), server.server_close()))
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/game-day"
        self.overrides["slack_webhook_url"] = url
        return url

    def close(self) -> None:
        for undo in reversed(self._undo):
            with contextlib.suppress(Exception):
                undo()
        self._undo.clear()


# -- signed evidence -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """An SSH key a run signs its evidence manifest with (its ``signing_key``), and the
    allowed-signers file that names it, which ``runbook verify-evidence --allowed-signers``
    checks the signature against."""

    key: Path
    allowed_signers: Path
    principal: str


def new_signing_key(folder: Path, principal: str = "game-day@runbook") -> SigningKey:
    """A fresh ed25519 key (no passphrase) in ``folder``, allowed to sign evidence
    (``ssh-keygen -Y``'s namespace for it). ``FaultUnavailable`` without ``ssh-keygen``."""
    from runbook_lib.adapters.ssh_sign import NAMESPACE

    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise FaultUnavailable("signing the evidence needs ssh-keygen (OpenSSH)")
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "evidence-key"
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
                   check=True, capture_output=True)  # fmt: skip
    kind, public = key.with_suffix(".pub").read_text().split()[:2]
    allowed = folder / "allowed_signers"
    allowed.write_text(f'{principal} namespaces="{NAMESPACE}" {kind} {public}\n')
    return SigningKey(key, allowed, principal)


# -- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One ``runbook run rollback``: its ending as its timeline says, and what it printed."""

    ending: Ending
    exit_status: int
    stdout: str
    stderr: str
    folder: Path  # the incident's evidence folder


def _argv(notebook: Path | None, output_dir: Path, params: Mapping[str, Any]) -> list[str]:
    argv = [*runbook_command(), "run", "rollback", "--quiet", "--output-dir", str(output_dir)]
    if notebook is not None:
        argv += ["--notebook", str(notebook)]
    for name, value in params.items():
        argv += ["-r" if isinstance(value, str) else "-p", name, str(value)]
    return argv


@dataclass
class Started:
    """A run still going (``start_runbook``)."""

    proc: subprocess.Popen[str]
    folder: Path

    def finish(self, timeout_s: float = 600.0) -> RunResult:
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.communicate()
        return read_run(self.folder, self.proc.returncode, out, err)

    def crash(self) -> None:
        """The machine dies: the command, its kernel and the helm it started, all at once."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.proc.communicate(timeout=30)


def start_runbook(
    release: TeamRelease,
    output_dir: Path,
    /,
    *,
    notebook: Path | None = None,
    faults: Faults | None = None,
    **parameters: Any,
) -> Started:
    """``runbook run rollback`` started in the background, in a process group of its own."""
    params: dict[str, Any] = {
        **release.parameters(),
        "incident_id": f"GD-{uuid.uuid4().hex[:6]}",
        "confirm": True,
        "console": False,
        **(faults.overrides if faults is not None else {}),
        **parameters,
    }
    out_dir = Path(params.pop("output_dir", output_dir))
    notebook = notebook or release.team.notebook
    env = {**os.environ, **release.sandbox.env}
    if notebook is not None:
        # The notebook's own modules (a step of the team's) import from its folder.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(notebook.resolve().parent), env.get("PYTHONPATH", "")) if p
        )
    proc = subprocess.Popen(_argv(notebook, out_dir, params), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    return Started(proc, out_dir / str(params["incident_id"]))


def read_run(folder: Path, status: int, stdout: str = "", stderr: str = "") -> RunResult:
    """The run's ``Ending`` from its timeline, with the seal as ``verify-evidence`` finds it."""
    timeline = folder / "timeline.jsonl"
    if not timeline.exists():
        raise AssertionError(f"the run left no timeline in {folder} (exit {status}): {stderr}")
    verified = subprocess.run([*runbook_command(), "verify-evidence", str(folder)],
                              capture_output=True, text=True, check=False)  # fmt: skip
    seal = Seal(
        sealed=verified.returncode == 0,
        signed=(folder / "MANIFEST.sha256.sig").exists(),
        problems=() if verified.returncode == 0 else (verified.stdout + verified.stderr,),
    )
    ending = Ending.of(Timeline(timeline).events, seal=seal)
    return RunResult(ending, status, stdout, stderr, folder)


def run_runbook(
    release: TeamRelease,
    output_dir: Path,
    /,
    *,
    notebook: Path | None = None,
    faults: Faults | None = None,
    timeout_s: float = 600.0,
    **parameters: Any,
) -> RunResult:
    """``runbook run rollback`` on ``release`` with the team's profile and notebook, the
    faults' parameters and ``parameters`` (which win), to the end."""
    started = start_runbook(release, output_dir, notebook=notebook, faults=faults, **parameters)
    return started.finish(timeout_s)


# -- the decision on live series or a replay -----------------------------------------------------


def evaluate(profile: Path | None = None, **settings: Any) -> Any:
    """ "When to Rollback" on a replay (``replay_csv=``) or live Prometheus, with the profile:
    the ``Decision``, exactly as the notebook's ``decide`` makes it."""
    from runbook_lib import assessment

    raw = {k: v for k, v in settings.items() if v is not None}
    if raw.get("replay_csv"):
        raw.setdefault("prometheus_url", "")  # the replay, not the profile's Prometheus
    if profile is not None:
        raw["profile"] = str(profile)
    checked = assessment.check_settings(raw)
    return assessment.decide(checked, assessment.read_window(checked))


def wait_for_verdict(
    release: TeamRelease, verdict: Verdict, *, timeout_s: float = 180.0, **settings: Any
) -> Any:
    """Poll the decision on the release's live series (since its last deploy) until it is
    ``verdict``; returns that ``Decision``. Bounded: ``TimeoutError`` after ``timeout_s``."""
    params = release.parameters()
    deployed = last_deploy_time(release.helm("history", release.name, "-o", "json")).isoformat()
    keep = ("prometheus_url", "prometheus_selector", *SANDBOX_PACE)
    given = {k: params[k] for k in keep if k in params}
    given.pop("recovery_poll", None)
    given.pop("recovery_within", None)
    given.pop("verify_settle", None)
    deadline = time.monotonic() + timeout_s
    while True:
        decision = evaluate(release.team.profile, deployed_at=deployed, **{**given, **settings})
        if decision.verdict is verdict:
            return decision
        if time.monotonic() > deadline:
            raise TimeoutError(f"the verdict is still {decision.verdict} after {timeout_s:.0f} s")
        time.sleep(2.0)


@contextlib.contextmanager
def team_release(sandbox: Sandbox, team: Team, *, prefix: str = "team") -> Iterator[TeamRelease]:
    """A fresh release in its own namespace, removed afterwards."""
    release = TeamRelease(sandbox, team, new_namespace(prefix))
    try:
        release.install()
        yield release
    finally:
        release.uninstall()
