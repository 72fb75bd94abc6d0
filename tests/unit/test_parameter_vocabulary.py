"""One parameter vocabulary: a walk over the settings model's fields (``core.settings.FIELDS``).

Both notebooks declare exactly the model's parameters with its defaults, their parameters
cells are the generated ones, ``runbook evaluate`` has an option for every "When to Rollback"
setting, ``Settings`` holds every rollback parameter with its declared default, and the same
text with units means the same value in the notebook (``start_run``), the CLI and the
assessment (``check_settings``); a duration without a unit is refused everywhere, naming the
units. All parameters are checked at once, the post-rollback ones too, before anything runs.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from runbook_lib import assessment
from runbook_lib.cli.main import build_parser, main
from runbook_lib.core.kinds import Entry, Kind, Spec, parse
from runbook_lib.core.settings import FIELDS, Settings, cell_default, from_flat, parameters_cell
from runbook_lib.errors import ParameterError
from runbook_lib.steps.context import start_run

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = {
    Entry.ASSESS: REPO / "notebooks" / "assess.ipynb",
    Entry.ROLLBACK: REPO / "notebooks" / "rollback.ipynb",
}
HEALTHY = REPO / "notebooks" / "data" / "healthy_deploy.csv"
DEPLOYED_AT = "2026-11-20T14:00:00+00:00"


def _of(used_by: Entry) -> list[Spec]:
    return [p for p in FIELDS if used_by in p.used_by]


def _parameters_cell(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    return str(cells[0].source)


def test_the_model_names_each_parameter_once_in_snake_case() -> None:
    names = [p.name for p in FIELDS]
    assert len(names) == len(set(names))
    for p in FIELDS:
        assert p.name.isidentifier(), p.name
        assert p.name == p.name.lower(), p.name
        assert p.help.strip(), f"{p.name}: no help"
        assert p.used_by, f"{p.name}: taken by no entry point"
        # Every default is a valid value of its own kind.
        parse(p, p.default)


@pytest.mark.parametrize("used_by", [Entry.ASSESS, Entry.ROLLBACK])
def test_notebook_declares_exactly_the_models_parameters_with_its_defaults(used_by: Entry) -> None:
    declared = papermill.inspect_notebook(str(NOTEBOOKS[used_by]))
    expected = _of(used_by)
    assert list(declared) == [p.name for p in expected]
    for p in expected:
        default = ast.literal_eval(declared[p.name]["default"])
        assert default == cell_default(p), f"{NOTEBOOKS[used_by].name}: {p.name} = {default!r}"
        assert type(default) is type(cell_default(p)), p.name


@pytest.mark.parametrize("used_by", [Entry.ASSESS, Entry.ROLLBACK])
def test_notebook_parameters_cell_is_the_generated_one(used_by: Entry) -> None:
    assert _parameters_cell(NOTEBOOKS[used_by]) == parameters_cell(used_by)


def test_every_when_to_rollback_parameter_is_an_evaluate_option() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    evaluate = sub.choices["evaluate"]
    by_option = {o: a for a in evaluate._actions for o in a.option_strings}
    for p in _of(Entry.EVALUATE):
        assert p.option == "--" + p.name.replace("_", "-")
        assert p.option in by_option, f"runbook evaluate has no {p.option}"
        assert by_option[p.option].dest == p.name
        # Underscores are accepted too (the notebook spelling).
        assert by_option.get("--" + p.name, by_option[p.option]).dest == p.name
    # The evaluate options that are parameters are exactly the table's EVALUATE ones.
    dests = {a.dest for a in evaluate._actions} - {"help", "json", "exit_status", "func"}
    assert dests == {p.name for p in _of(Entry.EVALUATE)}
    # Both notebooks take every When-to-Rollback parameter the CLI takes.
    for p in _of(Entry.EVALUATE):
        assert {Entry.ASSESS, Entry.ROLLBACK} <= p.used_by, p.name


def test_settings_hold_every_parameter_with_its_declared_default() -> None:
    defaults = Settings().flat()
    assert list(defaults) == [p.name for p in FIELDS]
    assert {p.name for p in _of(Entry.ROLLBACK)} <= set(defaults)
    assert defaults == {p.name: p.typed_default for p in FIELDS}


# ---- the same text means the same value in the notebook, the CLI and the assessment ----


def _replay_params(**over: object) -> dict[str, Any]:
    return {"replay_csv": str(HEALTHY), "deployed_at": DEPLOYED_AT} | over


def _notebook_value(tmp_path: Path, name: str, value: object) -> Any:
    ctx = start_run(
        expected_cluster="kwok-runbook",
        output_dir=str(tmp_path),
        incident_id="inc-units",
        environ={},
        out=lambda _text: None,
        **_replay_params(**{name: value}),
    )
    return ctx.settings.flat()[name]


def _cli_reason(capsys: pytest.CaptureFixture[str], *options: str) -> str:
    """The error-rate rule's reason as ``runbook evaluate`` prints it (it states the numbers)."""
    args = ["evaluate", "--replay-csv", str(HEALTHY), "--deployed-at", DEPLOYED_AT, "--json"]
    assert main([*args, *options]) == 0
    document = json.loads(capsys.readouterr().out)
    return next(r["reason"] for r in document["rules"] if r["rule"] == "error_rate")


@pytest.mark.parametrize(
    ("name", "texts", "parsed"),
    [
        pytest.param("sustain", ("2m", "120s", "120000ms"), 120.0, id="sustain"),
        pytest.param("sustain", ("90s", "1.5m"), 90.0, id="sustain-90s"),
        pytest.param("error_ratio", ("1%", "0.01"), 0.01, id="error-ratio"),
        pytest.param("business_drop", ("10%", "0.1"), 0.1, id="business-drop"),
    ],
)
def test_units_are_read_the_same_everywhere(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    texts: tuple[str, ...],
    parsed: float,
) -> None:
    reasons = set()
    for text in texts:
        assert _notebook_value(tmp_path / text, name, text) == pytest.approx(parsed)
        for entry in (Entry.ASSESS, Entry.EVALUATE):
            checked = assessment.check_settings(_replay_params(**{name: text}), used_by=entry)
            assert checked.flat()[name] == pytest.approx(parsed)
        reasons.add(_cli_reason(capsys, "--" + name.replace("_", "-"), text))
    # The CLI reached the same decision, stating the same numbers, for every spelling.
    assert len(reasons) == 1, reasons


def test_the_cli_states_the_parsed_sustain(capsys: pytest.CaptureFixture[str]) -> None:
    # The healthy replay's 45 s burst above 1%: the rule's reason names the sustain in seconds.
    assert "not longer than 120 s" in _cli_reason(capsys, "--sustain", "2m")
    assert "not longer than 90 s" in _cli_reason(capsys, "--sustain", "90s")
    assert "not longer than 90 s" in _cli_reason(capsys, "--sustain=1.5m")


@pytest.mark.parametrize("bare", [120, 120.0, "120", " 90 "])
def test_a_duration_without_a_unit_is_refused_naming_the_units_in_the_notebook(
    tmp_path: Path, bare: object
) -> None:
    with pytest.raises(ParameterError) as caught:
        _notebook_value(tmp_path, "sustain", bare)
    (problem,) = caught.value.problems
    assert problem.startswith("sustain: ")
    assert "has no unit" in problem
    assert "units: ms, s" in problem
    assert not (tmp_path / "inc-units").exists()  # refused before the timeline


@pytest.mark.parametrize("entry", [Entry.ASSESS, Entry.EVALUATE])
def test_a_duration_without_a_unit_is_refused_by_the_assessment(entry: Entry) -> None:
    with pytest.raises(ParameterError) as caught:
        assessment.check_settings(_replay_params(window="30", sustain="2m"), used_by=entry)
    (problem,) = caught.value.problems
    assert problem.startswith("window: '30' has no unit")
    assert "units: ms, s" in problem


def test_a_duration_without_a_unit_is_refused_by_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["evaluate", "--replay-csv", str(HEALTHY), "--deployed-at", DEPLOYED_AT]
    assert main([*args, "--business-smoothing", "300"]) == 2
    err = capsys.readouterr().err
    assert "--business-smoothing: '300' has no unit" in err
    assert "units: ms, s" in err


def test_every_duration_parameter_refuses_a_bare_number() -> None:
    for p in FIELDS:
        if p.kind in (Kind.DURATION, Kind.OPTIONAL_DURATION):
            with pytest.raises(ValueError, match="has no unit"):
                parse(p, "5")
            with pytest.raises(ValueError, match="has no unit"):
                parse(p, 5)


# ---- every parameter checked at once, the post-rollback ones too, before anything runs ----

LATE_PROBLEMS = {
    "postmortem_organizer": "oncall@example.com\r\nATTACH:https://evil.example/payload",
    "release": "app\n",
    "request_rate_rps": -5.0,
    "root_cause_hypothesis": "pool size\r\nhalved",
    "fix_forward_repo": "/srv/repo\nsecond line",
}


def _run_params(tmp_path: Path, **over: object) -> dict[str, object]:
    return {
        "expected_cluster": "kwok-runbook",
        "replay_csv": str(HEALTHY),
        "output_dir": str(tmp_path / "evidence"),
        "incident_id": "inc-late",
    } | over


def test_post_rollback_parameters_are_checked_with_the_others_before_anything_runs(
    tmp_path: Path,
) -> None:
    with pytest.raises(ParameterError) as caught:
        start_run(**_run_params(tmp_path, sustain="120", **LATE_PROBLEMS), environ={})
    named = sorted({p.split(":")[0] for p in caught.value.problems})
    assert named == sorted([*LATE_PROBLEMS, "sustain"])
    organizer = next(p for p in caught.value.problems if p.startswith("postmortem_organizer"))
    assert "e-mail address" in organizer
    assert not (tmp_path / "evidence").exists()  # nothing written, nothing run


@pytest.mark.parametrize(("name", "value"), list(LATE_PROBLEMS.items()))
def test_each_late_problem_alone_is_refused(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(ParameterError) as caught:
        from_flat(_run_params(tmp_path, **{name: value}), used_by=Entry.ROLLBACK)
    assert [p.split(":")[0] for p in caught.value.problems] == [name]


def test_runbook_run_refuses_them_with_exit_2_before_the_notebook_starts(
    tmp_path: Path,
) -> None:
    args = ["run", "rollback", "--output-dir", str(tmp_path / "evidence"), "--quiet"]
    for name, value in _run_params(tmp_path, **LATE_PROBLEMS).items():
        if name != "output_dir":
            args += ["-r" if isinstance(value, str) else "-p", name, str(value)]
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from runbook_lib.cli import main; sys.exit(main())",
         *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    for name in LATE_PROBLEMS:
        assert f"- {name}:" in result.stderr
    assert not (tmp_path / "evidence").exists()
