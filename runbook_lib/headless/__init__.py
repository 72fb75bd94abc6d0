"""Running a runbook notebook headless, to its ``Ending`` (``runbook run``, the receiver's runs).

The layer between the command line and the steps: ``run_notebook(parameters, notebook=...,
executor=...)`` checks the parameters, runs the notebook through an ``Executor`` (papermill in
production, ``InProcessExecutor`` where a test wants the cells in this interpreter), handles
SIGINT/SIGTERM, keeps papermill's unredacted copy in a private scratch folder, gathers the
evidence after a failure, seals the bundle and returns a ``HeadlessRun`` whose ``ending`` says
everything a caller prints or decides on.
"""

from runbook_lib.headless.executor import Executor, InProcessExecutor
from runbook_lib.headless.run import HeadlessRun, run_notebook

__all__ = ["Executor", "HeadlessRun", "InProcessExecutor", "run_notebook"]
