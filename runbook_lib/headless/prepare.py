"""Before a headless run starts its notebook: parameters checked, evidence folder made.

Every parameter problem is found here, before a kernel starts (``ParameterError``, exit 2):
the same ``build_params``/``check_paths`` the notebook's first step uses, and a signing key
that cannot sign. Paths become absolute (the kernel runs in the notebooks' folder), the
incident id is fixed (so the evidence can be found after a crash), the incident folder is made,
and room for the run's own ending (record and manifest) is reserved in it.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.redact import Redactor, is_credential_name, secrets_from_kubeconfig
from runbook_lib.errors import InputFileError, ParameterError
from runbook_lib.evidence import files
from runbook_lib.evidence.manifest import check_signing_key
from runbook_lib.record.facts import attempts
from runbook_lib.record.timeline import Timeline

__all__ = [
    "ENDING_RESERVE",
    "FIRST_STEP_MARKER",
    "INCIDENT_ID",
    "Prepared",
    "prepare",
]

# Paths given on the command line are relative to where the command runs, but the kernel runs
# in the notebooks directory; these are made absolute before the notebook sees them.
PATH_PARAMETERS = (
    "replay_csv",
    "kubeconfig",
    "notify_file",
    "fix_forward_repo",
    "output_dir",
    "signing_key",
)
FIRST_STEP_MARKER = "rb.start_run("
# Room held in the incident folder for the record and the manifest of the run's ending (a run
# record is tens of KiB; the manifest a line per file). Released just before they are written.
ENDING_RESERVE = 2 * 2**20
INCIDENT_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
# Errors creating the evidence folder that are the parameter's fault (exit 2); others, such
# as a full disk, are the preflight's to report (it stops before any change).
_BAD_FOLDER = {errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EACCES, errno.EPERM, errno.EROFS}


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: what the notebook gets, where its evidence goes."""

    notebook: Path
    params: dict[str, Any]  # the notebook's parameters, paths absolute, incident id fixed
    incident_dir: Path
    assess: bool  # the read-only assessment notebook (no incident, no timeline)
    redactor: Redactor
    signing_key: str | Path | None  # ``write_manifest``'s: None is RUNBOOK_SIGNING_KEY
    attempt: int  # this attempt's number in its incident: 1, or more for a re-run
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


def _attempt(incident_dir: Path) -> int:
    path = incident_dir / "timeline.jsonl"
    if not path.is_file():
        return 1
    return attempts(Timeline(path).events) + 1


def prepare(parameters: Mapping[str, Any], notebook: Path) -> Prepared:
    """Validated parameters and the evidence folder of a run of ``notebook``.

    Raises ``ParameterError`` listing every invalid parameter (nothing is written then). A
    notebook file that cannot be read is not raised: it is ``Prepared.unreadable``, the run's
    first failure, which the run records in its bundle (an assessment raises it).
    """
    from runbook_lib.run.params import build_params, check_paths

    params = dict(parameters)
    assess = notebook.stem == "assess"
    unreadable: InputFileError | None = None
    try:
        declared = _declared(notebook)
    except InputFileError as err:
        if assess:
            raise
        unreadable = err
    else:
        _check_names(notebook, declared, set(params) - ({"output_dir"} if assess else set()))
    # The assessment is read-only and has no incident: its output folder is named by time.
    output_dir = str(params.pop("output_dir", "evidence")) if assess else ""
    signing_key: str | Path | None = None
    if assess:
        from runbook_lib.assessment import check_params  # pandas and matplotlib: assess only

        check_params(params)
    else:
        checked = build_params(params)
        check_paths(checked)
        # A key that cannot sign is bad input now, not a failed seal after the rollback.
        check_signing_key(checked.manifest_key)
        signing_key = checked.manifest_key
    for name in PATH_PARAMETERS:
        if isinstance(params.get(name), str | Path) and str(params[name]):
            params[name] = str(Path(str(params[name])).expanduser().resolve())
    started_at = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if assess:
        if not output_dir.strip():
            raise ParameterError(["output_dir: required: the folder that receives the evidence"])
        incident_dir = Path(output_dir).expanduser().resolve() / f"assess-{started_at}"
    else:
        release = str(params.get("release") or "app")
        params["incident_id"] = params.get("incident_id") or f"rollback-{release}-{started_at}"
        if not re.fullmatch(INCIDENT_ID, str(params["incident_id"])):
            raise ParameterError(
                [f"incident_id: letters, digits, '.', '_', '-' only: {params['incident_id']!r}"]
            )
        params.setdefault("output_dir", str(Path("evidence").resolve()))
        incident_dir = Path(params["output_dir"]) / str(params["incident_id"])
    incident_dir = _incident_folder(incident_dir)
    reserved = False
    if not assess and incident_dir.is_dir():
        reserved = files.reserve_room(incident_dir, ENDING_RESERVE)
    return Prepared(
        notebook=notebook,
        params=params,
        incident_dir=incident_dir,
        assess=assess,
        redactor=_redactor(params),
        signing_key=signing_key,
        attempt=1 if assess else _attempt(incident_dir),
        reserved=reserved,
        unreadable=unreadable,
    )


def _declared(notebook: Path) -> set[str]:
    """The parameters the notebook declares. Raises ``InputFileError`` when the file is not a
    readable notebook (missing, corrupt, not JSON, not nbformat)."""
    import papermill

    try:
        return set(papermill.inspect_notebook(str(notebook)))
    except Exception as err:  # nbformat and jsonschema raise many kinds for a bad file
        text = " ".join(str(err).split())[:200]
        raise InputFileError(
            f"not a readable notebook ({type(err).__name__}: {text})", path=str(notebook)
        ) from err


def _check_names(notebook: Path, declared: set[str], given: set[str]) -> None:
    unknown = sorted(given - declared)
    if unknown:
        raise ParameterError(
            [
                f"{name}: not a parameter of {notebook.name} (see papermill --help-notebook)"
                for name in unknown
            ]
        )
