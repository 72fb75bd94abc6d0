"""The files settings name: the service profile, the replay, the evidence folder, the kubeconfig.

``load_settings`` is how every entry point builds its ``Settings``: it reads the profile that
``profile`` names, parses everything once with ``core.settings.from_flat`` and checks the files
the settings name, listing every problem at once (exit 2 before anything runs). Relative paths
are read from the working directory; ``absolute_paths`` fixes them before a kernel runs
elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runbook_lib.core.kinds import DECIDE, Entry
from runbook_lib.core.profile import Profile, parse_profile
from runbook_lib.core.settings import FIELDS, Settings, field_named, from_flat
from runbook_lib.errors import ParameterError

__all__ = ["absolute_paths", "file_problems", "load_settings", "read_profile"]


def read_profile(path: str | Path) -> Profile:
    """The profile in the YAML file ``path``; a file that cannot be read is its one problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        return Profile(str(path), problems=(f"profile: cannot read {path}: {err.strerror or err}",))
    except UnicodeDecodeError as err:
        return Profile(str(path), problems=(f"profile: {path} is not UTF-8 text: {err.reason}",))
    return parse_profile(text, source=str(path))


def load_settings(
    raw: Mapping[str, Any], *, used_by: Entry | str, check_files: bool = True
) -> Settings:
    """Settings of one entry point from the values given, the profile they name, and defaults.

    Raises ``ParameterError`` listing every problem: the profile's (by key and line), every
    bad value, and (``check_files``) a replay that is no file, an evidence folder that cannot
    be one, a kubeconfig that does not exist.
    """
    entry = Entry(used_by)
    name = raw.get("profile")
    profile = read_profile(name) if isinstance(name, str) and name.strip() else None
    problems: list[str] = []
    try:
        settings = from_flat(raw, used_by=entry, profile=profile)
    except ParameterError as err:
        problems.extend(err.problems)
        # The files are still checked, from the values as given, so every problem shows.
        flat: Mapping[str, Any] = {
            **{spec.name: spec.typed_default for spec in FIELDS},
            **(profile.values if profile is not None else {}),
            **{k: v for k, v in raw.items() if isinstance(v, str)},
        }
    else:
        flat = settings.flat()
    if check_files:
        failed = {problem.split(":", 1)[0] for problem in problems}
        problems.extend(p for p in file_problems(flat, entry) if p.split(":", 1)[0] not in failed)
    if problems:
        raise ParameterError(problems)
    return settings


def file_problems(values: Mapping[str, Any], used_by: Entry) -> list[str]:
    """The settings that name files: a replay must exist, the evidence folder be a folder,
    a kubeconfig exist."""
    problems: list[str] = []
    replay = str(values.get("replay_csv") or "")
    if used_by in DECIDE and replay and not Path(replay).is_file():
        problems.append(f"replay_csv: no such file: {replay} (working directory {Path.cwd()})")
    if used_by is not Entry.ROLLBACK:
        return problems
    out = Path(str(values.get("output_dir") or "evidence"))
    # The nearest existing folder on the way must be a folder (not a file): checked up the tree.
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                problems.append(f"output_dir: {folder} exists and is not a folder")
            break
    kubeconfig = str(values.get("kubeconfig") or "")
    if kubeconfig and not Path(kubeconfig).is_file():
        problems.append(f"kubeconfig: no such file: {kubeconfig}")
    return problems


def absolute_paths(settings: Settings) -> Settings:
    """The settings with every file or folder they name made absolute (``~`` expanded)."""
    changed = {
        name: str(Path(value).expanduser().resolve())
        for name, value in settings.flat().items()
        if field_named(name).path and isinstance(value, str) and value
    }
    return settings.with_values(**changed) if changed else settings
