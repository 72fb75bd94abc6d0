"""Fix forward (Post-Rollback Actions, step 3): a branch at the last good commit.

The commit comes from the release itself, not from memory: the good revision's Deployment
carries a ``runbook.io/git-commit`` annotation, or its values map versions to commits
(``commits: {v1.0.0: <sha>}``); failing both, a tag named like the version. The branch is
created without touching the engineer's checkout. It refuses, changing nothing, when the branch
exists or the commit cannot be found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.adapters.git import Git
from runbook_lib.errors import ParameterError, PreconditionFailed

__all__ = [
    "COMMIT_ANNOTATION",
    "FixForward",
    "commit_from_manifest",
    "commit_from_values",
    "create_fix_branch",
]

COMMIT_ANNOTATION = "runbook.io/git-commit"
_VALUES_KEYS = ("commits", "gitCommits", "git_commits")


def commit_from_manifest(manifest_yaml: str, *, deployment: str) -> str | None:
    """The ``runbook.io/git-commit`` annotation of Deployment ``deployment`` (object or pod
    template), or None. Raises nothing; an unreadable manifest yields None."""
    try:
        docs = list(yaml.safe_load_all(manifest_yaml))
    except yaml.YAMLError:
        return None
    for doc in docs:
        if not isinstance(doc, Mapping) or doc.get("kind") != "Deployment":
            continue
        meta = doc.get("metadata") or {}
        if meta.get("name") != deployment:
            continue
        template_meta = ((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}
        for notes in (meta.get("annotations"), template_meta.get("annotations")):
            if isinstance(notes, Mapping) and notes.get(COMMIT_ANNOTATION):
                return str(notes[COMMIT_ANNOTATION])
    return None


def commit_from_values(values: Mapping[str, Any], *, version: str) -> str | None:
    """The commit that a ``commits`` (or ``gitCommits``) mapping in the values gives ``version``."""
    for key in _VALUES_KEYS:
        mapping = values.get(key)
        if isinstance(mapping, Mapping):
            for candidate in (version, version.removeprefix("v"), f"v{version}"):
                if mapping.get(candidate):
                    return str(mapping[candidate])
    return None


@dataclass(frozen=True)
class FixForward:
    """The branch created (or, in a dry run, that would be) and how to carry on."""

    branch: str
    commit: str
    source: str  # where the commit came from: annotation, values mapping or tag
    subject: str
    created: bool
    instructions: str

    def __str__(self) -> str:
        verb = "created" if self.created else "would create"
        return (
            f"{verb} {self.branch} at {self.commit[:12]} ({self.source}: {self.subject})\n"
            f"{self.instructions}"
        )


def create_fix_branch(
    repo: Path,
    *,
    incident_id: str,
    good_version: str | None,
    manifest_yaml: str | None = None,
    values: Mapping[str, Any] | None = None,
    deployment: str = "app",
    dry_run: bool = False,
    git: Git | None = None,
) -> FixForward:
    """Create ``fix/<incident_id>`` at the last good commit (Post-Rollback Actions, step 3).

    Raises ``ParameterError`` if ``repo`` is not a git repository, ``PreconditionFailed`` if the
    branch already exists or no commit can be found for the good release (nothing is changed),
    ``CommandFailed`` if git itself fails.
    """
    git = git or Git(repo)
    if not git.is_repository():
        raise ParameterError([f"fix_forward_repo: {repo} is not a git repository"])
    branch = f"fix/{incident_id}"
    if git.branch_exists(branch):
        raise PreconditionFailed(
            f"branch {branch} already exists in {repo}; not touching it. Continue on it, or "
            f"delete it (git branch -D {branch}) and run fix_forward again"
        )
    candidates: list[tuple[str, str | None]] = [
        (
            f"annotation {COMMIT_ANNOTATION}",
            commit_from_manifest(manifest_yaml or "", deployment=deployment),
        ),
        ("values commits", commit_from_values(values or {}, version=good_version or "")),
    ]
    if good_version:
        candidates += [(f"tag {t}", t) for t in dict.fromkeys((good_version, f"v{good_version}"))]
    tried: list[str] = []
    for source, ref in candidates:
        if not ref:
            continue
        commit = git.resolve(ref)
        if commit is None:
            tried.append(f"{source} -> {ref} (not in this repository)")
            continue
        if not dry_run:
            git.create_branch(branch, commit)
        instructions = (
            f"  cd {repo}\n"
            f"  git switch {branch}\n"
            f"  # apply the fix, test it, then open a pull request from {branch}\n"
            f"  git push -u origin {branch}"
        )
        return FixForward(branch, commit, source, git.subject(commit), not dry_run, instructions)
    detail = "; ".join(tried) or (
        f"no {COMMIT_ANNOTATION} annotation on the good revision, no commits entry in its "
        f"values and no tag for version {good_version or '(unknown)'}"
    )
    raise PreconditionFailed(
        f"cannot find the last good commit for {good_version or 'the good release'}: {detail}. "
        f"Create the branch by hand: git branch {branch} <last-good-commit>"
    )
