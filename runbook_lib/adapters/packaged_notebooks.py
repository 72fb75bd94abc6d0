"""The installed runbook notebooks as papermill paths: ``runbook://rollback.ipynb``.

The notebooks ship inside the package (``runbook_lib.notebooks``), somewhere under
site-packages; ``notebooks/rollback.ipynb`` names them only in a checkout. papermill finds
this handler through its ``papermill.io`` entry point (pyproject.toml), so from any folder::

    papermill --help-notebook runbook://rollback.ipynb     # every parameter and its default
    papermill runbook://assess.ipynb out.ipynb -p replay_csv bad.csv -p deployed_at ...

Read-only: papermill writes the executed notebook to an ordinary path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["SCHEME", "PackagedNotebooks", "notebook_path"]

SCHEME = "runbook://"


def notebook_path(path: str) -> Path:
    """The installed file that ``runbook://NAME`` names; ``FileNotFoundError`` for no such
    notebook (the message lists the ones there are)."""
    folder = Path(str(resources.files("runbook_lib.notebooks")))
    name = path.removeprefix(SCHEME)
    found = folder / name
    if "/" in name or name.startswith(".") or not found.is_file():
        there = ", ".join(SCHEME + p.name for p in sorted(folder.glob("*.ipynb")))
        raise FileNotFoundError(f"no runbook notebook {path!r} (installed: {there})")
    return found


class PackagedNotebooks:
    """papermill's I/O handler interface for ``runbook://`` paths (read, listdir)."""

    @classmethod
    def read(cls, path: str) -> str:
        return notebook_path(path).read_text(encoding="utf-8")

    @classmethod
    def listdir(cls, path: str) -> list[str]:
        folder = Path(str(resources.files("runbook_lib.notebooks")))
        return [SCHEME + p.name for p in sorted(folder.glob("*.ipynb"))]

    @classmethod
    def write(cls, buf: str, path: str) -> None:
        raise PermissionError(
            f"{path}: the installed notebooks are read-only; write the output to a file path"
        )

    @classmethod
    def pretty_path(cls, path: str) -> str:
        return path
