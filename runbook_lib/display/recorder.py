"""The kernel's own record of what it ran and showed, for a notebook run by hand.

Same evidence by hand: ``runbook run`` gets the executed notebook from papermill,
but in Jupyter the outputs live in the browser, and the file on disk holds only what was last
saved (autosave: every 2 minutes, if at all). A kernel cannot ask JupyterLab for its document
(no server API serves the front end's unsaved model), and a script output asking the page to
save depends on the front end, its version and on the notebook being trusted.

So the kernel records for itself: from the first cell (``open_summary``) on, every message it
sends to the front end (stream, display, result, error, display update, clear) is kept with
the request it answers, and the request's ``cellId`` (JupyterLab, Notebook 7 and VS Code send
it in the request's metadata). ``executed_notebook`` lays those outputs onto the notebook file
(``JPY_SESSION_NAME``, which jupyter_server sets to the notebook's path): cells matched by id
get the source that actually ran and its outputs, markdown comes from the file. Limits: a
cell edited but never run shows the saved text without outputs; a cell never saved but run is
added after the cell run before it; outputs sent before ``open_summary`` (the title) are not
recorded; widgets keep their text form.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Execution", "Recorder", "active", "start"]

_RECORDED = {"stream", "display_data", "execute_result", "error"}


@dataclass
class Execution:
    """One execute request: the code that ran, its cell id and what it showed."""

    msg_id: str
    code: str
    cell_id: str | None
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    display_ids: dict[str, list[int]] = field(default_factory=dict)  # id -> output indexes
    clear_pending: bool = False


class Recorder:
    """Wraps the kernel session's ``send`` and keeps the outputs per execute request."""

    def __init__(self) -> None:
        self.executions: list[Execution] = []
        self._by_msg: dict[str, Execution] = {}
        self._lock = threading.Lock()
        self._counts: dict[str, int | None] = {}  # execute_input seen before its request was noted

    # -- capture -----------------------------------------------------------------------------
    def begin(self, msg_id: str, code: str, cell_id: str | None) -> None:
        with self._lock:
            if msg_id in self._by_msg:
                return
            # ipykernel announces the number (execute_input) before the cell's hooks run.
            run = Execution(msg_id, code, cell_id, self._counts.pop(msg_id, None))
            self.executions.append(run)
            self._by_msg[msg_id] = run

    def sent(self, msg: dict[str, Any]) -> None:
        """One message the kernel sent (as ``Session.send`` returns it)."""
        kind = msg.get("header", {}).get("msg_type") or msg.get("msg_type", "")
        parent = (msg.get("parent_header") or {}).get("msg_id", "")
        if kind not in _RECORDED and kind not in (
            "update_display_data",
            "clear_output",
            "execute_input",
        ):
            return  # status, comm messages and the like: not outputs
        content = _plain(msg.get("content") or {})
        with self._lock:
            if kind == "update_display_data":
                self._update(content)
                return
            run = self._by_msg.get(parent)
            if run is None:
                if kind == "execute_input":
                    self._counts[parent] = content.get("execution_count")
                return
            if kind == "execute_input":
                run.execution_count = content.get("execution_count")
            elif kind == "clear_output":
                if content.get("wait"):
                    run.clear_pending = True
                else:
                    run.outputs.clear()
                    run.display_ids.clear()
            elif kind in _RECORDED:
                self._add(run, kind, content)

    def _add(self, run: Execution, kind: str, content: dict[str, Any]) -> None:
        if run.clear_pending:
            run.outputs.clear()
            run.display_ids.clear()
            run.clear_pending = False
        if kind == "stream":
            last = run.outputs[-1] if run.outputs else None
            if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                last["text"] += content.get("text", "")
                return
            run.outputs.append(
                {"output_type": "stream", "name": content["name"], "text": content["text"]}
            )
            return
        output: dict[str, Any] = {"output_type": kind}
        if kind == "error":
            output.update(
                ename=content.get("ename", ""),
                evalue=content.get("evalue", ""),
                traceback=list(content.get("traceback", [])),
            )
        else:
            output["data"] = copy.deepcopy(content.get("data", {}))
            output["metadata"] = copy.deepcopy(content.get("metadata", {}))
            if kind == "execute_result":
                output["execution_count"] = content.get("execution_count")
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            run.display_ids.setdefault(display_id, []).append(len(run.outputs))
        run.outputs.append(output)

    def _update(self, content: dict[str, Any]) -> None:
        display_id = (content.get("transient") or {}).get("display_id")
        for run in self.executions:
            for index in run.display_ids.get(display_id or "", []):
                run.outputs[index]["data"] = copy.deepcopy(content.get("data", {}))
                run.outputs[index]["metadata"] = copy.deepcopy(content.get("metadata", {}))

    def note_error(self, ename: str, evalue: str, lines: list[str]) -> None:
        """The error the running cell is about to show (saved before the front end sees it)."""
        with self._lock:
            if self.executions:
                self._add(
                    self.executions[-1],
                    "error",
                    {"ename": ename, "evalue": evalue, "traceback": lines},
                )

    # -- the notebook ------------------------------------------------------------------------
    @property
    def by_hand(self) -> bool:
        """Whether a front end that names its cells ran this kernel (not papermill)."""
        return any(run.cell_id for run in self.executions)

    def executed_notebook(self, skeleton: dict[str, Any] | None) -> dict[str, Any]:
        """The notebook as run: ``skeleton`` (the saved file) with this kernel's outputs."""
        nb: dict[str, Any] = (
            copy.deepcopy(skeleton)
            if skeleton
            else {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        )
        cells: list[dict[str, Any]] = nb["cells"]
        latest: dict[str, Execution] = {}
        for run in self.executions:
            if run.cell_id:
                latest[run.cell_id] = run  # a cell run twice shows its last run, as on screen
        position = {cell.get("id"): i for i, cell in enumerate(cells)}
        for cell in cells:
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
        added = 0
        after = -1
        with self._lock:
            for run in self.executions:
                if run.cell_id and latest.get(run.cell_id) is not run:
                    continue
                cell = _code_cell(run)
                if run.cell_id in position:
                    index = position[run.cell_id]
                    cell["metadata"] = cells[index].get("metadata", {})
                    cells[index] = cell
                    after = index
                else:  # run but never saved: after the cell run before it
                    after += 1
                    cells.insert(after, cell)
                    position = {c.get("id"): i for i, c in enumerate(cells)}
                    added += 1
        nb.setdefault("metadata", {})["runbook"] = {"recorded_by": "kernel", "unsaved_cells": added}
        return nb


def _json_default(value: Any) -> Any:
    """What the session's packer would send: bytes (PNG) as base64, times as ISO 8601."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _plain(content: dict[str, Any]) -> dict[str, Any]:
    """The content as the front end receives it: plain JSON, nothing shared with the kernel."""
    plain: dict[str, Any] = json.loads(json.dumps(content, default=_json_default))
    return plain


def _code_cell(run: Execution) -> dict[str, Any]:
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": run.execution_count,
        "metadata": {},
        "outputs": copy.deepcopy(run.outputs),
        "source": run.code,
    }
    if run.cell_id:
        cell["id"] = run.cell_id
    return cell


_active: Recorder | None = None


def active() -> Recorder | None:
    return _active


def notebook_path(environ: dict[str, str] | None = None) -> Path | None:
    """The notebook this kernel runs, as the server told it (``JPY_SESSION_NAME``)."""
    env = os.environ if environ is None else environ
    name = env.get("JPY_SESSION_NAME", "")
    if not name.endswith(".ipynb"):
        return None
    path = Path(name)
    return path if path.is_file() else None


def start(shell: Any) -> Recorder:
    """Record from now on (idempotent): wrap the session's ``send``, note each request."""
    global _active
    if _active is not None:
        return _active
    recorder = Recorder()
    kernel = shell.kernel
    session = kernel.session
    original = session.send

    def send(*args: Any, **kwargs: Any) -> Any:
        msg = original(*args, **kwargs)
        if isinstance(msg, dict):
            recorder.sent(msg)
        return msg

    def pre_run_cell(info: Any) -> None:
        parent = kernel.get_parent() if hasattr(kernel, "get_parent") else kernel._parent_header
        header = (parent or {}).get("header", {})
        cell_id = (parent or {}).get("metadata", {}).get("cellId") or getattr(info, "cell_id", None)
        recorder.begin(header.get("msg_id", ""), str(info.raw_cell), cell_id)

    session.send = send
    shell.events.register("pre_run_cell", pre_run_cell)
    # The cell that started the recorder is already running: note it too.
    parent = kernel.get_parent() if hasattr(kernel, "get_parent") else {}
    if parent:
        code = str((parent.get("content") or {}).get("code", ""))
        # ipykernel's own counter is the number the front end shows for this cell.
        recorder._counts[parent["header"]["msg_id"]] = getattr(kernel, "execution_count", None)
        recorder.begin(
            parent["header"]["msg_id"], code, (parent.get("metadata") or {}).get("cellId")
        )
    _active = recorder
    return recorder
