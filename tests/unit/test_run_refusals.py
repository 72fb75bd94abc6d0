"""``runbook run`` refuses bad input with exit 2 before a kernel starts, and runs nothing.

In this interpreter (``cli_in_process``): these end before papermill starts a kernel, so a
fresh process would only add its start-up. The runs that do start one: tests/notebooks.
"""

from __future__ import annotations

from pathlib import Path

from cli_in_process import runbook

DATA = Path(__file__).resolve().parents[2] / "notebooks" / "data"
WINDOW = (
    "-p",
    "deployed_at",
    "2026-11-20T14:00:00+00:00",
    "-p",
    "now",
    "2026-11-20T14:30:00+00:00",
)


def test_unknown_parameter_is_refused_before_running(tmp_path: Path) -> None:
    result = runbook(
        "run", "rollback", "--quiet", "--output-dir", str(tmp_path / "ev"),
        "-p", "relase", "app", "-p", "replay_csv", "x.csv",
    )  # fmt: skip
    assert result.returncode == 2
    assert "relase: unknown parameter" in result.stderr
    assert not (tmp_path / "ev").exists()


def test_output_dir_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "evidence"
    not_a_folder.write_text("a file\n")
    for output_dir in (not_a_folder, not_a_folder / "below"):
        result = runbook(
            "run", "rollback", "--quiet", "--output-dir", str(output_dir),
            "-r", "replay_csv", str(DATA / "healthy_deploy.csv"),
            "-r", "expected_cluster", "kwok-runbook", *WINDOW,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "output_dir" in result.stderr
        assert "Traceback" not in result.stderr
    assert not_a_folder.read_text() == "a file\n"
