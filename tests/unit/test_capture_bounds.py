"""Bounds on captured pod logs (core/capture.py)."""

from __future__ import annotations

import pytest

from runbook_lib.core.capture import MIB, CaptureBounds, cut_log, truncation_marker
from runbook_lib.errors import ParameterError


def test_defaults_are_one_mib_per_pod_and_twenty_in_all() -> None:
    bounds = CaptureBounds()
    assert (bounds.per_pod_bytes, bounds.total_bytes) == (MIB, 20 * MIB)


def test_budget_shrinks_to_what_the_total_leaves() -> None:
    bounds = CaptureBounds(per_pod_bytes=4096, total_bytes=10_000)
    assert bounds.budget(0) == 4096
    assert bounds.budget(8192) == 10_000 - 8192
    assert bounds.budget(10_000) == 0
    assert bounds.budget(20_000) == 0


def test_bad_bounds_name_the_parameter() -> None:
    with pytest.raises(ParameterError) as err:
        CaptureBounds(per_pod_bytes=10, total_bytes=5)
    text = str(err.value)
    assert "per_pod_bytes" in text
    assert "total_bytes" in text


def test_a_log_within_the_bound_is_kept_whole() -> None:
    data = b"a\nb\n"
    cut = cut_log(data, 4)
    assert (cut.data, cut.truncated) == (data, False)
    assert cut.text(what="log of p") == "a\nb\n"


def test_a_cut_falls_on_a_line_boundary_and_says_so() -> None:
    data = b"line one\nline two\nline three\n"
    cut = cut_log(data, 15)
    assert cut.truncated
    assert cut.data == b"line one\n"
    text = cut.text(what="log of app-1/api")
    assert text.startswith("line one\n")
    assert text.endswith(truncation_marker("log of app-1/api", 15) + "\n")
    assert "TRUNCATED log of app-1/api at 15 bytes" in text


def test_one_long_line_is_cut_at_the_bound_without_splitting_a_character() -> None:
    data = "é".encode() * 10  # two bytes each
    cut = cut_log(data, 5)
    assert cut.truncated
    assert cut.data == "é".encode() * 2
    assert cut.data.decode() == "éé"


def test_the_kept_part_never_passes_the_bound() -> None:
    data = b"".join(f"{i:05d} some text\n".encode() for i in range(10_000))
    for limit in (0, 1, 17, 4096, len(data) - 1):
        cut = cut_log(data, limit)
        assert len(cut.data) <= limit
        assert cut.truncated
        assert data.startswith(cut.data)
