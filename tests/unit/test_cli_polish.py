"""The ``runbook`` command as a person meets it: --version, help texts, a closed pipe.

Help: every subcommand and option explains itself and shows its default; files it names
exist in the repository. A reader that closes the pipe early (``runbook ... | head -1``)
gets no traceback on stderr.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from runbook_lib.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[2]
REPLAY = REPO / "notebooks" / "data" / "bad_deploy.csv"
# The console script's own code (pyproject [project.scripts]), run in a fresh interpreter.
RUNBOOK = [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())"]


def _parsers(
    parser: argparse.ArgumentParser, path: str = "runbook"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


@cache
def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    return list(_parsers(build_parser()))


def _ids() -> list[str]:
    return [path for path, _ in _all_parsers()]


def _pyproject_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_option_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"runbook {_pyproject_version()}"


def test_every_subcommand_has_a_one_line_help() -> None:
    for path, parser in _all_parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                assert helped == set(action.choices), f"{path}: subcommands without help"


@pytest.mark.parametrize("path", _ids())
def test_every_option_has_help_and_shows_its_default(path: str) -> None:
    parser = dict(_all_parsers())[path]
    assert parser.description, f"{path}: no description in --help"
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue  # hidden: an earlier spelling, accepted but not shown
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{path} {name}: no help text"
        if not action.option_strings or action.nargs == 0 or action.required:
            continue  # positionals, required options and flags have no default to show
        shown = formatter._expand_help(action)  # the text --help prints for this option
        # "empty: ..." is how the parameter vocabulary says what an empty default means.
        said = "default" in shown.lower() or "empty:" in shown.lower()
        assert said, f"{path} {name}: help does not show the default"


def test_defaults_the_parser_knows_are_printed() -> None:
    out = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert "--parameter NAME VALUE" in out
    text = " ".join(out.split())
    assert "(default: none)" in text  # -p is repeatable, none by default


def test_help_names_only_files_that_exist() -> None:
    texts = []
    for _, parser in _all_parsers():
        texts.append(parser.format_help())
    mentioned = set(re.findall(r"[\w./-]+\.md\b", "\n".join(texts)))
    for name in mentioned:
        assert (REPO / name).exists() or list(REPO.rglob(Path(name).name)), (
            f"--help refers to {name}, which is not in the repository"
        )
    assert "DESIGN.md" not in "\n".join(texts)


def test_help_prints_percent_signs_once() -> None:
    # Help strings are %-formatted (so "1%%" prints "1%"); descriptions are printed as written.
    for path, parser in _all_parsers():
        assert "%%" not in parser.format_help(), f"{path} --help shows a doubled percent sign"


def test_the_docs_describe_the_replay_format() -> None:
    body = (REPO / "docs" / "REPLAY.md").read_text()
    header = REPLAY.read_text().splitlines()[0]
    for column in header.split(","):
        name = "business:<name>" if column.startswith("business:") else column
        assert name in body, f"docs/REPLAY.md does not mention {name}"


def _with_closed_stdout(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run with a stdout pipe whose reader is gone before the command writes anything."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: every write gets EPIPE
    err = proc.stderr.read()
    proc.stderr.close()
    return subprocess.CompletedProcess(argv, proc.wait(timeout=120), b"", err)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["sandbox", "--help"],
        ["--version"],
        [
            "evaluate",
            "--replay-csv",
            str(REPLAY),
            "--deployed-at",
            "2026-11-20T14:00:00Z",
            "--json",
        ],
    ],
    ids=["help", "sandbox-help", "version", "evaluate-json"],
)
def test_a_closed_pipe_ends_quietly_with_the_commands_status(args: list[str]) -> None:
    # The JSON decision is larger than a pipe's buffer, so its write fails while the command
    # runs; it must still finish and exit 0, not stop with BrokenPipeError.
    done = _with_closed_stdout([*RUNBOOK, *args])
    assert done.stderr.decode() == ""
    assert done.returncode == 0


def test_head_after_runbook_prints_one_line_and_no_traceback() -> None:
    command = " ".join([*(f"'{a}'" for a in RUNBOOK), "--help", "|", "head", "-1"])
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.stdout.startswith("usage: runbook")
    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_help_does_not_load_the_notebook_machinery() -> None:
    # `runbook --help` and argument errors should answer at once: the heavy libraries
    # (nbformat's schema validation alone took seconds) load inside the commands.
    heavy = (
        "pandas", "matplotlib", "nbformat", "nbconvert", "papermill", "kubernetes", "aiohttp",
    )  # fmt: skip
    code = (
        "import sys; from runbook_lib.cli.main import build_parser; build_parser(); "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == []
