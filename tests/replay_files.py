"""Replay CSV files for tests: 15 s samples around a deploy, as ``replay_csv`` reads them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["write_replay"]


def write_replay(
    path: Path,
    deployed: datetime,
    offsets: range,
    errors: Mapping[int, float] | float = 0.002,
    *,
    orders: int | None = None,
) -> Path:
    """A sample every ``offsets`` seconds from ``deployed``: the error ratio ``errors`` (or
    ``errors[offset]``, 0.002 where it has none), p99 latency 0.3 s, and a ``business:orders``
    column of ``orders`` when given. Returns ``path``."""
    header = "timestamp,error_ratio,p99_latency_s" + (",business:orders" if orders else "")
    lines = [header]
    for offset in offsets:
        error = errors if isinstance(errors, float) else errors.get(offset, 0.002)
        row = f"{(deployed + timedelta(seconds=offset)).isoformat()},{error},0.3"
        lines.append(row + (f",{orders}" if orders else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
