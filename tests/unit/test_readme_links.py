"""The README is the on-call guide: short, and every page it sends a person to exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_the_readme_fits_an_on_call_read() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_every_link_in_the_readme_and_docs_names_a_file_that_exists() -> None:
    pages = [README, *sorted((REPO / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert not missing, missing
