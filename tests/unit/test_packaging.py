"""What the wheel ships, checked without building it (tests/packaging/test_wheel.py builds it).

setuptools' package list is explicit (runbook_sandbox lives in sandbox/harness, which discovery
cannot map), so a new subpackage that is not listed would be missing from every install.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.cli.run import NOTEBOOKS, _notebook_dir
from runbook_sandbox import paths

REPO = Path(__file__).resolve().parents[2]


def _setuptools() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]


def _package_dirs() -> dict[str, Path]:
    """Every listed package and the source directory it is built from."""
    config = _setuptools()
    mapping = config.get("package-dir", {})
    out = {}
    for package in config["packages"]:
        parts = package.split(".")
        for cut in range(len(parts), 0, -1):  # the nearest mapped package, itself first
            mapped = ".".join(parts[:cut])
            if mapped in mapping:
                out[package] = REPO / mapping[mapped] / "/".join(parts[cut:])
                break
        else:
            out[package] = REPO / "/".join(parts)
    return out


def _data_packages() -> dict[str, list[str]]:
    """The packages that carry files other than code, and the patterns of those files."""
    data: dict[str, list[str]] = _setuptools()["package-data"]
    return data


def test_every_python_package_in_the_source_is_listed() -> None:
    listed = {path.resolve() for path in _package_dirs().values()}
    for root in (REPO / "runbook_lib", REPO / "sandbox" / "harness"):
        for init in root.rglob("__init__.py"):
            assert init.parent.resolve() in listed, (
                f"{init.parent.relative_to(REPO)} is a package missing from "
                "[tool.setuptools] packages in pyproject.toml"
            )


def test_every_folder_of_package_data_is_listed() -> None:
    # setuptools prints a page of "Package would be ignored" at every install for a folder of
    # package data that is not a listed package (the wheel's contents are the same).
    dirs = _package_dirs()
    listed = {path.resolve() for path in dirs.values()}
    for package, patterns in _data_packages().items():
        for pattern in patterns:
            for file in dirs[package].glob(pattern):
                if file.is_file():
                    assert file.parent.resolve() in listed, (
                        f"{file.parent.relative_to(REPO)} holds package data ({pattern}) but "
                        "is missing from [tool.setuptools] packages in pyproject.toml"
                    )


def test_every_listed_package_exists() -> None:
    data_roots = tuple(f"{package}." for package in _data_packages())
    for package, directory in _package_dirs().items():
        if package.startswith(data_roots):  # a folder of files only
            assert directory.is_dir(), f"{package}: no folder {directory}"
        else:
            assert (directory / "__init__.py").is_file(), f"{package}: no {directory}/__init__.py"


def test_the_cli_finds_its_notebooks_through_the_package() -> None:
    directory = _notebook_dir()
    assert directory == Path(str(resources.files("runbook_lib.notebooks")))
    for name in NOTEBOOKS.values():
        assert (directory / name).is_file()
    assert (directory / "data" / "bad_deploy.csv").is_file()


def test_the_sandbox_finds_its_data_through_the_package() -> None:
    assert paths.data_dir() == Path(str(resources.files("runbook_sandbox.data")))
    assert (paths.build_dir() / "pins.toml").is_file()
    assert (paths.chart_dir() / "Chart.yaml").is_file()
    assert (paths.kwok_dir() / "cluster.yaml").is_file()
    assert (paths.migrations_dir() / "migrate").is_file()
    assert paths.traffic_config().is_file()


def test_an_installed_sandbox_keeps_its_state_outside_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "site-packages" / "runbook_sandbox" / "data"
    installed.mkdir(parents=True)
    monkeypatch.setattr(paths, "data_dir", lambda: installed)
    monkeypatch.delenv("RUNBOOK_SANDBOX_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert paths.state_dir() == tmp_path / "state" / "runbook-sandbox"
    monkeypatch.setenv("RUNBOOK_SANDBOX_STATE", str(tmp_path / "mine"))
    assert paths.state_dir() == tmp_path / "mine"


def test_a_checkout_keeps_its_sandbox_state_in_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_SANDBOX_STATE", raising=False)
    assert paths.state_dir() == REPO / "sandbox" / ".state"
