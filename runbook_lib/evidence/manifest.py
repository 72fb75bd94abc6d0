"""The evidence bundle's SHA-256 manifest: written last, checked by ``runbook verify-evidence``.

Format: the ``sha256sum`` text format (``<hex>  <relative path>``, sorted by path), so the bundle
can also be checked on a machine without this project: ``sha256sum -c MANIFEST.sha256``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from runbook_lib.errors import InputFileError

__all__ = ["MANIFEST_NAME", "ManifestCheck", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "MANIFEST.sha256"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    )


def write_manifest(directory: Path) -> Path:
    """Hash every file under ``directory`` into ``MANIFEST.sha256`` (Post-Rollback Actions, step 2).

    Rewrites the manifest from scratch, so call it after the last file is written. Raises
    ``OSError`` if the directory cannot be read or written.
    """
    lines = [f"{_sha256(directory / rel)}  {rel}\n" for rel in _files(directory)]
    manifest = directory / MANIFEST_NAME
    manifest.write_text("".join(lines), encoding="utf-8")
    return manifest


@dataclass(frozen=True)
class ManifestCheck:
    """The outcome of checking a bundle against its manifest; ``ok`` when nothing changed."""

    checked: int
    modified: tuple[str, ...]
    missing: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not (self.modified or self.missing or self.added)

    def problems(self) -> list[str]:
        """One line per changed file, e.g. ``modified: record.json``."""
        return (
            [f"modified: {p}" for p in self.modified]
            + [f"missing: {p}" for p in self.missing]
            + [f"added (not in manifest): {p}" for p in self.added]
        )


def verify_manifest(directory: Path) -> ManifestCheck:
    """Compare every file under ``directory`` with ``MANIFEST.sha256``.

    Raises ``InputFileError`` when the manifest is absent or a line is malformed.
    """
    manifest = directory / MANIFEST_NAME
    try:
        text = manifest.read_text(encoding="utf-8")
    except OSError as err:
        raise InputFileError(f"cannot read the manifest: {err}", path=str(manifest)) from err
    expected: dict[str, str] = {}
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel:
            raise InputFileError(
                "expected '<sha256>  <path>'", path=str(manifest), row=row, column="line"
            )
        expected[rel] = digest
    present = set(_files(directory))
    modified = tuple(
        rel
        for rel, digest in sorted(expected.items())
        if rel in present and _sha256(directory / rel) != digest
    )
    missing = tuple(sorted(set(expected) - present))
    added = tuple(sorted(present - set(expected)))
    return ManifestCheck(len(expected), modified, missing, added)
