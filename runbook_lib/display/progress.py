"""Progress of a wait (rollout, recovery): what we wait for, elapsed and remaining time.

A stalled rollout must not look like a hung notebook. ``tqdm.auto`` draws a widget
when a person runs the notebook in Jupyter; a headless run (``runbook run`` sets
``RUNBOOK_PROGRESS=text`` for its kernel) gets plain lines instead, one every
``TEXT_INTERVAL_S``, because a widget means nothing in papermill's log or the saved HTML.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from runbook_lib.core import readable

__all__ = ["PROGRESS_ENV", "TEXT_INTERVAL_S", "Wait"]

PROGRESS_ENV = "RUNBOOK_PROGRESS"  # "text": lines (headless); anything else: tqdm.auto
TEXT_INTERVAL_S = 10.0  # at most one text line this often (a 5-minute wait: ~30 lines)


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into separate lines."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        text = text.replace("\r", "\n").strip("\n")
        if text.strip():
            self.out.write(text + "\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


class Wait:
    """A progress bar over a time budget: ``tick(status)`` while waiting, then ``done``.

    The bar counts seconds: elapsed out of ``budget_s``; the text says what is awaited, the
    seconds left, and the latest status (replica counts, the last 5xx ratio).
    """

    def __init__(
        self,
        what: str,
        budget_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
        text: bool | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.what, self.budget_s, self.clock = what, max(budget_s, 1e-9), clock
        self.started = clock() if started is None else started  # where elapsed counts from
        if text is None:
            text = os.environ.get(PROGRESS_ENV) == "text"
        fmt = "{desc} |{bar}| {n:.0f} of {total:.0f} s{postfix}"
        options: dict[str, Any] = {
            "total": round(self.budget_s, 1),
            "desc": what,
            "bar_format": fmt,
            "leave": True,
        }
        if text:
            from tqdm import tqdm  # type: ignore[import-untyped]

            self.bar: Any = tqdm(
                file=_Lines(out or sys.stdout),
                ascii=True,
                mininterval=TEXT_INTERVAL_S,
                dynamic_ncols=False,
                ncols=100,
                **options,
            )
        else:
            from tqdm.auto import tqdm as auto  # type: ignore[import-untyped]

            self.bar = auto(**options)

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def tick(self, status: str) -> None:
        elapsed = min(self.elapsed_s, self.budget_s)
        left = max(self.budget_s - elapsed, 0.0)
        self.bar.set_postfix_str(f"{readable.duration(left)} left: {status}", refresh=False)
        self.bar.update(round(elapsed - self.bar.n, 1))

    def done(self, status: str, *, ok: bool = True) -> None:
        """The wait is over: draw the last state and close the bar.

        ``ok``: what was awaited happened; the bar is drawn full (a widget turns green, not
        the red of a bar closed short), else it stays where the time ran out.
        """
        self.bar.set_postfix_str(
            f"{status} after {readable.duration(self.elapsed_s)}", refresh=False
        )
        self.bar.update(round(min(self.elapsed_s, self.budget_s) - self.bar.n, 1))
        if ok:
            self.bar.total = self.bar.n = max(self.bar.n, 0.1)
            self.bar.bar_format = "{desc} |{bar}|{postfix}"
        self.bar.refresh()
        self.bar.close()

    def __enter__(self) -> Wait:
        return self

    def __exit__(
        self,
        etype: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.bar.disable and etype is not None:
            self.done(f"stopped: {etype.__name__}", ok=False)
        self.bar.close()
