"""``runbook-sandbox build|up|down|status|deploy VERSION|reset``: the local practice cluster.

The harness's own command line. It is also ``runbook sandbox ...``: the harness registers
``register`` under the ``runbook.commands`` entry point group, which the ``runbook`` command
reads, so the runbook library never imports the harness.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

import runbook_sandbox
from runbook_lib.errors import CommandFailed, RunbookError

__all__ = ["main", "register"]


def _build(args: argparse.Namespace) -> int:
    runbook_sandbox.build(force=args.force)
    return 0


def _up(args: argparse.Namespace) -> int:
    sandbox = runbook_sandbox.up()
    print(f"KUBECONFIG={sandbox.kubeconfig}")
    print(f"context={sandbox.context}")
    if sandbox.prometheus_url:
        print(f"prometheus={sandbox.prometheus_url}")
    if getattr(sandbox, "tracing_url", ""):
        print(f"tracing={sandbox.tracing_url}")
    return 0


def _down(args: argparse.Namespace) -> int:
    left = runbook_sandbox.down()
    return 1 if left else 0


def _status(args: argparse.Namespace) -> int:
    info = runbook_sandbox.status()
    print(json.dumps(info, indent=2, default=str))
    return 0 if info.get("cluster_running") else 3


def _running_sandbox() -> Any:
    sandbox = runbook_sandbox.attach()
    if sandbox is None:
        raise CommandFailed("the sandbox is not running; start it with `runbook sandbox up`")
    return sandbox


def _deploy(args: argparse.Namespace) -> int:
    values = dict(pair.split("=", 1) for pair in args.set)
    _running_sandbox().deploy(args.version, values=values, wait=not args.no_wait)
    print(f"deployed {args.version}", file=sys.stderr)
    return 0


def _reset(args: argparse.Namespace) -> int:
    _running_sandbox().reset()
    print("reset to one good revision (v1.0.0)", file=sys.stderr)
    return 0


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    detail: str,
    func: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """One sandbox action run by ``func``: ``summary`` in ``runbook sandbox --help``, both in
    its own help."""
    parser = sub.add_parser(
        name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {detail}"
    )
    parser.set_defaults(func=func)
    return parser


_DESCRIPTION = (
    "A practice cluster on loopback: etcd, kube-apiserver, controller-manager and "
    "scheduler with kwok nodes, the demo Helm release 'app', Prometheus and a traffic "
    "model. Several can run at once, told apart by the environment: "
    "RUNBOOK_SANDBOX_NAME (cluster name, default runbook; kube context kwok-NAME), "
    "RUNBOOK_SANDBOX_STATE (state directory, default sandbox/.state in a checkout, "
    "else $XDG_STATE_HOME/runbook-sandbox), RUNBOOK_SANDBOX_PORT_BASE (first of the "
    "loopback ports, default 19000; Prometheus on base+90), RUNBOOK_SANDBOX_CACHE "
    "(built binaries, default ~/.cache/runbook-sandbox)."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``runbook sandbox ACTION``: the entry point the ``runbook`` command loads."""
    parser = subparsers.add_parser(
        "sandbox",
        help="Local Kubernetes sandbox (kwok) with the demo release, for practice and tests",
        description=_DESCRIPTION,
    )
    add_actions(parser)


def add_actions(parser: argparse.ArgumentParser) -> None:
    """The sandbox's actions (build, up, down, status, deploy, reset) under ``parser``."""
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)

    p = _add(
        sub,
        "build",
        "Build the pinned binaries into the cache (idempotent)",
        "Builds etcd and the Kubernetes control plane from the versions pinned in the package "
        "(needs Go and the Go module proxy); the first build takes about 20 minutes.",
        _build,
    )
    p.add_argument("--force", action="store_true", help="rebuild even what is cached")

    _add(
        sub,
        "up",
        "Start the cluster, install app v1.0.0, start metrics",
        "Prints KUBECONFIG, the kube context and the Prometheus URL to use with the runbook.",
        _up,
    )

    _add(
        sub,
        "down",
        "Stop everything; exit 1 if a process or port survives",
        "Stops the metrics stack and the cluster and checks that nothing is left behind.",
        _down,
    )

    _add(
        sub,
        "status",
        "Print what runs, as JSON; exit 3 if not running",
        "Cluster, ports, binaries and metrics stack of the sandbox named by the environment.",
        _status,
    )

    p = _add(
        sub,
        "deploy",
        "Helm upgrade app to VERSION, then migrate for it",
        "v1.0.0 is good, v1.1.0 is the bad deploy (5xx ratio and latency go up).",
        _deploy,
    )
    p.add_argument("version", metavar="VERSION", help="e.g. v1.1.0 (the bad version)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra chart value, e.g. faults.unschedulable=true (repeatable)",
    )
    p.add_argument("--no-wait", action="store_true", help="do not wait for the rollout")

    _add(
        sub,
        "reset",
        "Back to one good revision v1.0.0, schema v1.0.0",
        "Reinstalls the release so that helm history holds a single good revision.",
        _reset,
    )


def main(argv: list[str] | None = None) -> int:
    """``runbook-sandbox``: the same actions as ``runbook sandbox``."""
    parser = argparse.ArgumentParser(prog="runbook-sandbox", description=_DESCRIPTION)
    add_actions(parser)
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except RunbookError as err:
        print(f"runbook-sandbox: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
