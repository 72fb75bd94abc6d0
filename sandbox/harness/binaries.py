"""Build the sandbox's Go programs once, from the Go module proxy, into the pinned cache.

``runbook sandbox build`` (and ``up``, when something is missing). Each component in
``sandbox/build/pins.toml`` is built with one ``go`` command so its main packages share one
compile, into a staging directory that is moved into the cache only when complete: an
interrupted build never leaves a half-written binary that a later run would trust.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runbook_lib.errors import CommandFailed
from runbook_sandbox import paths, wrappers

__all__ = ["Component", "binary_path", "build", "components", "missing_binaries"]

Progress = Callable[[str], None]
HEARTBEAT_S = 30.0


@dataclass(frozen=True)
class Component:
    """One pinned Go module and the binaries it provides (a table of pins.toml)."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    wrapper: str | None = None  # folder under sandbox/build holding a wrapper go.mod
    rename: dict[str, str] = field(default_factory=dict)
    tool: bool = False  # the wrapper declares the program with `go get -tool`
    own_cache: bool = False  # below pins.toml's marker: cached under its own key

    @property
    def bin_dir(self) -> Path:
        """Where its binaries go: the shared pinned bin dir, or its own one."""
        if self.own_cache:
            key = paths.component_hash(self.name, recipe=self.ldflags())
            return paths.cache_root() / key / "bin"
        return paths.cache_bin_dir()

    @property
    def import_paths(self) -> tuple[str, ...]:
        return tuple(f"{self.module}/{p}".rstrip("/") for p in self.packages)

    @property
    def binaries(self) -> tuple[str, ...]:
        """Names in the cache bin dir: the go-chosen name, renamed where pins say so."""
        names = []
        for path in self.import_paths:
            parts = path.split("/")
            # go names a binary after the last element that is not a major-version suffix.
            last = parts[-2] if _is_major_suffix(parts[-1]) else parts[-1]
            names.append(self.rename.get(last, last))
        return tuple(names)

    def ldflags(self) -> str:
        """Version stamps, so each program reports its real release (kwokctl reads them)."""
        flags = ["-s", "-w"]
        if self.module == "k8s.io/kubernetes":
            major, minor = self.version.lstrip("v").split(".")[:2]
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
                flags += [
                    f"-X {pkg}.gitVersion={self.version}",
                    f"-X {pkg}.gitMajor={major}",
                    f"-X {pkg}.gitMinor={minor}",
                    f"-X {pkg}.gitTreeState=clean",
                    f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
                ]
        elif self.module == "sigs.k8s.io/kwok":
            kube = components()["kubernetes"].version.lstrip("v")
            flags += [
                f"-X sigs.k8s.io/kwok/pkg/consts.Version={self.version.lstrip('v')}",
                # The Kubernetes release kwokctl assumes when choosing component flags.
                f"-X sigs.k8s.io/kwok/pkg/consts.KubeVersion={kube}",
            ]
        elif self.module.startswith("helm.sh/helm/"):
            flags.append(f"-X {self.module}/internal/version.version={self.version}")
        elif self.module == "github.com/jaegertracing/jaeger":
            flags.append(f"-X {self.module}/internal/version.latestVersion={self.version}")
        return " ".join(flags)


def _is_major_suffix(element: str) -> bool:
    return element.startswith("v") and element[1:].isdigit()


def components() -> dict[str, Component]:
    """The pins, in build order."""
    with (paths.build_dir() / "pins.toml").open("rb") as f:
        raw = tomllib.load(f)
    own = set(paths.own_cache_tables())
    return {
        name: Component(
            name=name,
            module=table["module"],
            version=table["version"],
            packages=tuple(table["packages"]),
            wrapper=table.get("wrapper"),
            rename=dict(table.get("rename", {})),
            tool=bool(table.get("tool", False)),
            own_cache=name in own,
        )
        for name, table in raw.items()
    }


def missing_binaries(bin_dir: Path | None = None) -> list[str]:
    """Binaries not built yet (``bin_dir`` overrides the shared dir, not a component's own)."""
    missing = []
    for comp in components().values():
        where = comp.bin_dir if comp.own_cache or bin_dir is None else bin_dir
        missing += [b for b in comp.binaries if not (where / b).is_file()]
    return missing


def binary_path(name: str) -> Path:
    """The cached binary ``name`` (e.g. ``jaeger``), wherever its component is cached."""
    for comp in components().values():
        if name in comp.binaries:
            return comp.bin_dir / name
    raise KeyError(f"no pinned component provides {name!r}")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # A pinned build must not switch toolchains behind our back, nor stamp VCS state.
    env["GOTOOLCHAIN"] = "local"
    env["GOFLAGS"] = "-buildvcs=false"
    return env


def _command(comp: Component, staging: Path) -> tuple[list[str], Path, dict[str, str]]:
    env = _go_env()
    ldflags = ["-trimpath", "-ldflags", comp.ldflags()]
    if comp.wrapper:
        # -mod=mod lets the first build complete the committed go.sum.
        env["GOFLAGS"] += " -mod=mod"
        argv = ["go", "build", "-v", *ldflags, "-o", f"{staging}/", *comp.import_paths]
        return argv, paths.build_dir() / comp.wrapper, env
    env["GOBIN"] = str(staging)
    argv = ["go", "install", "-v", *ldflags, *(f"{p}@{comp.version}" for p in comp.import_paths)]
    return argv, staging, env


def _build_one(comp: Component, *, bin_dir: Path, log_dir: Path, progress: Progress) -> float:
    # Per process: two `up`s building the same component never share a staging dir.
    staging = bin_dir.parent / f".staging-{comp.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = log_dir / f"{comp.name}.log"
    argv, cwd, env = _command(comp, staging)
    started = time.monotonic()
    packages = 0
    with log_path.open("w") as log:
        log.write(f"$ (cd {cwd} && {' '.join(argv)})\n")
        log.flush()
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.PIPE, text=True
            )
        except OSError as err:
            raise CommandFailed(
                f"building {comp.name}: cannot run go ({err}); install Go 1.26+",
                command=" ".join(argv),
                retryable=False,
            ) from err
        stop = threading.Event()

        def heartbeat() -> None:
            # go build -v prints one line per package it compiles: a cheap progress count.
            while not stop.wait(HEARTBEAT_S):
                progress(f"  {comp.name}: {packages} packages, {time.monotonic() - started:.0f}s")

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        assert proc.stderr is not None
        for line in proc.stderr:
            log.write(line)
            if not line.startswith("go: "):
                packages += 1
        rc = proc.wait()
        stop.set()
    elapsed = time.monotonic() - started
    if rc != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise CommandFailed(
            f"building {comp.name} {comp.version} failed (exit {rc}); full log: {log_path}",
            command=" ".join(argv),
            stderr="\n".join(tail),
            returncode=rc,
        )
    for path in comp.import_paths:
        produced = path.split("/")[-2 if _is_major_suffix(path.split("/")[-1]) else -1]
        target = comp.rename.get(produced, produced)
        src = staging / produced
        if not src.is_file():
            raise CommandFailed(
                f"building {comp.name}: go reported success but {produced} is missing;"
                f" log: {log_path}",
                command=" ".join(argv),
            )
        os.replace(src, bin_dir / target)
    shutil.rmtree(staging, ignore_errors=True)
    return elapsed


def build(
    *, force: bool = False, progress: Progress | None = None, only: tuple[str, ...] = ()
) -> Path:
    """Build every pinned binary that is not cached yet; return the shared cache bin dir.

    Implements ``runbook sandbox build``. Idempotent: a component whose binaries are all
    present is skipped. ``only`` limits the build to the named components (pins.toml table
    names). Raises ``CommandFailed`` naming the component and its log file.
    """
    say: Progress = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    comps = [c for c in components().values() if not only or c.name in only]
    for comp in comps:
        # A version edited in pins.toml: regenerate its wrapper first, since the wrapper's
        # go.mod is part of the cache key.
        wrapper_dir = paths.build_dir() / comp.wrapper if comp.wrapper else None
        if wrapper_dir and comp.tool:
            if not wrappers.tool_wrapper_is_current(
                wrapper_dir, comp.module, comp.version, comp.import_paths
            ):
                say(f"{comp.name}: writing tool wrapper module for {comp.version} in {wrapper_dir}")
                wrappers.write_tool_wrapper(wrapper_dir, comp.version, comp.import_paths)
        elif wrapper_dir and not wrappers.wrapper_is_current(
            wrapper_dir, comp.module, comp.version
        ):
            say(f"{comp.name}: writing wrapper module for {comp.version} in {wrapper_dir}")
            wrappers.write_wrapper(wrapper_dir, comp.module, comp.version)
    for i, comp in enumerate(comps, 1):
        bin_dir = comp.bin_dir
        log_dir = bin_dir.parent / "logs"
        bin_dir.mkdir(parents=True, exist_ok=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        times_path = bin_dir.parent / "build-times.json"
        times: dict[str, float] = json.loads(times_path.read_text()) if times_path.exists() else {}
        have = all((bin_dir / b).is_file() for b in comp.binaries)
        label = f"[{i}/{len(comps)}] {comp.name} {comp.version} ({', '.join(comp.binaries)})"
        if have and not force:
            say(f"{label}: cached")
            continue
        say(f"{label}: building, log {log_dir / (comp.name + '.log')}")
        elapsed = _build_one(comp, bin_dir=bin_dir, log_dir=log_dir, progress=say)
        times[comp.name] = round(elapsed, 1)
        times_path.write_text(json.dumps(times, indent=2) + "\n")
        say(f"{label}: built in {elapsed:.0f}s")
    say(f"binaries in {paths.cache_bin_dir()} (own-key components: {paths.cache_root()})")
    return paths.cache_bin_dir()
