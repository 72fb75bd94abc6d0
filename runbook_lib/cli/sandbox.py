"""``runbook sandbox build|up|down|status|deploy VERSION|reset``: the local practice cluster.

Thin: every subcommand delegates to the harness package ``runbook_sandbox``
(``sandbox/harness``), which is test and demo tooling, not part of the runbook library.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from runbook_lib.errors import CommandFailed

__all__ = ["register"]


def _harness() -> Any:
    """Import the harness lazily: ``runbook evaluate`` must work without the sandbox."""
    try:
        return importlib.import_module("runbook_sandbox")
    except ModuleNotFoundError as err:
        raise CommandFailed(
            "the sandbox harness (package runbook_sandbox) is not installed; "
            "run `make install` in a checkout of the project",
            retryable=False,
        ) from err


def _build(args: argparse.Namespace) -> int:
    _harness().build(force=args.force)
    return 0


def _up(args: argparse.Namespace) -> int:
    sandbox = _harness().up()
    print(f"KUBECONFIG={sandbox.kubeconfig}")
    print(f"context={sandbox.context}")
    if sandbox.prometheus_url:
        print(f"prometheus={sandbox.prometheus_url}")
    return 0


def _down(args: argparse.Namespace) -> int:
    left = _harness().down()
    return 1 if left else 0


def _status(args: argparse.Namespace) -> int:
    info = _harness().status()
    print(json.dumps(info, indent=2, default=str))
    return 0 if info.get("cluster_running") else 3


def _running_sandbox() -> Any:
    sandbox = _harness().attach()
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="local Kubernetes sandbox (kwok) with the demo release, for practice and tests",
        description="Environment: RUNBOOK_SANDBOX_NAME, RUNBOOK_SANDBOX_STATE, "
        "RUNBOOK_SANDBOX_PORT_BASE, RUNBOOK_SANDBOX_CACHE (see sandbox/README.md).",
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="ACTION", required=True)

    p = sub.add_parser("build", help="build the pinned binaries into the cache (idempotent)")
    p.add_argument("--force", action="store_true", help="rebuild even what is cached")
    p.set_defaults(func=_build)

    p = sub.add_parser("up", help="start the cluster, install app v1.0.0, start metrics")
    p.set_defaults(func=_up)

    p = sub.add_parser("down", help="stop everything; exit 1 if a process or port survives")
    p.set_defaults(func=_down)

    p = sub.add_parser("status", help="print what runs, as JSON; exit 3 if not running")
    p.set_defaults(func=_status)

    p = sub.add_parser("deploy", help="helm upgrade app to VERSION, then migrate for it")
    p.add_argument("version", metavar="VERSION", help="e.g. v1.1.0 (the bad version)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra chart value, e.g. faults.unschedulable=true",
    )
    p.add_argument("--no-wait", action="store_true", help="do not wait for the rollout")
    p.set_defaults(func=_deploy)

    p = sub.add_parser("reset", help="back to one good revision v1.0.0, schema v1.0.0")
    p.set_defaults(func=_reset)
