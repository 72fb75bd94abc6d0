"""The conda environment files must ask for the same packages and ranges as pyproject.toml.

environment.yml is for people who run the runbook (runtime + the ``lab`` extra, the project
installed as a package); environment-dev.yml is for developers (every extra, editable).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

# conda-forge names some packages differently from PyPI.
CONDA_NAME = {"kubernetes": "python-kubernetes", "prometheus-client": "prometheus_client"}
# Which pyproject extras each environment file carries, and how it installs the project.
ENVIRONMENTS = {
    "environment.yml": (("lab",), "."),
    "environment-dev.yml": (("lab", "sandbox", "test"), "-e ."),
}
DEV_TOOLS = {"pytest", "ruff", "mypy", "nbval", "import-linter"}


def _split(spec: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert match, spec
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _pyproject_requirements(extras: tuple[str, ...]) -> dict[str, str]:
    project = _project()
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    out = {}
    for spec in specs:
        name, version = _split(spec)
        out[CONDA_NAME.get(name, name).lower().replace("_", "-")] = version
    return out


def _environment(file: str) -> dict[str, Any]:
    env: dict[str, Any] = yaml.safe_load((ROOT / file).read_text())
    return env


def _conda_requirements(file: str) -> dict[str, str]:
    out = {}
    for dep in _environment(file)["dependencies"]:
        if isinstance(dep, str):
            name, version = _split(dep)
            if name not in {"python", "pip"}:
                out[name.replace("_", "-")] = version
    return out


@pytest.mark.parametrize("file", sorted(ENVIRONMENTS))
def test_environment_file_matches_pyproject(file: str) -> None:
    extras, _ = ENVIRONMENTS[file]
    assert _conda_requirements(file) == _pyproject_requirements(extras)


@pytest.mark.parametrize("file", sorted(ENVIRONMENTS))
def test_environment_file_installs_the_project_itself(file: str) -> None:
    _, install = ENVIRONMENTS[file]
    pip_entries = next(d["pip"] for d in _environment(file)["dependencies"] if isinstance(d, dict))
    assert pip_entries == [install]


def test_every_extra_is_in_some_environment_file() -> None:
    covered = {extra for extras, _ in ENVIRONMENTS.values() for extra in extras}
    assert covered == set(_project()["optional-dependencies"])


def test_users_get_no_developer_tools_and_no_jupyter_meta_package() -> None:
    runtime = _pyproject_requirements(("lab",))
    assert not DEV_TOOLS & set(runtime)
    assert "jupyter" not in runtime
    assert "jupyterlab" in _pyproject_requirements(("lab",))
    assert set(_conda_requirements("environment-dev.yml")) >= DEV_TOOLS
    runtime_only = {_split(spec)[0] for spec in _project()["dependencies"]}
    assert {"papermill", "ipykernel", "nbconvert"} <= runtime_only
    assert "jupyterlab" not in runtime_only
