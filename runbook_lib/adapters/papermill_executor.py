"""The production executor of a headless run: papermill, with the kernel it starts.

papermill (through nbclient and jupyter_client) starts the notebook's kernel as a child
process, runs the cells and writes the executed notebook, the failing cell marked. The kernel
runs over Unix sockets (IPC), not loopback TCP: ipykernel would otherwise warn on every run that
code and outputs travel unencrypted, and the socket files (with the connection file and its
key) stay in the run's private scratch folder. ``interrupt`` and ``stop`` reach the kernels
through ``adapters.processes``.
"""

from __future__ import annotations

import sys
from typing import Any

from runbook_lib.adapters import processes
from runbook_lib.core.execution import Execution

__all__ = ["PapermillExecutor", "papermill_kernel_options"]


def papermill_kernel_options() -> dict[str, Any]:
    """Extra ``papermill.execute_notebook`` arguments: the kernel manager's configuration.

    papermill hands unknown arguments to nbclient's ``NotebookClient``, which gives its
    ``config`` to the kernel manager it creates; ``transport`` is that manager's setting.
    """
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": "ipc"}})}


class PapermillExecutor:
    """``headless.Executor`` through papermill; ``kernel``: a Jupyter kernel name (None: the
    notebook's own)."""

    def __init__(self, *, kernel: str | None = None) -> None:
        self.kernel = kernel

    def execute(self, job: Execution) -> str:
        """Run ``job.notebook`` in a kernel, writing the executed notebook to ``output`` as it
        goes; "" when every cell ran, else which cell failed and with what.

        A ``KeyboardInterrupt`` or an exception raised by a signal handler in this process
        passes through (the caller decides what it means).
        """
        import papermill
        from papermill.exceptions import PapermillExecutionError

        options = papermill_kernel_options()
        options["config"].KernelManager.connection_file = str(job.scratch / "kernel.json")
        try:
            papermill.execute_notebook(
                str(job.notebook),
                str(job.output),
                parameters=dict(job.parameters),
                kernel_name=self.kernel,
                progress_bar=False,
                log_output=False,
                stdout_file=sys.stdout if job.stream else None,
                stderr_file=sys.stderr if job.stream else None,
                cwd=str(job.notebook.parent),
                **options,
            )
        except PapermillExecutionError as err:
            return f"step failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        except RuntimeError as err:  # the kernel died or could not start (nbclient)
            return f"notebook run aborted: {type(err).__name__}: {err}"
        return ""

    def interrupt(self) -> None:
        """SIGINT to the kernels: a ``KeyboardInterrupt`` in the running cell."""
        processes.interrupt(processes.children())

    def stop(self) -> None:
        """End the kernels and what they started (helm, kubectl)."""
        processes.end(processes.children())
