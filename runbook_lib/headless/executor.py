"""The executor seam of a headless run: what runs the notebook's cells.

``Executor`` is the port: ``execute`` runs a notebook with parameters and writes the executed
(or partial) notebook, ``interrupt`` stops the running cell with a ``KeyboardInterrupt``,
``stop`` ends whatever it started. In production it is papermill with a kernel
(``adapters.papermill_executor.PapermillExecutor``: it starts processes, so it is an adapter);
``InProcessExecutor`` runs the code cells in this interpreter, for tests where the kernel
process is not the point (the steps, the ending, the evidence are).
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import sys
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from runbook_lib.core.execution import Execution
from runbook_lib.headless.signals import Aborted

__all__ = ["Execution", "Executor", "InProcessExecutor"]


class Executor(Protocol):
    def execute(self, job: Execution) -> str:
        """Run ``job``: "" when every cell ran, else which cell failed and with what."""
        ...

    def interrupt(self) -> None:
        """Interrupt the running cell (a ``KeyboardInterrupt`` there)."""
        ...

    def stop(self) -> None:
        """End whatever the executor started. Never raises."""
        ...


class _Tee(io.StringIO):
    """Keeps a cell's output for the notebook and, when streaming, shows it as it comes."""

    def __init__(self, echo: TextIO | None) -> None:
        super().__init__()
        self.echo = echo

    def write(self, text: str) -> int:
        if self.echo is not None:
            self.echo.write(text)
        return super().write(text)


def _without_magics(source: str) -> str:
    # Line magics (``%matplotlib inline``) set up a kernel's display; there is none here.
    return "\n".join("" if line.lstrip().startswith("%") else line for line in source.split("\n"))


def _parameters_source(parameters: Mapping[str, Any]) -> str:
    lines = ["# Parameters"] + [f"{name} = {value!r}" for name, value in parameters.items()]
    return "\n".join(lines) + "\n"


class InProcessExecutor:
    """Runs a notebook's code cells in this interpreter, one namespace, like a kernel would.

    The parameters are injected as a cell after the ``parameters``-tagged one (as papermill
    does); each cell's stdout/stderr and its last expression's ``repr`` become its outputs; the
    first cell that raises gets an ``error`` output and ends the run. The working directory is
    the notebook's folder while it runs.
    """

    def __init__(self) -> None:
        self._in_cell = False

    @contextlib.contextmanager
    def _cell(self) -> Iterator[None]:
        self._in_cell = True
        try:
            yield
        finally:
            self._in_cell = False

    def _run(self, source: str, namespace: dict[str, Any], name: str) -> Any:
        tree = ast.parse(_without_magics(source), filename=name)
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        with self._cell():
            exec(compile(tree, name, "exec"), namespace)
            if last is None:
                return None
            return eval(compile(ast.Expression(last.value), name, "eval"), namespace)

    def execute(self, job: Execution) -> str:
        notebook, output, parameters = job.notebook, job.output, job.parameters
        import nbformat

        nb = nbformat.read(notebook, as_version=4)  # type: ignore[no-untyped-call]
        cells = list(nb.cells)
        for index, cell in enumerate(cells):
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                injected = nbformat.v4.new_code_cell(_parameters_source(parameters))  # type: ignore[no-untyped-call]
                injected.metadata["tags"] = ["injected-parameters"]
                cells.insert(index + 1, injected)
                break
        nb.cells = cells
        namespace: dict[str, Any] = {"__name__": "__main__"}
        failure = ""
        here = Path.cwd()
        count = 0
        os.chdir(notebook.parent)
        try:
            for cell in (c for c in cells if c.cell_type == "code"):
                count += 1
                cell.execution_count = count
                cell.outputs = []
                out = _Tee(sys.stdout if job.stream else None)
                try:
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                        value = self._run(cell.source, namespace, f"<cell {count}>")
                except Aborted:
                    raise
                except BaseException as err:
                    cell.outputs.append(
                        nbformat.v4.new_output(  # type: ignore[no-untyped-call]
                            "error",
                            ename=type(err).__name__,
                            evalue=str(err),
                            traceback=traceback.format_exception(err),
                        )
                    )
                    failure = f"step failed in cell {count}: {type(err).__name__}: {err}"
                    break
                finally:
                    if out.getvalue():
                        cell.outputs.insert(
                            0,
                            nbformat.v4.new_output(  # type: ignore[no-untyped-call]
                                "stream", name="stdout", text=out.getvalue()
                            ),
                        )
                if value is not None:
                    cell.outputs.append(
                        nbformat.v4.new_output(  # type: ignore[no-untyped-call]
                            "execute_result",
                            data={"text/plain": repr(value)},
                            execution_count=count,
                        )
                    )
        finally:
            os.chdir(here)
            nbformat.write(nb, str(output))  # type: ignore[no-untyped-call]
        return failure

    def interrupt(self) -> None:
        """A ``KeyboardInterrupt`` in the running cell (called from a signal handler in the
        main thread, where the cells run); between cells, nothing."""
        if self._in_cell:
            raise KeyboardInterrupt

    def stop(self) -> None:
        """Nothing was started."""
