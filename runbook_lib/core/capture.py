"""Bounds on the pod logs captured as evidence (pure).

A busy release's logs can run to gigabytes; the bundle must stay small enough to attach to a
post-mortem. Each pod's log is cut at ``per_pod_bytes`` and all of them together at
``total_bytes``; a log that was cut ends with a marker line saying so, and pods that got no
budget at all are named in the capture's record. Cuts fall on a line boundary (never inside a
line, so never inside a UTF-8 character), keeping the beginning: the lines nearest the deploy,
where a bad release's trouble starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from runbook_lib.errors import ParameterError

__all__ = ["MIB", "CaptureBounds", "Cut", "cut_log", "truncation_marker"]

MIB = 1024 * 1024


@dataclass(frozen=True)
class CaptureBounds:
    """Per-pod and total byte bounds (defaults: 1 MiB per pod, 20 MiB in all)."""

    per_pod_bytes: int = MIB
    total_bytes: int = 20 * MIB

    def __post_init__(self) -> None:
        problems = []
        if self.per_pod_bytes < 1024:
            problems.append(f"per_pod_bytes: at least 1024, got {self.per_pod_bytes}")
        if self.total_bytes < self.per_pod_bytes:
            problems.append(
                f"total_bytes: at least per_pod_bytes ({self.per_pod_bytes}),"
                f" got {self.total_bytes}"
            )
        if problems:
            raise ParameterError(problems)

    def budget(self, used: int) -> int:
        """Bytes the next log may take after ``used`` bytes were captured (0: none left)."""
        return max(0, min(self.per_pod_bytes, self.total_bytes - used))


@dataclass(frozen=True)
class Cut:
    """A log after its bound: the kept bytes, and whether (and at what bound) it was cut."""

    data: bytes
    truncated: bool
    limit: int

    def text(self, *, what: str) -> str:
        """The kept text, with the marker line when something was cut."""
        body = self.data.decode("utf-8", errors="replace")
        if not self.truncated:
            return body
        if body and not body.endswith("\n"):
            body += "\n"
        return body + truncation_marker(what, self.limit) + "\n"


def truncation_marker(what: str, limit: int) -> str:
    """The line that ends a cut log: what was cut and at which bound."""
    return (
        f"[runbook: TRUNCATED {what} at {limit} bytes (evidence bound); the lines after this"
        " point were not captured]"
    )


def cut_log(data: bytes, limit: int) -> Cut:
    """Keep at most ``limit`` bytes of ``data``, ending at a line boundary.

    ``data`` may hold one byte more than ``limit`` (a read asked for ``limit + 1`` to learn
    whether more followed). With no newline inside the bound, the bound itself is the cut.
    """
    if limit < 0:
        raise ParameterError([f"limit: must be >= 0, got {limit}"])
    if len(data) <= limit:
        return Cut(data, False, limit)
    head = data[:limit]
    newline = head.rfind(b"\n")
    if newline >= 0:
        head = head[: newline + 1]
    else:
        # One line longer than the bound: keep whole UTF-8 characters only.
        head = head.decode("utf-8", errors="ignore").encode("utf-8")
    return Cut(head, True, limit)
