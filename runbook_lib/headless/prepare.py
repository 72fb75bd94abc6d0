"""Before a headless run starts its notebook: settings checked, evidence folder made.

Every setting's problem is found here, before a kernel starts (``ParameterError``, exit 2):
the same ``load_settings`` the notebook's first step uses, and a signing key that cannot
sign. Paths become absolute (the kernel runs in the notebooks' folder), the
incident id is fixed (so the evidence can be found after a crash), the incident folder is made,
and room for the run's own ending (record and manifest) is reserved in it.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.kinds import Entry
from runbook_lib.core.redact import Redactor, is_credential_name, secrets_from_kubeconfig
from runbook_lib.core.settings import Settings, to_flat, with_incident_id
from runbook_lib.errors import InputFileError, ParameterError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import check_signing_key

__all__ = [
    "ENDING_RESERVE",
    "FIRST_STEP_MARKER",
    "Prepared",
    "prepare",
]

FIRST_STEP_MARKER = "rb.start_run("
# Room held in the incident folder for the record and the manifest of the run's ending (a run
# record is tens of KiB; the manifest a line per file). Released just before they are written.
ENDING_RESERVE = 2 * 2**20
# Errors creating the evidence folder that are the parameter's fault (exit 2); others, such
# as a full disk, are the preflight's to report (it stops before any change).
_BAD_FOLDER = {errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EACCES, errno.EPERM, errno.EROFS}


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: what the notebook gets, where its evidence goes."""

    notebook: Path
    settings: Settings  # checked once; the salvage after a failure reads the same
    params: dict[str, Any]  # the notebook's parameters, paths absolute, incident id fixed
    incident_dir: Path
    assess: bool  # the read-only assessment notebook (no incident, no timeline)
    redactor: Redactor
    signing_key: str | Path | None  # ``write_manifest``'s: None is RUNBOOK_SIGNING_KEY
    reserved: bool  # room for the ending is held in the incident folder
    # The notebook file cannot be read: the run cannot start, and ends with its own record.
    unreadable: InputFileError | None = None


def _kubeconfig_secrets(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    paths = [str(parameters.get("kubeconfig") or "")]
    paths += os.environ.get("KUBECONFIG", "").split(os.pathsep)
    found: list[str] = []
    for path in filter(None, paths):
        try:
            config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            continue  # an unreadable kubeconfig is the run's to report, where it is used
        if isinstance(config, Mapping):
            found += secrets_from_kubeconfig(config)
    return tuple(found)


def _redactor(parameters: Mapping[str, Any]) -> Redactor:
    flagged = [str(v) for k, v in parameters.items() if is_credential_name(k) and v]
    return Redactor.build(secrets=[*flagged, *_kubeconfig_secrets(parameters)], env=os.environ)


def _incident_folder(path: Path) -> Path:
    try:
        return files.evidence_dir(path)
    except OSError as err:
        if err.errno in _BAD_FOLDER or isinstance(err, NotADirectoryError):
            raise ParameterError(
                [f"output_dir: cannot create the evidence folder {path}: {err.strerror or err}"]
            ) from err
        return path  # disk full and the like: preflight says so before anything changes


def prepare(parameters: Mapping[str, Any], notebook: Path) -> Prepared:
    """The settings (checked once, paths absolute, incident id fixed), the notebook's
    parameters for the kernel, and the evidence folder of a run of ``notebook``.

    Raises ``ParameterError`` listing every invalid setting (nothing is written then). A
    notebook file that cannot be read is not raised: it is ``Prepared.unreadable``, the run's
    first failure, which the run records in its bundle (an assessment raises it).
    """
    from runbook_lib.adapters.settings_files import absolute_paths, load_settings

    given = dict(parameters)
    assess = notebook.stem == "assess"
    entry = Entry.ASSESS if assess else Entry.ROLLBACK
    unreadable: InputFileError | None = None
    try:
        _readable(notebook)
    except InputFileError as err:
        if assess:
            raise
        unreadable = err
    # The assessment is read-only and has no incident: its output folder is named by time.
    output_dir = str(given.pop("output_dir", "evidence")) if assess else ""
    # Every problem at once, before anything runs (exit 2). Paths are made absolute: the
    # kernel runs in the notebooks' directory.
    settings = absolute_paths(load_settings(given, used_by=entry))
    signing_key: str | Path | None = None
    if not assess:
        # A key that cannot sign is bad input now, not a failed seal after the rollback.
        check_signing_key(settings.records.manifest_key)
        signing_key = settings.records.manifest_key
    started = datetime.now(UTC)
    if assess:
        if not output_dir.strip():
            raise ParameterError(["output_dir: required: the folder that receives the evidence"])
        incident_dir = Path(output_dir).expanduser().resolve() / f"assess-{started:%Y%m%dT%H%M%SZ}"
    else:
        # Fixed here, not in the kernel, so the evidence can be found after a crash.
        settings = with_incident_id(settings, started)
        incident_dir = Path(settings.records.output_dir) / settings.records.incident_id
    # The kernel gets the values that differ from the defaults, the profile's among them: it is
    # not given the profile again, which would override a value given equal to its default.
    params = {**to_flat(settings, used_by=entry, changed_only=True), "profile": ""}
    incident_dir = _incident_folder(incident_dir)
    reserved = False
    if not assess and incident_dir.is_dir():
        reserved = files.reserve_room(incident_dir, ENDING_RESERVE)
    return Prepared(
        notebook=notebook,
        settings=settings,
        params=params,
        incident_dir=incident_dir,
        assess=assess,
        redactor=_redactor(params),
        signing_key=signing_key,
        reserved=reserved,
        unreadable=unreadable,
    )


def _readable(notebook: Path) -> None:
    """The file is a notebook (JSON with cells and an nbformat version). Raises
    ``InputFileError`` when it is not: read here, before a kernel starts, so the run's ending
    can say so. A light check (papermill and nbformat load seconds of imports; they validate
    the rest when the notebook runs)."""
    try:
        document = json.loads(notebook.read_bytes())
    except OSError as err:
        reason = f"cannot read the notebook: {err.strerror or err}"
        raise InputFileError(reason, path=str(notebook)) from err
    except ValueError as err:  # not UTF-8, not JSON
        reason = " ".join(str(err).split())[:200]
        raise InputFileError(f"not a notebook: {reason}", path=str(notebook)) from err
    if not (
        isinstance(document, dict)
        and isinstance(document.get("cells"), list)
        and isinstance(document.get("nbformat"), int)
    ):
        raise InputFileError("not a notebook: no cells or nbformat version", path=str(notebook))
