"""What one headless notebook run is given (pure data): the executors' common argument.

``headless.executor.Executor`` is the port and ``adapters.papermill_executor`` its production
side; both take an ``Execution``, which lives here, below both layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Execution"]


@dataclass(frozen=True)
class Execution:
    """One notebook run: ``notebook`` with ``parameters`` (after its ``parameters`` cell), the
    executed notebook written to ``output``; ``scratch`` is a private folder for what must not
    reach the evidence; ``stream`` shows the cells' output as it comes."""

    notebook: Path
    output: Path
    parameters: Mapping[str, Any]
    scratch: Path
    stream: bool = False
