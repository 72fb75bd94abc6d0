"""The wheel, installed into a fresh virtual environment outside the checkout, is the whole tool.

Builds the wheel from a copy of the source tree, installs it with its runtime dependencies only
(no extras) into a new virtualenv in a temporary directory, and runs ``runbook`` from there:
``--version``, ``run assess`` on the bundled bad-deploy replay and ``run rollback`` on the
bundled healthy replay (no rollback needed, so no cluster), each reading the notebooks and
replays installed inside the package; then, with the ``sandbox`` extra added, ``runbook sandbox
status`` (pins read from the package, state kept outside it). Needs the package index (or
pip's cache) for the dependencies: a few minutes the first time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from runbook_sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"  # the bundled replays' deploy
# Source-tree directories whose files the installed tool reads, and where the wheel puts them.
DATA_DIRS = {
    "notebooks": "runbook_lib/notebooks",
    "sandbox/build": "runbook_sandbox/data/build",
    "sandbox/chart": "runbook_sandbox/data/chart",
    "sandbox/kwok": "runbook_sandbox/data/kwok",
    "sandbox/migrations": "runbook_sandbox/data/migrations",
    "sandbox/traffic": "runbook_sandbox/data/traffic",
}
# Notices nobody can act on (the kernel over TCP, nbconvert's alt-text notice), never printed.
NOISE = ("Kernel is running over TCP without encryption", "Alternative text is missing")
_SKIP = shutil.ignore_patterns(
    ".git", ".venv", ".cache", ".state", "build", "dist", "evidence", "*.egg-info",
    "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".ipynb_checkpoints",
)  # fmt: skip


@dataclass(frozen=True)
class Installed:
    root: Path  # temporary directory outside the checkout
    wheel: Path
    venv: Path
    build_output: str  # what building the wheel printed

    @property
    def runbook(self) -> Path:
        return self.venv / "bin" / "runbook"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        drop: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        # No PYTHONPATH and a working directory outside the checkout: only the wheel is seen.
        gone = {"PYTHONPATH", "VIRTUAL_ENV", *drop}
        environment = {k: v for k, v in os.environ.items() if k not in gone}
        environment["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
        environment.update(env or {})
        return subprocess.run(
            [str(self.runbook), *args],
            cwd=cwd or self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


def _tracked_files() -> list[Path] | None:
    """Files git tracks or would track (None outside a git checkout)."""
    if not (REPO / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return [REPO / name for name in out.split("\0") if name and (REPO / name).is_file()]


def _copy_source(target: Path) -> None:
    files = _tracked_files()
    if files is None:
        shutil.copytree(REPO, target, ignore=_SKIP)
        return
    for path in files:
        dest = target / path.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)


def _pip(python: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [str(python), "-m", "pip", *args], cwd=cwd, capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"pip {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel").resolve()
    assert not root.is_relative_to(REPO), "the test must install outside the checkout"
    source = root / "source"
    _copy_source(source)
    built = _pip(Path(sys.executable), "wheel", "--no-deps", "-q", "-w", str(root / "dist"),
                 ".", cwd=source)  # fmt: skip
    (wheel,) = (root / "dist").glob("runbook_lib-*.whl")
    shutil.rmtree(source)  # from here on nothing of the source tree is on disk in root
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    _pip(venv / "bin" / "python", "install", "-q", str(wheel), cwd=root)
    return Installed(root=root, wheel=wheel, venv=venv, build_output=built)


def _version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_the_wheel_carries_the_notebooks_sandbox_data_and_license(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        migrate = wheel.getinfo("runbook_sandbox/data/migrations/migrate")
        metadata = Parser().parsestr(
            wheel.read(f"runbook_lib-{_version()}.dist-info/METADATA").decode()
        )
    files = _tracked_files()
    if files is not None:  # every committed data file, including ones added later
        for source_dir, package_dir in DATA_DIRS.items():
            for path in files:
                relative = path.relative_to(REPO).as_posix()
                if relative.startswith(source_dir + "/") and path.name != "README.md":
                    inside = package_dir + relative[len(source_dir) :]
                    assert inside in names, f"{relative} is not in the wheel (as {inside})"
    assert "runbook_lib/notebooks/rollback.ipynb" in names
    assert "runbook_lib/notebooks/data/bad_deploy.csv" in names
    assert "runbook_sandbox/data/chart/app/Chart.yaml" in names
    assert migrate.external_attr >> 16 & 0o111, "sandbox/migrations/migrate lost its x bit"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert metadata["License-Expression"] == "Apache-2.0"
    requires = metadata.get_all("Requires-Dist") or []
    runtime = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires
               if "extra ==" not in r}  # fmt: skip
    assert not runtime & {"jupyter", "jupyterlab", "notebook", "pytest", "ruff", "mypy"}
    assert {"papermill", "ipykernel", "nbconvert"} <= runtime
    assert any(r.startswith("jupyterlab") and 'extra == "lab"' in r for r in requires)


def test_the_wheel_builds_without_setuptools_warning_of_unlisted_data_folders(
    installed: Installed,
) -> None:
    # Every folder of package data is a listed package (pyproject.toml): otherwise setuptools
    # prints a page of "Package would be ignored" at every install.
    assert "would be ignored" not in installed.build_output, installed.build_output


def test_version(installed: Installed) -> None:
    done = installed.run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"runbook {_version()}"


def _installed_replay(installed: Installed, name: str) -> Path:
    """The replay inside the installed package, found the way the tool finds its notebooks."""
    code = (
        "from importlib.resources import files; "
        f"print(files('runbook_lib.notebooks') / 'data' / '{name}')"
    )
    out = subprocess.run(
        [str(installed.python), "-c", code], cwd=installed.root, capture_output=True,
        text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    path = Path(out)
    assert path.is_relative_to(installed.venv), f"{name} found outside the virtualenv: {path}"
    return path


def _json_outputs(notebook: Path) -> list[dict[str, Any]]:
    nb = json.loads(notebook.read_text())
    found = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("application/json")
            if isinstance(data, dict):
                found.append(data)
    return found


def test_run_assess_on_the_bundled_bad_deploy(installed: Installed) -> None:
    replay = _installed_replay(installed, "bad_deploy.csv")
    work = installed.root / "assess-run"
    work.mkdir()
    # Evidence goes to ./evidence/<incident id>/ of the working directory.
    done = installed.run(
        "run", "assess", "-p", "replay_csv", str(replay), "-p", "deployed_at", DEPLOYED_AT,
        cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    (notebook,) = (work / "evidence").glob("*/assess.ipynb")
    assert notebook.with_suffix(".html").is_file()
    records = [d for d in _json_outputs(notebook) if "rollback" in d]
    assert records, "the executed assess notebook has no decision record"
    assert records[-1]["rollback"] is True
    for noise in NOISE:
        assert noise not in done.stderr
        assert noise not in done.stdout


def test_papermill_lists_the_installed_notebooks_parameters(installed: Installed) -> None:
    # No notebooks/ folder here: the installed notebook is named runbook://rollback.ipynb.
    gone = {"PYTHONPATH", "VIRTUAL_ENV"}
    environment = {k: v for k, v in os.environ.items() if k not in gone}
    done = subprocess.run(
        [str(installed.venv / "bin" / "papermill"), "--help-notebook", "runbook://rollback.ipynb"],
        cwd=installed.root, env=environment, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Parameters inferred for notebook 'runbook://rollback.ipynb'" in done.stdout
    for name in ("profile", "expected_cluster", "dry_run", "output_dir"):
        assert f"  {name}: " in done.stdout


def test_run_rollback_on_a_healthy_replay_needs_no_cluster(installed: Installed) -> None:
    replay = _installed_replay(installed, "healthy_deploy.csv")
    evidence = installed.root / "rollback-evidence"
    done = installed.run(
        "run", "rollback",
        "-p", "replay_csv", str(replay), "-p", "deployed_at", DEPLOYED_AT,
        "-p", "expected_cluster", "kwok-not-contacted", "-p", "dry_run", "True",
        "-p", "incident_id", "wheel-test", "--output-dir", str(evidence),
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "outcome: no_rollback" in done.stdout
    bundle = evidence / "wheel-test"
    for name in ("rollback.ipynb", "rollback.html", "timeline.jsonl", "MANIFEST.sha256"):
        assert (bundle / name).is_file(), f"{name} missing from the evidence"
    for noise in NOISE:
        assert noise not in done.stderr
        assert noise not in done.stdout
    verified = installed.run("verify-evidence", str(bundle))
    assert verified.returncode == 0, f"{verified.stdout}\n{verified.stderr}"


def test_sandbox_status_with_the_sandbox_extra(installed: Installed) -> None:
    # Last in this module: the extra is added to the same virtualenv, as a user would.
    _pip(installed.python, "install", "-q", f"{installed.wheel}[sandbox]", cwd=installed.root)
    xdg = installed.root / "xdg-state"
    env_overrides = {
        "RUNBOOK_SANDBOX_NAME": "rb-package-wheel",
        "RUNBOOK_SANDBOX_PORT_BASE": "19500",
        "XDG_STATE_HOME": str(xdg),
    }
    done = installed.run("sandbox", "status", env=env_overrides, drop=("RUNBOOK_SANDBOX_STATE",))
    assert done.returncode == 3, f"{done.stdout}\n{done.stderr}"  # 3: not running
    status = json.loads(done.stdout)
    # Data read from the package (pins for the cache key), state outside it.
    assert status["state_dir"] == str(xdg / "runbook-sandbox")
    assert status["cluster_running"] is False
    assert status["context"] == "kwok-rb-package-wheel"


@pytest.mark.sandbox
def test_the_example_teams_tests_run_through_the_installed_plugin(
    installed: Installed, sandbox: Sandbox
) -> None:
    # After the sandbox extra above; pytest is all a team adds. Outside the checkout: the
    # plugin, its fixtures and the runbook come from the wheel, the tests from the team's copy.
    _pip(installed.python, "install", "-q", f"{installed.wheel}[sandbox]", "pytest",
         cwd=installed.root)  # fmt: skip
    team = installed.root / "team-shop"
    shutil.copytree(REPO / "examples" / "team-shop", team, ignore=_SKIP)
    gone = {"PYTHONPATH", "VIRTUAL_ENV"}
    environment = {k: v for k, v in os.environ.items() if k not in gone and "PYTEST" not in k}
    environment["PATH"] = f"{installed.venv / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    environment.update(
        RUNBOOK_SANDBOX_NAME=sandbox.name,
        RUNBOOK_SANDBOX_STATE=str(sandbox.state_dir),
        RUNBOOK_SANDBOX_PORT_BASE=str(sandbox.ports.base),
    )
    # Two of its tests: a run on the sandbox (Prometheus down) and a decision on a replay.
    argv = [str(installed.python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-k", "prometheus_down or replay"]  # fmt: skip
    done = subprocess.run(argv, cwd=team, env=environment, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    where = "import runbook_sandbox.pytest_plugin as p; print(p.__file__)"
    plugin = subprocess.run(
        [str(installed.python), "-c", where],
        cwd=team, env=environment, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(plugin.stdout.strip()).is_relative_to(installed.venv)
