"""environment.yml (conda users) must ask for the same packages and ranges as pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# conda-forge names some packages differently from PyPI.
CONDA_NAME = {"kubernetes": "python-kubernetes", "prometheus-client": "prometheus_client"}


def _split(spec: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert match, spec
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    specs = list(project["dependencies"])
    for extra in ("sandbox", "test"):
        specs += project["optional-dependencies"][extra]
    out = {}
    for spec in specs:
        name, version = _split(spec)
        out[CONDA_NAME.get(name, name).lower().replace("_", "-")] = version
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, version = _split(dep)
            if name not in {"python", "pip"}:
                out[name.replace("_", "-")] = version
    return out


def test_environment_yml_matches_pyproject() -> None:
    assert _conda_requirements() == _pyproject_requirements()


def test_environment_yml_installs_the_project_itself() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_entries = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_entries
