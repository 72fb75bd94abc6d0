"""The kernel's own record of a notebook run by hand (same evidence by hand)."""

from __future__ import annotations

from typing import Any

from runbook_lib.display.recorder import Recorder


def _msg(kind: str, parent: str, **content: Any) -> dict[str, Any]:
    return {"header": {"msg_type": kind}, "parent_header": {"msg_id": parent}, "content": content}


def _skeleton() -> dict[str, Any]:
    return {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"id": "title", "cell_type": "markdown", "metadata": {}, "source": "# Title"},
            {"id": "a", "cell_type": "code", "metadata": {"tags": ["x"]}, "source": "old a",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": "stale"}],
             "execution_count": 9},
            {"id": "b", "cell_type": "code", "metadata": {}, "source": "b", "outputs": [],
             "execution_count": None},
        ],
    }  # fmt: skip


def test_outputs_land_on_their_cells_with_display_updates_and_unsaved_cells() -> None:
    rec = Recorder()
    rec.begin("m1", "summary()", "a")
    rec.sent(_msg("display_data", "m1", data={"text/plain": "no verdict"}, metadata={},
                  transient={"display_id": "d1"}))  # fmt: skip
    rec.sent(_msg("stream", "m1", name="stdout", text="one "))
    rec.sent(_msg("stream", "m1", name="stdout", text="two\n"))
    rec.begin("m2", "print('new')", "unsaved")
    rec.sent(_msg("stream", "m2", name="stdout", text="new\n"))
    rec.begin("m3", "b", "b")
    rec.sent(_msg("execute_result", "m3", data={"text/plain": "42"}, metadata={},
                  execution_count=3))  # fmt: skip
    rec.sent(_msg("update_display_data", "m3", data={"text/plain": "ROLL BACK"}, metadata={},
                  transient={"display_id": "d1"}))  # fmt: skip
    rec.sent(_msg("stream", "other", name="stdout", text="not ours"))
    nb = rec.executed_notebook(_skeleton())
    cells = nb["cells"]
    assert [c.get("id") for c in cells] == ["title", "a", "unsaved", "b"]
    a = cells[1]
    assert a["source"] == "summary()"  # what ran, not the saved text
    assert a["metadata"] == {"tags": ["x"]}
    assert a["outputs"][0]["data"] == {"text/plain": "ROLL BACK"}  # the update, not the first
    assert a["outputs"][1] == {"output_type": "stream", "name": "stdout", "text": "one two\n"}
    assert cells[2]["outputs"][0]["text"] == "new\n"
    assert cells[3]["outputs"][0]["execution_count"] == 3
    assert nb["metadata"]["runbook"]["unsaved_cells"] == 1
    assert rec.by_hand


def test_a_cell_not_run_loses_stale_outputs_and_clear_output_waits() -> None:
    rec = Recorder()
    rec.begin("m1", "b", "b")
    rec.sent(_msg("stream", "m1", name="stdout", text="first\n"))
    rec.sent(_msg("clear_output", "m1", wait=True))
    rec.sent(_msg("stream", "m1", name="stdout", text="second\n"))
    rec.note_error("LockHeld", "held by bob", ["LockHeld: held by bob"])
    cells = rec.executed_notebook(_skeleton())["cells"]
    assert cells[1]["outputs"] == []
    assert cells[1]["execution_count"] is None
    assert [o["output_type"] for o in cells[2]["outputs"]] == ["stream", "error"]
    assert cells[2]["outputs"][0]["text"] == "second\n"


def test_papermill_like_requests_without_cell_ids_are_not_by_hand() -> None:
    rec = Recorder()
    rec.begin("m1", "x", None)
    assert not rec.by_hand
    assert [c["source"] for c in rec.executed_notebook(None)["cells"]] == ["x"]
