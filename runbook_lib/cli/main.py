"""``runbook`` entry point. Each subcommand lives in its own module and registers itself.

Subcommand modules expose ``register(subparsers) -> None``; the parser they add sets
``func`` to a callable taking the parsed namespace and returning the exit status.
Exit statuses: ``runbook_lib/cli/exit_status.py`` (0 done, 1 failed, 2 bad input, ...).

Every parser is a ``RunbookParser``: options show their default in ``--help`` unless their
help text already says it, and subcommands added with ``add_parser`` inherit that.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from runbook_lib.errors import ParameterError, RunbookError

__all__ = ["DISTRIBUTION", "RunbookParser", "build_parser", "main", "version"]

DISTRIBUTION = "runbook-lib"
# What a shell reports for a process killed by SIGPIPE (128 + 13): `set -o pipefail` users
# expect it from `cmd | head` when the output was cut before the command finished.
_CLOSED_PIPE = 141

# Each module loads papermill, nbconvert and kubernetes only inside its command function, so
# building the parser stays cheap.
_SUBCOMMAND_MODULES = (
    "runbook_lib.cli.evaluate",
    "runbook_lib.cli.sandbox",
    "runbook_lib.cli.run",
    "runbook_lib.cli.evidence",
    "runbook_lib.cli.rules",
    "runbook_lib.cli.serve",
)


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the text already names its default.

    argparse's ArgumentDefaultsHelpFormatter would print "(default: None)" after options whose
    default is computed later (and already explained in their text); this one leaves those,
    and flags (off unless given), to the help text.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.nargs == 0
            or default is None
            or default is argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        shown = "none" if default == [] else "%(default)s"
        return f"{text} (default: {shown})"


class RunbookParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; its subparsers are RunbookParsers too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def version() -> str:
    """The installed distribution's version ("unknown" when run from an uninstalled tree)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = RunbookParser(
        prog="runbook",
        description=(
            "Executable runbooks: the Helm rollback procedure as notebooks that leave evidence. "
            "`runbook COMMAND --help` for each command."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
        register = module.register
        register(subparsers)
    return parser


def _run(argv: Sequence[str] | None) -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. A reader that stops early (``runbook ... | head -1``) ends it quietly.

    Output is flushed here, not at interpreter exit, so a closed pipe is noticed while it can
    still be handled: the command's own status when it had finished, 141 when it was cut short.
    """
    status = _CLOSED_PIPE
    try:
        try:
            status = _run(argv)
        except SystemExit as done:  # --help, --version and usage errors exit from argparse
            status = done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
            if not isinstance(done.code, int | None):
                print(done.code, file=sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        # Nothing more can reach the reader; point stdout at /dev/null so that the
        # interpreter's own flush at exit does not report the same broken pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return status


if __name__ == "__main__":
    sys.exit(main())
