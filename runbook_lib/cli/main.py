"""``runbook`` entry point. Each subcommand lives in its own module and registers itself.

Subcommand modules expose ``register(subparsers) -> None``; the parser they add sets
``func`` to a callable taking the parsed namespace and returning the exit status.
Exit statuses: 0 done, 1 the runbook failed (a step raised), 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from runbook_lib.errors import ParameterError, RunbookError

# Each module loads papermill, nbconvert and kubernetes only inside its command function, so
# building the parser stays cheap.
_SUBCOMMAND_MODULES = (
    "runbook_lib.cli.evaluate",
    "runbook_lib.cli.sandbox",
    "runbook_lib.cli.run",
    "runbook_lib.cli.evidence",
    "runbook_lib.cli.rules",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook", description="Executable runbooks: Helm rollback procedure."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
        register = module.register
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ParameterError as err:
        print(f"runbook {args.command}: {err}", file=sys.stderr)
        return 2
    except RunbookError as err:
        print(f"runbook {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
