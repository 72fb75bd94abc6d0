"""Runbook "Rollback Steps, step 4 (Check error rate)": did the service recover after rollback?

DESIGN.md "Recovery": after the rollout completes, the 5xx ratio must fall below
``recovery_error_ratio`` (0.001) within ``recovery_within`` (120 s) and stay below for at least
``recovery_consecutive`` (2) consecutive samples. Consecutive means the same as for the decision
runs: a missing value or a gap longer than 1.5 steps breaks the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from runbook_lib.core import readable
from runbook_lib.core.series import NS_PER_S, find_runs, gaps_before, median_step_ns, times_ns
from runbook_lib.core.settings import RecoveryCheck
from runbook_lib.errors import ParameterError

__all__ = ["Recovery", "check_recovery"]

_CHECK = RecoveryCheck()


@dataclass(frozen=True)
class Recovery:
    """Verdict of the recovery check.

    ``recovered_at`` is the sample that completed the required consecutive run (the moment
    recovery was verified). ``conclusive`` is False while more samples could still change a
    "not recovered" verdict (the deadline has not passed, or a run below the threshold that
    started in time is still too short); a caller polling Prometheus waits while it is False.
    """

    recovered: bool
    recovered_at: datetime | None
    last_value: float | None
    reason: str
    conclusive: bool = True


def check_recovery(
    samples: pd.DataFrame,
    *,
    rollout_done_at: datetime,
    check: RecoveryCheck = _CHECK,
    step: float | None = None,
) -> Recovery:
    """Runbook "Rollback Steps, step 4": check the error ratio after the rollout completed.

    ``check`` holds the threshold, the time allowed and the samples needed; ``step`` the
    spacing of the samples in seconds (None: their median spacing).

    ``samples`` is a metric frame with an ``error_ratio`` column. Raises ``ParameterError`` for
    a naive ``rollout_done_at`` or a frame without a tz-aware sorted index or that column.
    """
    _check_inputs(samples, rollout_done_at)
    limit = check.recovery_error_ratio
    needed = check.recovery_consecutive
    done_ns = int(pd.Timestamp(rollout_done_at).as_unit("ns").value)
    deadline_ns = done_ns + round(check.recovery_within * NS_PER_S)
    all_times = times_ns(pd.DatetimeIndex(samples.index))
    step_ns = step * NS_PER_S if step is not None else median_step_ns(all_times)
    first = int(np.searchsorted(all_times, done_ns, side="left"))
    times = all_times[first:]
    values = samples["error_ratio"].to_numpy(dtype=np.float64, na_value=np.nan)[first:]
    present = ~np.isnan(values)
    last_value = float(values[present][-1]) if present.any() else None
    if times.size == 0:
        return Recovery(False, None, None, "no samples since the rollout completed yet", False)

    runs = find_runs(values < limit, gaps_before(times, step_ns))
    in_time = times[runs.starts] <= deadline_ns
    verified = np.flatnonzero(in_time & (runs.ends - runs.starts + 1 >= needed))
    if verified.size:
        start = int(runs.starts[verified[0]])
        at = start + needed - 1
        return Recovery(
            True,
            _datetime(times[at]),
            last_value,
            f"5xx ratio below {readable.percent(limit)} from {_iso(times[start])} "
            f"({readable.duration((times[start] - done_ns) / NS_PER_S)} after the rollout) "
            f"for {needed} consecutive samples",
        )
    # A run below the limit that started in time and reaches the last sample may still grow.
    still_open = bool(runs.ends.size and runs.ends[-1] == times.size - 1 and in_time[-1])
    pending = times[-1] <= deadline_ns or still_open
    seen = f"last value {readable.percent(last_value)}" if last_value is not None else "no values"
    if pending:
        reason = (
            f"not yet below {readable.percent(limit)} for {needed} consecutive samples ({seen}); "
            f"deadline {_iso(deadline_ns)}"
        )
    else:
        reason = (
            f"5xx ratio did not fall below {readable.percent(limit)} for {needed} consecutive "
            f"samples within {readable.duration(check.recovery_within)} of the rollout ({seen}): "
            "escalate"
        )
    return Recovery(False, None, last_value, reason, not pending)


def _check_inputs(samples: pd.DataFrame, rollout_done_at: datetime) -> None:
    problems: list[str] = []
    if rollout_done_at.tzinfo is None or rollout_done_at.utcoffset() is None:
        problems.append(f"rollout_done_at: {rollout_done_at.isoformat()} has no UTC offset")
    index = samples.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        problems.append("samples: the index must be a tz-aware DatetimeIndex")
    elif not (index.is_monotonic_increasing and index.is_unique):
        problems.append("samples: timestamps must be sorted and unique")
    if "error_ratio" not in samples.columns:
        problems.append("samples: missing column 'error_ratio'")
    if problems:
        raise ParameterError(problems)


def _datetime(ns: int | np.int64) -> datetime:
    moment: datetime = pd.Timestamp(int(ns), unit="ns", tz=UTC).to_pydatetime()
    return moment


def _iso(ns: int | np.int64) -> str:
    return _datetime(ns).isoformat()
