"""The ``helm`` CLI, driven as a subprocess: history, values, manifests and rollback.

Helm is never re-implemented: the runbook runs the same binary an engineer would, with an
argument list (no shell, so release names cannot inject commands), an explicit kubeconfig,
kube context and namespace, and a timeout on every call. Everything the runbook knows about a
release's revisions comes from here; where and how Helm stores them (its release Secrets, or
whatever ``HELM_DRIVER`` names) stays Helm's business.

Helm 3 and Helm 4 are both supported. The commands used here (``history -o json``,
``get values -o json --revision``, ``get manifest --revision``, ``rollback <rev> --timeout``)
take the same arguments in both. The difference that matters is ``--wait``: a boolean in Helm 3,
a strategy in Helm 4 (``--wait`` alone means ``watcher``; ``hookOnly`` when absent, ``legacy`` is
Helm 3's readiness check). The runbook passes no ``--wait`` to either, so ``helm rollback``
returns once the objects are applied and the rollout is watched by ``adapters.kube`` with
``kubectl rollout status`` semantics, identically for both majors.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runbook_lib.core.revisions import Revision, parse_history
from runbook_lib.errors import AdapterError, CommandFailed, ParameterError

__all__ = ["Helm"]

# stderr fragments meaning the API server (not the request) was the problem: worth a retry.
_TRANSIENT = (
    "connection refused",
    "i/o timeout",
    "tls handshake timeout",
    "connection reset by peer",
    "the server is currently unable to handle the request",
    "etcdserver: request timed out",
    "context deadline exceeded",
    "eof",
    "http2: server sent goaway",
)
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class Helm:
    """One Helm binary pointed at one cluster and namespace.

    ``binary`` is a name looked up on ``PATH`` (of ``env`` when given) or a path. ``timeout_s``
    bounds every read command; ``rollback`` takes its own. ``env`` replaces the process
    environment for the subprocess (useful to isolate Helm's cache and config directories).
    """

    def __init__(
        self,
        *,
        binary: str = "helm",
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        namespace: str = "default",
        timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ParameterError([f"timeout_s: must be positive, got {timeout_s}"])
        self.binary = binary
        self.kubeconfig = None if kubeconfig is None else Path(kubeconfig)
        self.context = context
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.env = dict(env) if env is not None else None
        self._major: int | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def locate(self) -> str:
        """The helm binary's path. Raises ``CommandFailed`` (not retryable) when it is missing."""
        search_path = (self.env or os.environ).get("PATH")
        found = shutil.which(self.binary, path=search_path)
        if found is None:
            raise CommandFailed(
                f"helm binary {self.binary!r} not found (searched PATH); install Helm or pass "
                "binary= with its path",
                command=self.binary,
                retryable=False,
            )
        return found

    def _global_flags(self) -> list[str]:
        flags = ["--namespace", self.namespace]
        if self.kubeconfig is not None:
            flags += ["--kubeconfig", str(self.kubeconfig)]
        if self.context is not None:
            flags += ["--kube-context", self.context]
        return flags

    def command(self, *args: str) -> list[str]:
        """The full argv for ``helm <args>`` against this cluster (shown in plans, run as is)."""
        return [self.binary, *args, *self._global_flags()]

    def _run(self, args: Sequence[str], *, timeout_s: float | None = None) -> str:
        argv = self.command(*args)
        shown = shlex.join(argv)
        argv[0] = self.locate()
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            proc = subprocess.run(  # an argv list and no shell: names cannot inject commands
                argv,
                capture_output=True,
                text=True,
                timeout=limit,
                env=self.env,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as err:
            stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else ""
            raise CommandFailed(
                f"helm did not finish within {limit:g} s and was killed",
                command=shown,
                stderr=stderr,
                retryable=True,
                timeout_s=limit,
            ) from err
        except OSError as err:
            raise CommandFailed(
                f"could not run helm binary {self.binary!r}: {err.strerror}",
                command=shown,
                retryable=False,
            ) from err
        if proc.returncode != 0:
            lowered = proc.stderr.lower()
            raise CommandFailed(
                f"helm exited with status {proc.returncode}",
                command=shown,
                stderr=proc.stderr,
                retryable=any(fragment in lowered for fragment in _TRANSIENT),
                returncode=proc.returncode,
            )
        return proc.stdout

    # -- queries ----------------------------------------------------------------------------

    def version(self) -> str:
        """The binary's version string, e.g. ``v3.16.2``. Raises ``CommandFailed``."""
        # ``version`` ignores cluster flags but accepts them, so _run's argv is still valid.
        return self._run(["version", "--template", "{{.Version}}"]).strip()

    def major_version(self) -> int:
        """Helm's major version (3 or 4), read once from the binary. Raises ``CommandFailed``."""
        if self._major is None:
            text = self.version()
            match = _VERSION.search(text)
            if match is None:
                raise CommandFailed(
                    f"cannot read a version from helm's output {text!r}", command=self.binary
                )
            self._major = int(match.group(1))
        return self._major

    def history(self, release: str, *, timeout_s: float | None = None) -> list[Revision]:
        """``helm history <release> -o json`` as revisions, oldest first (preflight, revisions).

        ``timeout_s`` bounds this call (default: the instance's). Raises ``CommandFailed``
        (release not found, cluster unreachable, timeout) or ``AdapterError`` when the output
        is not Helm's JSON history.
        """
        args = ["history", release, "--output", "json"]
        out = self._run(args, timeout_s=timeout_s)
        try:
            return parse_history(out)
        except AdapterError as err:
            raise AdapterError(
                str(err), command=shlex.join(self.command(*args)), stderr=out[:500]
            ) from err

    def values(self, release: str, revision: int) -> dict[str, Any]:
        """User-supplied values of one revision (preflight: "same chart and values" check).

        Values can hold secrets: callers compare them, never log them. Raises
        ``CommandFailed`` or ``AdapterError`` (output not a JSON object).
        """
        args = ["get", "values", release, "--revision", str(revision), "--output", "json"]
        out = self._run(args)
        try:
            parsed = json.loads(out) if out.strip() else None
        except json.JSONDecodeError as err:
            raise AdapterError(
                "helm get values output is not JSON", command=shlex.join(self.command(*args))
            ) from err
        if parsed is None:  # a release installed without values prints null
            return {}
        if not isinstance(parsed, dict):
            raise AdapterError(
                "helm get values output is not a JSON object",
                command=shlex.join(self.command(*args)),
            )
        return parsed

    def manifest(self, release: str, revision: int) -> str:
        """Rendered manifest of one revision ("Verify the previous image"). Raises
        ``CommandFailed``."""
        return self._run(["get", "manifest", release, "--revision", str(revision)])

    # -- the one mutation -------------------------------------------------------------------

    def _rollback_args(self, release: str, revision: int, *, timeout_s: float) -> list[str]:
        problems = []
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
            problems.append(f"revision: must be an explicit revision number >= 1, got {revision!r}")
        if timeout_s <= 0:
            problems.append(f"timeout_s: must be positive, got {timeout_s}")
        if problems:
            raise ParameterError(problems)
        # Helm takes Go durations; whole seconds round up so the budget is never shortened.
        seconds = max(1, math.ceil(timeout_s))
        return ["rollback", release, str(revision), "--timeout", f"{seconds}s"]

    def rollback_command(self, release: str, revision: int, *, timeout_s: float) -> list[str]:
        """The exact argv ``rollback`` runs, for the plan and for dry runs.

        Raises ``ParameterError`` for revision < 1: ``0`` means "previous" to Helm and, run
        twice, flips back to the bad release.
        """
        return self.command(*self._rollback_args(release, revision, timeout_s=timeout_s))

    def rollback(self, release: str, revision: int, *, timeout_s: float) -> None:
        """``helm rollback <release> <revision>`` without ``--wait`` ("Rollback Steps", step 2).

        Helm's own ``--timeout`` gets ``timeout_s``; the subprocess is killed a little later so
        Helm can report its own timeout first. Raises ``ParameterError`` (revision < 1) or
        ``CommandFailed`` (failure, timeout, missing binary).
        """
        args = self._rollback_args(release, revision, timeout_s=timeout_s)
        self._run(args, timeout_s=timeout_s + 10.0)
