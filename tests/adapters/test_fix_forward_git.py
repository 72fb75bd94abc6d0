"""Fix forward on a real git repository: the branch at the last good commit, and refusals.

The post-mortem draft, invitation and reminder, and reading the commit from a manifest, are
pure: tests/unit/test_followup.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helm_manifests import annotated_manifest

from runbook_lib.errors import ParameterError, PreconditionFailed
from runbook_lib.evidence.fixforward import create_fix_branch

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="install git to run")


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> dict[str, str]:
    """A repository with a good commit (tagged v1.0.0) and a bad one on top."""
    path = tmp_path / "service"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text("VERSION = '1.0.0'\n")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "release v1.0.0")
    _git(path, "tag", "v1.0.0")
    good = _git(path, "rev-parse", "HEAD")
    (path / "app.py").write_text("VERSION = '1.1.0'  # the bad one\n")
    _git(path, "commit", "-q", "-am", "release v1.1.0")
    return {"path": str(path), "good": good, "bad": _git(path, "rev-parse", "HEAD")}


def test_branch_is_created_at_the_annotated_commit_without_switching(
    repo: dict[str, str],
) -> None:
    path = Path(repo["path"])
    result = create_fix_branch(
        path, incident_id="INC-42", good_version="v1.0.0",
        manifest_yaml=annotated_manifest(repo["good"]), deployment="app",
    )  # fmt: skip
    assert result.created
    assert result.source == "annotation runbook.io/git-commit"
    assert _git(path, "rev-parse", "fix/INC-42") == repo["good"]
    assert _git(path, "branch", "--show-current") == "main"  # the checkout is untouched
    assert "git switch fix/INC-42" in result.instructions


def test_values_mapping_then_tag_are_fallbacks(repo: dict[str, str]) -> None:
    path = Path(repo["path"])
    by_values = create_fix_branch(
        path, incident_id="INC-1", good_version="v1.0.0",
        values={"commits": {"v1.0.0": repo["good"][:10]}},
    )  # fmt: skip
    assert by_values.source == "values commits"
    assert _git(path, "rev-parse", "fix/INC-1") == repo["good"]
    by_tag = create_fix_branch(path, incident_id="INC-2", good_version="1.0.0")
    assert by_tag.source == "tag v1.0.0"
    assert by_tag.commit == repo["good"]


def test_refuses_when_branch_exists_and_leaves_it_alone(repo: dict[str, str]) -> None:
    path = Path(repo["path"])
    _git(path, "branch", "fix/INC-7", repo["bad"])
    with pytest.raises(PreconditionFailed, match="already exists"):
        create_fix_branch(path, incident_id="INC-7", good_version="v1.0.0")
    assert _git(path, "rev-parse", "fix/INC-7") == repo["bad"]


def test_refuses_when_commit_is_unknown(repo: dict[str, str]) -> None:
    path = Path(repo["path"])
    with pytest.raises(PreconditionFailed, match="cannot find the last good commit") as err:
        create_fix_branch(
            path, incident_id="INC-8", good_version="v9.9.9",
            manifest_yaml=annotated_manifest("0123456789abcdef0123456789abcdef01234567"),
        )  # fmt: skip
    assert "not in this repository" in str(err.value)
    assert "fix/INC-8" not in _git(path, "branch", "--list")


def test_dry_run_creates_nothing(repo: dict[str, str]) -> None:
    path = Path(repo["path"])
    result = create_fix_branch(path, incident_id="INC-9", good_version="v1.0.0", dry_run=True)
    assert not result.created
    assert "would create fix/INC-9" in str(result)
    assert _git(path, "branch", "--list", "fix/*") == ""


def test_not_a_repository_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="not a git repository"):
        create_fix_branch(tmp_path, incident_id="INC-3", good_version="v1.0.0")
