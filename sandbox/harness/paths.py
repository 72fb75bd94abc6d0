"""Where the sandbox keeps things, and which loopback ports one sandbox uses.

Everything is derived from three environment variables (docs/CONTRACTS.md, "Several sandboxes
at once") so that parallel test runs never share a cluster, a state dir or a port:
``RUNBOOK_SANDBOX_NAME``, ``RUNBOOK_SANDBOX_STATE`` and ``RUNBOOK_SANDBOX_PORT_BASE``.
The binary cache (``RUNBOOK_SANDBOX_CACHE``) is shared: it only holds pinned builds.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from runbook_lib.errors import ParameterError

__all__ = [
    "Ports",
    "build_dir",
    "cache_bin_dir",
    "cache_root",
    "cluster_name",
    "context_name",
    "kubeconfig_path",
    "pin_hash",
    "ports",
    "repo_root",
    "state_dir",
]

DEFAULT_NAME = "runbook"
DEFAULT_PORT_BASE = 19000
BUILD_RECIPE = "1"


def repo_root() -> Path:
    """The checkout this package lives in (``sandbox/harness`` is two levels below it)."""
    return Path(__file__).resolve().parents[2]


def build_dir() -> Path:
    """``sandbox/build``: pins and wrapper Go modules (committed)."""
    return repo_root() / "sandbox" / "build"


def cache_root() -> Path:
    default = Path(os.environ.get("HOME", "/root")) / ".cache" / "runbook-sandbox"
    return Path(os.environ.get("RUNBOOK_SANDBOX_CACHE") or default)


@cache
def _go_version() -> str:
    try:
        out = subprocess.run(
            ["go", "env", "GOVERSION"], capture_output=True, text=True, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return "no-go"
    return out.stdout.strip()


def pin_hash() -> str:
    """Cache key: the pins, the wrapper modules, the build recipe and the Go version.

    ``BUILD_RECIPE`` stands for the flags ``binaries.py`` passes: a binary built with other
    ldflags is a different binary, so bump it whenever they change. ``go.sum`` is not part
    of the key: it only verifies the versions go.mod names, and the first build completes it.
    """
    digest = hashlib.sha256()
    root = build_dir()
    files = [root / "pins.toml"]
    files += sorted(root.glob("*/go.mod"))
    for path in files:
        if path.exists():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{BUILD_RECIPE}\0{_go_version()}".encode())
    return digest.hexdigest()[:16]


def cache_bin_dir() -> Path:
    return cache_root() / pin_hash() / "bin"


def cluster_name() -> str:
    return os.environ.get("RUNBOOK_SANDBOX_NAME") or DEFAULT_NAME


def context_name() -> str:
    """kwokctl names the kube context ``kwok-<cluster name>``."""
    return f"kwok-{cluster_name()}"


def state_dir() -> Path:
    return Path(os.environ.get("RUNBOOK_SANDBOX_STATE") or repo_root() / "sandbox" / ".state")


def kubeconfig_path() -> Path:
    return state_dir() / "kubeconfig"


@dataclass(frozen=True)
class Ports:
    """Loopback ports of one sandbox, all offsets from one base (CONTRACTS.md)."""

    base: int

    @property
    def kube_apiserver(self) -> int:
        return self.base + 43

    @property
    def etcd(self) -> int:
        return self.base + 79

    @property
    def etcd_peer(self) -> int:
        return self.base + 80

    @property
    def prometheus(self) -> int:
        return self.base + 90

    @property
    def traffic(self) -> int:
        return self.base + 91

    @property
    def kube_controller_manager(self) -> int:
        return self.base + 92

    @property
    def kube_scheduler(self) -> int:
        return self.base + 93

    @property
    def kwok_controller(self) -> int:
        return self.base + 94

    def cluster_ports(self) -> tuple[int, ...]:
        """Ports the cluster itself binds (the metrics stack owns prometheus and traffic)."""
        return (
            self.kube_apiserver,
            self.etcd,
            self.etcd_peer,
            self.kube_controller_manager,
            self.kube_scheduler,
            self.kwok_controller,
        )

    def all_ports(self) -> tuple[int, ...]:
        return (*self.cluster_ports(), self.prometheus, self.traffic)


def ports() -> Ports:
    raw = os.environ.get("RUNBOOK_SANDBOX_PORT_BASE") or str(DEFAULT_PORT_BASE)
    try:
        base = int(raw)
    except ValueError as err:
        problem = f"RUNBOOK_SANDBOX_PORT_BASE: not an integer: {raw!r}"
        raise ParameterError([problem]) from err
    if not 1024 <= base <= 65535 - 100:
        raise ParameterError([f"RUNBOOK_SANDBOX_PORT_BASE: {base} is outside 1024..65435"])
    return Ports(base)
