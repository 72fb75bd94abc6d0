"""``runbook`` entry point. Each subcommand lives in its own module and registers itself.

Subcommand modules expose ``register(subparsers) -> None``; the parser they add sets
``func`` to a callable taking the parsed namespace and returning the exit status. A module's
docstring is its command's ``--help`` (``add_command``): one text for the person at the
terminal and the one reading the code, so the two cannot drift apart.
Exit statuses: ``runbook_lib/core/exit_status.py`` (0 done, 1 failed, 2 bad input, ...).

Every parser is a ``RunbookParser``: options show their default in ``--help`` unless their
help text already says it, and subcommands added with ``add_parser`` inherit that.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, TextIO, cast

from runbook_lib.errors import InputFileError, ParameterError, RunbookError

__all__ = [
    "COMMANDS_GROUP",
    "DISTRIBUTION",
    "RunbookParser",
    "add_command",
    "build_parser",
    "examples",
    "main",
    "version",
]

DISTRIBUTION = "runbook-lib"
COMMANDS_GROUP = "runbook.commands"

# Each module loads papermill, nbconvert and kubernetes only inside its command function, so
# building the parser stays cheap. Other packages add commands through the entry point group
# ``runbook.commands`` (the sandbox harness adds ``sandbox``): a ``register`` function each.
_SUBCOMMAND_MODULES = (
    "runbook_lib.cli.evaluate",
    "runbook_lib.cli.run",
    "runbook_lib.cli.evidence",
    "runbook_lib.cli.rules",
    "runbook_lib.cli.profile",
    "runbook_lib.cli.serve",
)


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the text already names its default.

    argparse's ArgumentDefaultsHelpFormatter would print "(default: None)" after options whose
    default is computed later (and already explained in their text); this one leaves those,
    and flags (off unless given), to the help text.
    """

    def __init__(self, prog: str, **kwargs: Any) -> None:
        # Room for "--prometheus-rate-window DURATION" beside its help, not above it.
        kwargs.setdefault("max_help_position", 36)
        super().__init__(prog, **kwargs)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.nargs == 0
            or default is None
            or default == ""
            or default is argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        shown = "none" if default == [] else "%(default)s"
        return f"{text} (default: {shown})"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Wraps prose; keeps indented lines (examples) and headings ("example:") as written."""
        out: list[str] = []
        prose: list[str] = []

        def wrap() -> None:
            if prose:
                out.append(
                    super(_DefaultsHelpFormatter, self)._fill_text(" ".join(prose), width, indent)
                )
                prose.clear()

        for line in text.splitlines():
            if line.strip() and not line.startswith(" ") and not line.endswith(":"):
                prose.append(line.strip())
                continue
            wrap()
            out.append(indent + line if line.strip() else "")
        wrap()
        return "\n".join(out)


class RunbookParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults; its subparsers are RunbookParsers too."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def examples(*commands: str) -> str:
    """A command's ``epilog``: its example command lines under "example:" or "examples:",
    indented like every other command's; a command's later lines keep their indent under it."""
    heading = "example:" if len(commands) == 1 else "examples:"
    return "\n".join([heading, *("  " + line for c in commands for line in c.splitlines())])


_EXAMPLES_HEADING = re.compile(r"^examples?:$", re.MULTILINE)


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    doc: str | None,
    **options: Any,
) -> argparse.ArgumentParser:
    """The subcommand ``name``, its help read from ``doc`` (its module's docstring): the first
    line is its line in ``runbook --help``, the paragraphs after it the description, and an
    "example:" or "examples:" block at the end the epilog, shown after the options.
    ``options`` go to ``add_parser`` as they are (usage, or an epilog the text has none of)."""
    # ``doc`` is None under ``python -OO``, which strips docstrings: the command still works,
    # with no help text.
    summary, _, body = inspect.cleandoc(doc or "").partition("\n")
    listed = _EXAMPLES_HEADING.search(body)
    if listed is not None:
        options.setdefault("epilog", body[listed.start() :])
        body = body[: listed.start()]
    return subparsers.add_parser(name, help=summary, description=body.strip(), **options)


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
    # The subcommands' parsers are RunbookParsers (the class of their parent), seen by the
    # modules as plain ArgumentParsers.
    subparsers = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", required=True),
    )
    register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]
    for name in _SUBCOMMAND_MODULES:
        register = importlib.import_module(name).register
        register(subparsers)
    for entry in sorted(metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        register = entry.load()
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
    except InputFileError as err:
        print(f"runbook {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except RunbookError as err:
        print(f"runbook {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


class _ReaderGone:
    """stdout that keeps the command running after its reader left (``runbook ... | head``).

    The first write or flush that meets a closed pipe points file descriptor 1 at /dev/null;
    later output, and the interpreter's flush at exit, go there. A rollback streaming its
    cells must not stop halfway because nobody reads any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _discard_from_now_on(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard_from_now_on()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard_from_now_on()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status, also when the reader closed the pipe.

    Output is flushed here, not at interpreter exit, so a closed pipe is noticed while it can
    still be handled quietly; ``--help``, ``--version`` and usage errors exit from argparse
    and are flushed the same way.
    """
    stdout = sys.stdout
    quiet = _ReaderGone(stdout) if _is_pipe(stdout) else None
    if quiet is not None:
        sys.stdout = quiet
    try:
        try:
            return _run(argv)
        except SystemExit as done:
            if done.code is None or isinstance(done.code, int):
                return done.code or 0
            print(done.code, file=sys.stderr)
            return 2
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


def _is_pipe(stream: TextIO) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):  # no file descriptor (captured, replaced)
        return False


if __name__ == "__main__":
    sys.exit(main())
