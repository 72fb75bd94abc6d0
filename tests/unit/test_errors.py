"""The error tree tells the on-call what state the world is in; messages carry the facts."""

from __future__ import annotations

import pytest

from runbook_lib import errors


def test_parameter_error_lists_every_problem() -> None:
    err = errors.ParameterError(["release: must not be empty", "error_ratio: must be in 0..1"])
    assert "2 invalid parameter(s)" in str(err)
    assert "release: must not be empty" in str(err)
    assert "error_ratio: must be in 0..1" in str(err)


def test_adapter_error_carries_command_stderr_and_retryability() -> None:
    err = errors.CommandFailed(
        "helm failed",
        command="helm rollback app 3",
        stderr="Error: timed out",
        retryable=True,
        returncode=1,
    )
    assert isinstance(err, errors.AdapterError)
    assert "helm rollback app 3" in str(err)
    assert "timed out" in str(err)
    assert err.retryable
    assert err.returncode == 1


def test_input_file_error_names_file_row_and_column() -> None:
    err = errors.InputFileError("not a number", path="m.csv", row=7, column="error_ratio")
    assert str(err).startswith("m.csv, row 7, column 'error_ratio': not a number")
    assert isinstance(err, errors.MetricsError)


@pytest.mark.parametrize(
    "cls",
    [getattr(errors, name) for name in errors.__all__],
    ids=list(errors.__all__),
)
def test_every_error_derives_from_the_root(cls: type[Exception]) -> None:
    assert issubclass(cls, errors.RunbookError)


def test_public_names_are_sorted() -> None:
    assert list(errors.__all__) == sorted(errors.__all__)
