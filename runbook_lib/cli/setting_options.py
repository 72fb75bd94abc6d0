"""Command-line options from the settings model: ``--name-with-dashes`` for every setting.

``runbook evaluate`` and ``runbook rules`` take the settings of their entry point as options
(``--business-drop 10%``; ``--business_drop`` works too), a ``--profile FILE`` among them.
Problems are named by the option the person typed, or by the profile's key and line when the
value came from the profile.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from runbook_lib.core.kinds import Entry, Spec
from runbook_lib.core.profile import located
from runbook_lib.core.settings import FIELDS

__all__ = ["add_setting_options", "as_options", "given_options"]


def _help(spec: Spec) -> str:
    shown = f" (default {spec.default})" if spec.default else ""
    return (spec.help + shown).replace("%", "%%")


def add_setting_options(
    parser: argparse.ArgumentParser,
    entry: Entry,
    *,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> None:
    """One option per setting of ``entry``; ``aliases`` adds earlier spellings by name."""
    for spec in FIELDS:
        if entry not in spec.used_by:
            continue
        names = [spec.option, *(aliases or {}).get(spec.name, ())]
        if "--" + spec.name != spec.option:
            names.append("--" + spec.name)
        parser.add_argument(
            *names, dest=spec.name, metavar=spec.metavar, default=None, help=_help(spec)
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
