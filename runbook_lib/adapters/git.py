"""Git, driven through its own CLI, for "Fix forward" (Post-Rollback Actions, step 3).

Only what fix-forward needs: resolve a commit or tag, check whether a branch exists, create a
branch at a commit without checking it out (the engineer's working tree is left untouched).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from runbook_lib.errors import CommandFailed

__all__ = ["Git"]


class Git:
    """A git repository at ``repo``; every call runs ``git -C repo ...`` (argv, no shell)."""

    def __init__(self, repo: Path, *, binary: str = "git", timeout_s: float = 30.0) -> None:
        self.repo = repo
        self.binary = binary
        self.timeout_s = timeout_s

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, "-C", str(self.repo), *args]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except FileNotFoundError as err:
            raise CommandFailed(
                f"{self.binary} not found: install git", command=shlex.join(argv)
            ) from err
        except subprocess.TimeoutExpired as err:
            raise CommandFailed(
                f"git timed out after {self.timeout_s:.0f} s",
                command=shlex.join(argv),
                retryable=True,
            ) from err
        if check and result.returncode != 0:
            raise CommandFailed(
                f"git exited {result.returncode}",
                command=shlex.join(argv),
                stderr=result.stderr,
                returncode=result.returncode,
            )
        return result

    def is_repository(self) -> bool:
        """True when ``repo`` is inside a git work tree (or is a bare repository)."""
        if not self.repo.is_dir():
            return False
        return self._run("rev-parse", "--git-dir", check=False).returncode == 0

    def resolve(self, ref: str) -> str | None:
        """The full commit id ``ref`` (a sha, abbreviation or tag) names, or None if unknown."""
        result = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return result.stdout.strip() or None if result.returncode == 0 else None

    def branch_exists(self, name: str) -> bool:
        result = self._run("show-ref", "--verify", "--quiet", f"refs/heads/{name}", check=False)
        return result.returncode == 0

    def create_branch(self, name: str, commit: str) -> None:
        """Create branch ``name`` at ``commit``, not switching to it. Raises ``CommandFailed``."""
        self._run("branch", "--no-track", name, commit)

    def subject(self, commit: str) -> str:
        """The first line of the commit message."""
        return self._run("log", "-1", "--format=%s", commit).stdout.strip()
