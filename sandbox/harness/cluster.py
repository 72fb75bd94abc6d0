"""The sandbox cluster's lifecycle: kwokctl's binary runtime running our pinned binaries.

``up`` creates the cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
the kwok controller as local processes, all on 127.0.0.1), adds two fake nodes and writes the
kubeconfig to ``<state>/kubeconfig``. ``down`` deletes it and then checks, by process table
and by port, that nothing of it is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from runbook_lib.errors import CommandFailed
from runbook_sandbox import paths, pod_delays

__all__ = [
    "ClusterEnv",
    "Leftovers",
    "bound_ports",
    "create",
    "delete",
    "env",
    "is_running",
    "leftovers",
]

KWOK_DIR = paths.kwok_dir()


@dataclass(frozen=True)
class ClusterEnv:
    """Everything a command against this sandbox needs: binaries, state, ports."""

    name: str
    state: Path
    bin_dir: Path
    ports: paths.Ports

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def context(self) -> str:
        return f"kwok-{self.name}"

    @property
    def kwok_workdir(self) -> Path:
        return self.state / "kwok"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def vars(self) -> dict[str, str]:
        """Environment for child processes: our binaries first on PATH, our kubeconfig."""
        venv_bin = str(Path(sys.executable).parent)
        path = os.pathsep.join([str(self.bin_dir), venv_bin, os.environ.get("PATH", "")])
        return {
            **os.environ,
            "PATH": path,
            "KUBECONFIG": str(self.kubeconfig),
            # kwokctl keeps each cluster's files (pids, certs, logs) under its workdir.
            "KWOK_WORKDIR": str(self.kwok_workdir),
        }


def env() -> ClusterEnv:
    return ClusterEnv(
        name=paths.cluster_name(),
        state=paths.state_dir(),
        bin_dir=paths.cache_bin_dir(),
        ports=paths.ports(),
    )


def run(
    ce: ClusterEnv, argv: list[str], *, timeout_s: float = 120.0, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a sandbox binary with the sandbox's environment; raise ``CommandFailed`` on error."""
    try:
        proc = subprocess.run(
            argv, env=ce.vars, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as err:
        raise CommandFailed(
            f"{argv[0]} not found; run `runbook sandbox build`", command=" ".join(argv)
        ) from err
    except subprocess.TimeoutExpired as err:
        raise CommandFailed(
            f"{argv[0]} did not finish within {timeout_s:.0f}s",
            command=" ".join(argv),
            stderr=str(err.stderr or ""),
            retryable=True,
        ) from err
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{Path(argv[0]).name} exited {proc.returncode}",
            command=" ".join(argv),
            stderr=proc.stderr,
            returncode=proc.returncode,
        )
    return proc


def _cluster_dir(ce: ClusterEnv) -> Path:
    return ce.kwok_workdir / "clusters" / ce.name


def _write_config(ce: ClusterEnv) -> Path:
    template = Template((KWOK_DIR / "cluster.yaml").read_text())
    text = template.substitute(
        migrations_dir=str(paths.migrations_dir()),
        migrate_db=str(ce.state / "app.db"),
        api_log=str(ce.logs_dir / "api.log"),
        unregistered_log=str(ce.logs_dir / "pods" / "unregistered.log"),
        path=ce.vars["PATH"],
        kube_apiserver_port=ce.ports.kube_apiserver,
        etcd_port=ce.ports.etcd,
        etcd_peer_port=ce.ports.etcd_peer,
        kube_controller_manager_port=ce.ports.kube_controller_manager,
        kube_scheduler_port=ce.ports.kube_scheduler,
        kwok_controller_port=ce.ports.kwok_controller,
    )
    path = ce.kwok_workdir / "kwokctl.yaml"
    path.write_text(text)
    return path


def is_running(ce: ClusterEnv) -> bool:
    """True when this sandbox's API server answers ``/readyz``."""
    if not ce.kubeconfig.exists() or not (ce.bin_dir / "kubectl").exists():
        return False
    proc = run(
        ce,
        ["kubectl", "--context", ce.context, "get", "--raw", "/readyz", "--request-timeout=3s"],
        timeout_s=10,
        check=False,
    )
    return proc.returncode == 0 and proc.stdout.strip() == "ok"


def create(ce: ClusterEnv, *, pod_ready_delay_s: float = 0.0, timeout_s: float = 120.0) -> None:
    """Start the control plane and two fake nodes (``runbook sandbox up``, cluster part).

    ``pod_ready_delay_s`` > 0: pods become Ready that long (to 1.5x) after scheduling; set
    before the nodes exist (``pod_delays`` says why).

    Raises ``CommandFailed`` if kwokctl cannot create the cluster (its stderr names why;
    the components' own logs are under ``<state>/kwok/clusters/<name>/logs``).
    """
    busy = bound_ports(ce.ports.cluster_ports())
    if busy:
        raise CommandFailed(
            f"ports {busy} on 127.0.0.1 are in use; another sandbox may be running. Set "
            "RUNBOOK_SANDBOX_PORT_BASE to use other ports, or run `runbook sandbox down`.",
            retryable=False,
        )
    ce.kwok_workdir.mkdir(parents=True, exist_ok=True)
    ce.logs_dir.mkdir(parents=True, exist_ok=True)
    # A new cluster starts a new request log (kwok serves it as the api pods' logs).
    (ce.logs_dir / "api.log").write_text("")
    # Each api pod's own log (runbook_sandbox.pod_logs); a pod the traffic model has not
    # registered yet shows the empty "unregistered" log, never another pod's lines.
    shutil.rmtree(ce.logs_dir / "pods", ignore_errors=True)
    (ce.logs_dir / "pods").mkdir()
    (ce.logs_dir / "pods" / "unregistered.log").write_text("")
    (ce.logs_dir / "inject.log").unlink(missing_ok=True)
    config = _write_config(ce)
    b = ce.bin_dir
    argv = [
        str(b / "kwokctl"),
        "create",
        "cluster",
        "--name",
        ce.name,
        "--config",
        str(config),
        "--runtime",
        "binary",
        "--kubeconfig",
        str(ce.kubeconfig),
        "--etcd-binary",
        str(b / "etcd"),
        "--kube-apiserver-binary",
        str(b / "kube-apiserver"),
        "--kube-controller-manager-binary",
        str(b / "kube-controller-manager"),
        "--kube-scheduler-binary",
        str(b / "kube-scheduler"),
        "--kwok-controller-binary",
        str(b / "kwok"),
        "--wait",
        f"{timeout_s:.0f}s",
    ]
    proc = subprocess.run(
        argv,
        env=ce.vars,
        capture_output=True,
        text=True,
        timeout=timeout_s + 30,
        check=False,
    )
    (ce.logs_dir / "kwokctl-create.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise CommandFailed(
            f"kwokctl could not create cluster {ce.name!r}; component logs under "
            f"{_cluster_dir(ce) / 'logs'}",
            command=" ".join(argv),
            stderr=proc.stderr,
            returncode=proc.returncode,
        )
    if pod_ready_delay_s > 0:
        pod_delays.apply(_cluster_dir(ce), pod_ready_delay_s, healthz_port=ce.ports.kwok_controller)
    run(ce, ["kubectl", "--context", ce.context, "apply", "-f", str(KWOK_DIR / "nodes.yaml")])
    run(
        ce,
        [
            "kubectl",
            "--context",
            ce.context,
            "wait",
            "--for=condition=Ready",
            "node",
            "--all",
            f"--timeout={timeout_s:.0f}s",
        ],
        timeout_s=timeout_s + 10,
    )
    # The controller-manager creates each namespace's "default" ServiceAccount a moment after
    # the API answers; until then admission refuses every pod ("serviceaccount not found"),
    # so installing the chart right away fails now and then.
    run(
        ce,
        [
            "kubectl",
            "--context",
            ce.context,
            "--namespace",
            "default",
            "wait",
            "--for=create",
            "serviceaccount/default",
            f"--timeout={timeout_s:.0f}s",
        ],
        timeout_s=timeout_s + 10,
    )


def delete(ce: ClusterEnv, *, timeout_s: float = 30.0) -> None:
    """Stop every process of the cluster and remove its files (``runbook sandbox down``).

    kwokctl signals the components and returns; etcd and the API server then take a moment
    to shut down, still holding their ports. So this waits for the processes themselves to
    be gone (ending any that outlive ``timeout_s``) and for the ports to be released.
    """
    # Found by command line rather than kwokctl's pid files, which can be stale and name
    # a reused pid: every component names its files under this sandbox's kwok workdir.
    pids = set(_processes_using(ce.kwok_workdir))
    if (ce.bin_dir / "kwokctl").exists() and _cluster_dir(ce).exists():
        run(
            ce,
            [
                str(ce.bin_dir / "kwokctl"),
                "delete",
                "cluster",
                "--name",
                ce.name,
                "--kubeconfig",
                str(ce.kubeconfig),
            ],
            timeout_s=120,
            check=False,
        )
    # Anything kwokctl did not stop (a crashed create, a stale pid file) is ended here, by
    # its own pid.
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = {pid for pid in pids if _alive(pid)}
        time.sleep(0.1)
    for pid in pids | set(_processes_using(ce.kwok_workdir)):
        _terminate(pid)
    while bound_ports(ce.ports.cluster_ports()) and time.monotonic() < deadline:
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass(frozen=True)
class Leftovers:
    """What is still alive of a sandbox after ``down``: both empty means fully stopped."""

    pids: tuple[int, ...]
    ports: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.pids or self.ports)


def leftovers(ce: ClusterEnv) -> Leftovers:
    return Leftovers(
        pids=tuple(_processes_using(ce.state)), ports=tuple(bound_ports(ce.ports.all_ports()))
    )


def bound_ports(ports: tuple[int, ...]) -> list[int]:
    """Ports on 127.0.0.1 that a live socket is bound to (listening or not).

    SO_REUSEADDR makes the probe ignore TIME_WAIT leftovers of closed connections: servers
    set it too, so those never stop a restart.
    """
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def _ancestors() -> set[int]:
    """This process and its parents: a shell or pytest naming the state dir is not a leftover."""
    pids = set()
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def _processes_using(directory: Path) -> list[int]:
    """Pids (not ours) whose command line names ``directory``."""
    marker = str(directory.resolve())
    mine = _ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def _terminate(pid: int, *, grace_s: float = 5.0) -> None:
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
