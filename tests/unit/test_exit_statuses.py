"""Every exit status ``runbook run`` can end with is documented in its ``--help`` and in the
README's table, from the one list (``core.exit_status.RUN_STATUSES``)."""

from __future__ import annotations

import re
from pathlib import Path

from runbook_lib.cli.main import build_parser
from runbook_lib.core.exit_status import RUN_STATUSES

README = Path(__file__).resolve().parents[2] / "README.md"


def _run_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices["run"].format_help().split())  # type: ignore[attr-defined]


def test_run_help_names_every_exit_status() -> None:
    shown = _run_help()
    for status, meaning in RUN_STATUSES:
        assert f"{status} {' '.join(meaning.split())}" in shown, status


def test_the_readme_table_has_a_row_for_every_exit_status() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Exit statuses") :]
    rows = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    run_rows = {
        int(m.group(1))
        for m in re.finditer(r"^\| (\d+) \|[^|]*\| ([^|]+) \|$", table, flags=re.MULTILINE)
        if m.group(2).strip()
    }
    assert {status for status, _ in RUN_STATUSES} == run_rows
    assert run_rows <= rows
