"""``runbook verify-evidence DIR``: has anything in an evidence bundle changed since it was sealed?

Exit 0 when every file matches ``MANIFEST.sha256``; 1 listing each modified, missing or added
file; 2 when DIR has no readable manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runbook_lib.errors import InputFileError, ParameterError
from runbook_lib.evidence.manifest import MANIFEST_NAME, verify_manifest

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify-evidence",
        help="check an evidence bundle against its SHA-256 manifest",
        description=(
            f"Check every file of an incident's evidence directory against {MANIFEST_NAME}. "
            "Exit 0 unchanged, 1 changed (files listed), 2 no readable manifest."
        ),
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="<output_dir>/<incident_id>")
    parser.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    try:
        check = verify_manifest(directory)
    except InputFileError as err:
        raise ParameterError([f"{directory}: {err}"]) from err
    if check.ok:
        print(f"{directory}: {check.checked} files match {MANIFEST_NAME}")
        return 0
    for problem in check.problems():
        print(problem)
    print(f"{directory}: evidence changed since it was sealed", file=sys.stderr)
    return 1
