"""Where the sandbox keeps things, and which loopback ports one sandbox uses.

Everything is derived from three environment variables (docs/CONTRACTS.md, "Several sandboxes
at once") so that parallel test runs never share a cluster, a state dir or a port:
``RUNBOOK_SANDBOX_NAME``, ``RUNBOOK_SANDBOX_STATE`` and ``RUNBOOK_SANDBOX_PORT_BASE``.
The binary cache (``RUNBOOK_SANDBOX_CACHE``) is shared: it only holds pinned builds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from runbook_lib.errors import ParameterError

__all__ = [
    "Ports",
    "build_dir",
    "cache_bin_dir",
    "cache_root",
    "chart_dir",
    "cluster_name",
    "component_hash",
    "context_name",
    "data_dir",
    "kubeconfig_path",
    "kwok_dir",
    "migrations_dir",
    "own_cache_tables",
    "pin_hash",
    "ports",
    "repo_root",
    "state_dir",
    "traffic_config",
]

DEFAULT_NAME = "runbook"
DEFAULT_PORT_BASE = 19000
BUILD_RECIPE = "1"


def repo_root() -> Path:
    """The checkout this package lives in (``sandbox/harness`` is two levels below it).

    Only meaningful in a source checkout; data the sandbox reads comes from ``data_dir()``,
    which works in an installed wheel too.
    """
    return Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The sandbox's data: ``sandbox/`` in a checkout, the package ``runbook_sandbox.data``
    in a wheel (chart, kwok config, build pins, migrations, traffic model).

    Found through importlib.resources so that an installed ``runbook sandbox`` works away
    from the source tree; a file-system path because helm, kwokctl and go need one.
    """
    return Path(str(resources.files("runbook_sandbox.data")))


def build_dir() -> Path:
    """``sandbox/build``: pins and wrapper Go modules (committed)."""
    return data_dir() / "build"


def chart_dir() -> Path:
    """``sandbox/chart/app``: the demo release's Helm chart."""
    return data_dir() / "chart" / "app"


def kwok_dir() -> Path:
    """``sandbox/kwok``: the kwokctl cluster config template and the fake nodes."""
    return data_dir() / "kwok"


def migrations_dir() -> Path:
    """``sandbox/migrations``: the demo app's migration tool (``migrate``) and its versions."""
    return data_dir() / "migrations"


def traffic_config() -> Path:
    """``sandbox/traffic/versions.yaml``: how each app version behaves."""
    return data_dir() / "traffic" / "versions.yaml"


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


OWN_CACHE_MARKER = b"#### components below: own cache key"


def _pins_parts() -> tuple[bytes, bytes]:
    """pins.toml split at ``OWN_CACHE_MARKER``: the shared-key part, then the rest.

    The shared part is byte for byte what pins.toml held before the marker existed, so the
    control-plane cache key did not change when the marker and Jaeger were added.
    """
    text = (build_dir() / "pins.toml").read_bytes()
    head, sep, tail = text.partition(b"\n" + OWN_CACHE_MARKER)
    return head, (sep.lstrip(b"\n") + tail)


def own_cache_tables() -> dict[str, dict[str, object]]:
    """The pins below the marker, each cached under its own ``component_hash``."""
    _, tail = _pins_parts()
    return tomllib.loads(tail.decode()) if tail else {}


def pin_hash() -> str:
    """Cache key of the shared bin dir: the pins above ``OWN_CACHE_MARKER``, their wrapper
    modules, the build recipe and the Go version.

    ``BUILD_RECIPE`` stands for the flags ``binaries.py`` passes: a binary built with other
    ldflags is a different binary, so bump it whenever they change. ``go.sum`` is not part
    of the key: it only verifies the versions go.mod names, and the first build completes it.
    Components below the marker (and their wrapper folders) have their own key.
    """
    digest = hashlib.sha256()
    root = build_dir()
    head, _ = _pins_parts()
    digest.update(b"pins.toml\0" + head + b"\0")
    own = {str(t.get("wrapper")) for t in own_cache_tables().values() if t.get("wrapper")}
    for path in sorted(root.glob("*/go.mod")):
        if path.parent.name not in own:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{BUILD_RECIPE}\0{_go_version()}".encode())
    return digest.hexdigest()[:16]


def component_hash(name: str, *, recipe: str = "") -> str:
    """Cache key of one component below the marker: its pin table, its wrapper's go.mod,
    ``recipe`` (its build flags) and the Go version. Nothing else changes it."""
    table = own_cache_tables()[name]
    digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode() + b"\0")
    wrapper = table.get("wrapper")
    gomod = build_dir() / str(wrapper) / "go.mod"
    if wrapper and gomod.exists():
        digest.update(gomod.read_bytes() + b"\0")
    digest.update(f"{recipe}\0{_go_version()}".encode())
    return f"{name}-{digest.hexdigest()[:16]}"


def cache_bin_dir() -> Path:
    return cache_root() / pin_hash() / "bin"


def cluster_name() -> str:
    return os.environ.get("RUNBOOK_SANDBOX_NAME") or DEFAULT_NAME


def context_name() -> str:
    """kwokctl names the kube context ``kwok-<cluster name>``."""
    return f"kwok-{cluster_name()}"


def state_dir() -> Path:
    """``$RUNBOOK_SANDBOX_STATE``; else ``sandbox/.state`` in a checkout, or the user's state
    directory (``$XDG_STATE_HOME/runbook-sandbox``) when installed: never inside the package."""
    explicit = os.environ.get("RUNBOOK_SANDBOX_STATE")
    if explicit:
        return Path(explicit)
    data = data_dir()
    if (data.parent / "pyproject.toml").is_file():
        return data / ".state"
    home = Path(os.environ.get("HOME", "/root"))
    return Path(os.environ.get("XDG_STATE_HOME") or home / ".local" / "state") / "runbook-sandbox"


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

    @property
    def alertmanager(self) -> int:
        """Alertmanager's API and UI; Prometheus sends the runbook's alerts here."""
        return self.base + 95

    @property
    def receiver(self) -> int:
        """Where the sandbox's Alertmanager posts: ``runbook serve`` (not started by ``up``)."""
        return self.base + 89

    @property
    def jaeger_query(self) -> int:
        """Jaeger's query API and UI (HTTP)."""
        return self.base + 96

    @property
    def jaeger_otlp_http(self) -> int:
        return self.base + 97

    @property
    def jaeger_otlp_grpc(self) -> int:
        return self.base + 98

    @property
    def jaeger_query_grpc(self) -> int:
        return self.base + 99

    def jaeger_ports(self) -> tuple[int, ...]:
        return (
            self.jaeger_query,
            self.jaeger_otlp_http,
            self.jaeger_otlp_grpc,
            self.jaeger_query_grpc,
        )

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
        return (
            *self.cluster_ports(),
            self.prometheus,
            self.traffic,
            self.alertmanager,
            *self.jaeger_ports(),
        )


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
