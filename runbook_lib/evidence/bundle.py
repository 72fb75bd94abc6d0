"""The evidence bundle (Post-Rollback Actions, step 2): what the failed deployment left behind.

Everything lands in ``<output_dir>/<incident_id>/`` next to the timeline, passed through the
Redactor (structured data as data: every value at every level, a Secret's ``data``, keys that
name a credential; Helm values and manifests before they are diffed, so added and removed diff
lines are clean), written through ``evidence.files`` (atomic, no symlinks followed, 0640), and
sealed by ``MANIFEST.sha256``. Collection is best effort: a source that fails
(the API server is down, a revision was pruned) is noted in ``collection-errors.txt`` and the
rest is still collected, because a half-broken cluster is exactly when evidence matters.

Layout::

    metrics/samples.csv            the samples the decision and the plots used
    plots/*.png                    written by the plot step
    kubernetes/pods.json, events.json, logs/<pod>.log   (deploy window)
    helm/history.json, values-diff.txt, manifest-diff.txt (bad vs good revision)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from runbook_lib.core.redact import redact_manifest, redact_structure, redact_text
from runbook_lib.errors import InputFileError, RunbookError
from runbook_lib.evidence import files

if TYPE_CHECKING:
    from runbook_lib.adapters.helm import Helm
    from runbook_lib.adapters.kube import Kube

__all__ = [
    "COLLECTION_ERRORS",
    "SAMPLES_CSV",
    "BundleReport",
    "collect_cluster",
    "collect_helm",
    "read_samples_csv",
    "write_json",
    "write_problems",
    "write_samples_csv",
    "write_text",
]

SAMPLES_CSV = "metrics/samples.csv"
COLLECTION_ERRORS = "collection-errors.txt"


@dataclass(frozen=True)
class BundleReport:
    """What a collection wrote (paths relative to the incident directory) and what failed."""

    written: tuple[str, ...]
    problems: tuple[str, ...]

    def __add__(self, other: BundleReport) -> BundleReport:
        return BundleReport(self.written + other.written, self.problems + other.problems)


def write_text(directory: Path, rel: str, text: str, *, redact: Callable[[str], str]) -> str:
    """Write ``text`` redacted to ``directory/rel`` (atomic, 0640, no symlink followed).

    Returns ``rel``. Raises ``OSError`` (disk full, a symlinked folder in the bundle).
    """
    files.write_text(directory, rel, redact(text))
    return rel


def write_json(directory: Path, rel: str, document: Any, *, redact: Callable[[str], str]) -> str:
    """``write_text`` of ``document`` as indented JSON (a document the bundle builds itself,
    plain JSON values only). Returns ``rel``; raises ``OSError``."""
    return write_text(directory, rel, json.dumps(document, indent=2) + "\n", redact=redact)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "to_dict"):  # kubernetes client models
        return _jsonable(value.to_dict())
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _dump(value: Any, redact: Callable[[str], str]) -> str:
    """JSON of ``value`` redacted as data (pod env values, Secret data, credential keys)."""
    clean = redact_structure(_jsonable(value), redact)
    return json.dumps(clean, indent=2, sort_keys=True, default=str) + "\n"


def write_samples_csv(
    directory: Path, samples: pd.DataFrame, *, redact: Callable[[str], str] = redact_text
) -> str:
    """Save the samples as ``metrics/samples.csv`` in the replay format (DESIGN.md).

    Column names are redacted (a business metric may be named after a token by mistake);
    values are numbers. Raises ``OSError``.
    """
    frame = samples.copy()
    frame.index = [t.isoformat() for t in frame.index]
    frame.index.name = "timestamp"
    frame.columns = [redact(str(c)) for c in frame.columns]
    files.write_text(directory, SAMPLES_CSV, frame.to_csv())
    return SAMPLES_CSV


def read_samples_csv(directory: Path) -> pd.DataFrame:
    """The samples saved by ``write_samples_csv``; raises ``InputFileError`` if unreadable."""
    path = directory / SAMPLES_CSV
    try:
        frame = pd.read_csv(path, index_col="timestamp")
    except (OSError, ValueError) as err:
        raise InputFileError(f"cannot read samples: {err}", path=str(path)) from err
    frame.index = pd.to_datetime(frame.index, utc=True)
    return frame.astype(float)


def _attempt(problems: list[str], what: str, action: Callable[[], Iterable[str]]) -> list[str]:
    try:
        return list(action())
    except (RunbookError, OSError) as err:
        problems.append(f"{what}: {type(err).__name__}: {err}")
        return []


def collect_cluster(
    directory: Path,
    kube: Kube,
    *,
    namespace: str,
    pod_selector: str,
    since: datetime | None,
    redact: Callable[[str], str],
) -> BundleReport:
    """Pods, events and pod logs of the deploy window (``since``: the deploy time)."""
    problems: list[str] = []
    written: list[str] = []
    pods: list[Any] = []

    def _pods() -> list[str]:
        pods.extend(kube.pods(namespace, pod_selector))
        return [write_text(directory, "kubernetes/pods.json", _dump(pods, redact), redact=redact)]

    def _events() -> list[str]:
        events = kube.events(namespace, since=since)
        text = _dump(events, redact)
        return [write_text(directory, "kubernetes/events.json", text, redact=redact)]

    written += _attempt(problems, "kubernetes pods", _pods)
    written += _attempt(problems, "kubernetes events", _events)
    for pod in pods:
        name = str(getattr(pod, "name", pod))

        def _logs(name: str = name) -> list[str]:
            text = kube.logs(namespace, name, since=since)
            return [write_text(directory, f"kubernetes/logs/{name}.log", str(text), redact=redact)]

        written += _attempt(problems, f"logs of pod {name}", _logs)
    return BundleReport(tuple(written), tuple(problems))


def _diff(bad: str, good: str, *, bad_name: str, good_name: str) -> str:
    lines = difflib.unified_diff(
        good.splitlines(keepends=True),
        bad.splitlines(keepends=True),
        fromfile=good_name,
        tofile=bad_name,
    )
    return "".join(lines) or f"(no difference between {good_name} and {bad_name})\n"


def collect_helm(
    directory: Path,
    helm: Helm,
    *,
    release: str,
    bad_revision: int | None,
    good_revision: int | None,
    redact: Callable[[str], str],
) -> BundleReport:
    """``helm history`` and the values/manifest diffs between the good and the bad revision.

    The diffs read "good -> bad" (what the bad deploy changed). When the revisions are unknown
    (the run failed before resolving them) the two most recent revisions are compared.
    """
    problems: list[str] = []
    written: list[str] = []
    history: list[Any] = []

    def _history() -> list[str]:
        history.extend(helm.history(release))
        return [write_text(directory, "helm/history.json", _dump(history, redact), redact=redact)]

    written += _attempt(problems, "helm history", _history)
    if (bad_revision is None or good_revision is None) and len(history) >= 2:
        numbers = sorted(int(getattr(r, "number", 0)) for r in history)
        bad_revision = bad_revision or numbers[-1]
        good_revision = good_revision or numbers[-2]
    if bad_revision is None or good_revision is None:
        problems.append("helm diffs: the bad and good revisions are unknown")
        return BundleReport(tuple(written), tuple(problems))
    bad_name, good_name = f"revision {bad_revision} (bad)", f"revision {good_revision} (good)"

    # Both sides are redacted as data before diffing, so no diff line (+, - or context) can
    # carry a secret; a secret that changed between the revisions shows no difference.
    def _values() -> list[str]:
        bad = yaml.safe_dump(redact_structure(helm.values(release, bad_revision), redact),
                             sort_keys=True)
        good = yaml.safe_dump(redact_structure(helm.values(release, good_revision), redact),
                              sort_keys=True)
        diff = _diff(bad, good, bad_name=bad_name, good_name=good_name)
        return [write_text(directory, "helm/values-diff.txt", diff, redact=redact)]

    def _manifest() -> list[str]:
        bad = redact_manifest(helm.manifest(release, bad_revision), redact)
        good = redact_manifest(helm.manifest(release, good_revision), redact)
        diff = _diff(bad, good, bad_name=bad_name, good_name=good_name)
        return [write_text(directory, "helm/manifest-diff.txt", diff, redact=redact)]

    written += _attempt(problems, "helm values diff", _values)
    written += _attempt(problems, "helm manifest diff", _manifest)
    return BundleReport(tuple(written), tuple(problems))


def write_problems(directory: Path, report: BundleReport, *, redact: Callable[[str], str]) -> None:
    """Append collection failures to ``collection-errors.txt`` (kept across re-collections)."""
    if not report.problems:
        return
    files.append_text(
        directory, COLLECTION_ERRORS, "".join(redact(p) + "\n" for p in report.problems)
    )
