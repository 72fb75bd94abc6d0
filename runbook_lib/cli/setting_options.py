"""Command-line options from the settings model: ``--name-with-dashes`` for every setting.

``runbook evaluate`` and ``runbook rules`` take the settings of their entry point as options
(``--business-drop 10%``), a ``--profile FILE`` among them, grouped under the headings of the
notebooks' parameters cells. One spelling per option is shown; the parameter's own name
(``--business_drop``) is accepted quietly, and earlier spellings (``aliases``) with a
deprecation warning on stderr. Problems are named by the option the person typed, or by the
profile's key and line when the value came from the profile. ``parameter_table`` lists an entry
point's parameters for people (``runbook run rollback --list-parameters``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from runbook_lib.core.kinds import Entry
from runbook_lib.core.profile import located
from runbook_lib.core.settings import FIELDS, ParameterRow, parameter_rows

__all__ = [
    "DeprecatedOption",
    "add_setting_options",
    "as_options",
    "given_options",
    "parameter_table",
]


def _help(row: ParameterRow) -> str:
    shown = f" (default {row.default})" if row.default else ""
    return (row.help + shown).replace("%", "%%")


class DeprecatedOption(argparse.Action):
    """An earlier spelling of an option: still works, hidden from ``--help``, and says which
    spelling to use instead on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, use: str, **kw: Any) -> None:
        kw.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kw)
        self.use = use

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.use}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_setting_options(
    parser: argparse.ArgumentParser,
    entry: Entry,
    *,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """One option per setting of ``entry``, in groups; ``aliases``: earlier spellings by name."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for row in parameter_rows(entry):
        if row.group not in groups:
            groups[row.group] = parser.add_argument_group(row.group)
        groups[row.group].add_argument(
            row.option, dest=row.name, metavar=row.metavar, default=None, help=_help(row)
        )
        if "--" + row.name != row.option:  # the parameter's own name, quietly
            parser.add_argument(
                "--" + row.name, dest=row.name, default=None, help=argparse.SUPPRESS
            )
        for old in (aliases or {}).get(row.name, ()):
            parser.add_argument(
                old, dest=row.name, default=None, action=DeprecatedOption, use=row.option
            )


def given_options(args: argparse.Namespace, entry: Entry) -> dict[str, Any]:
    """The settings given on the command line, as typed."""
    return {
        spec.name: getattr(args, spec.name)
        for spec in FIELDS
        if entry in spec.used_by and getattr(args, spec.name, None) is not None
    }


def as_options(problem: str, entry: Entry) -> str:
    """A problem ("sustain: ...", "a / b: ...") named by its options, as the person typed them;
    a profile's problem keeps its key (it names its file and line)."""
    if located(problem):
        return problem
    names, sep, rest = problem.partition(":")
    known = {spec.name: spec.option for spec in FIELDS if entry in spec.used_by}
    parts = [part.strip() for part in names.split("/")]
    if not sep or not all(part in known for part in parts):
        return problem
    return " / ".join(known[part] for part in parts) + sep + rest


def _default_shown(row: ParameterRow) -> str:
    if row.required and not row.default:
        return "required"
    if not row.default or any(ch.isspace() for ch in row.default):
        return f'"{row.default}"'
    return row.default


def parameter_table(entry: Entry | str) -> str:
    """Every parameter of ``entry`` for people: name, default (or "required"), help, by group.

    What ``papermill --help-notebook`` shows, from the settings model, so an installed wheel
    answers without a notebook path.
    """
    rows = parameter_rows(entry)
    name_w = max(len(r.name) for r in rows)
    defaults = {r.name: _default_shown(r) for r in rows}
    default_w = min(max(len(d) for d in defaults.values()), 20)
    lines = [
        f"Parameters of {Entry(entry).value}: -p NAME VALUE; a profile (-p profile FILE) may give "
        "any that describes the service. Durations need a unit (90s, 2m), ratios are 1% or "
        "0.01, times ISO 8601 with an offset.",
    ]
    group = ""
    for row in rows:
        if row.group != group:
            group = row.group
            lines += ["", group]
        # The help of a required one already says so (the notebooks' cells show only the help).
        text = row.help.removesuffix(" (required)")
        text += f" (required: {row.why})" if row.required else ""
        lines.append(f"  {row.name:<{name_w}}  {defaults[row.name]:<{default_w}}  {text}")
    return "\n".join(lines)
