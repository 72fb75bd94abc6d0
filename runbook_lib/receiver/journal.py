"""The receiver's journal: one JSON line per decision, durable when it must be.

``append`` writes a line and hands it to the operating system (a crash of the receiver keeps
it; a power loss may not); ``sync(seq)`` makes every line up to ``seq`` durable with one
``fsync``, shared by every caller waiting at that moment (group commit), so a burst of posts
costs a few ``fsync`` calls, not one each. The receiver answers 200 to Alertmanager only
after ``sync``, and starts a run only after its ``run_started`` line is durable.

A write or ``fsync`` that fails marks the journal ``broken`` and every later write raises the
same error: a journal with a hole in it must not go on (a line cut short would swallow the
next one). ``compact`` swaps the file for a compacted one atomically (temporary file, ``fsync``,
rename, ``fsync`` of the folder): after a crash there is the old file or the new, never half.
Lines are ASCII (non-ASCII escaped), so no label text can make a line unwritable.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["Entry", "Journal"]

Entry = dict[str, Any]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _line(entry: Entry) -> str:
    return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":")) + "\n"


class Journal:
    """Append-only JSON lines at ``path`` (created with its folder, owner-only)."""

    def __init__(self, path: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()  # order of lines, the file object
        self._sync_lock = threading.Lock()  # one fsync at a time; the others wait for it
        self._written = 0
        self._synced = 0
        self.bytes_written = 0  # since the last compaction (or the start)
        self.broken: OSError | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._file: TextIO | None = None

    def _open(self) -> TextIO:
        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._file = os.fdopen(fd, "a", encoding="ascii")
        return self._file

    def entries(self) -> list[Entry]:
        """Every readable line; a line cut short by a crash (or not JSON) is skipped."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("event"), str):
                found.append(entry)
        return found

    def append(self, event: str, **fields: Any) -> int:
        """Write one line (``event``, ``at`` and ``fields``); returns its sequence number for
        ``sync``. Raises ``OSError`` when it cannot be written (then the journal is broken)."""
        line = _line({"event": event, "at": self._clock().isoformat(), **fields})
        with self._lock:
            if self.broken is not None:
                raise self.broken
            try:
                handle = self._open()
                handle.write(line)
                handle.flush()
            except OSError as err:
                self.broken = err
                raise
            self._written += 1
            self.bytes_written += len(line)
            return self._written

    def sync(self, seq: int) -> None:
        """Durable through line ``seq``. Raises ``OSError`` (then the journal is broken)."""
        with self._sync_lock:
            if self._synced >= seq:
                return  # an fsync by another caller covered it
            with self._lock:
                if self.broken is not None:
                    raise self.broken
                target, handle = self._written, self._open()
            try:
                os.fsync(handle.fileno())
            except OSError as err:
                with self._lock:
                    self.broken = err
                raise
            self._synced = target

    def write(self, event: str, *, durable: bool = False, **fields: Any) -> None:
        """``append``, then ``sync`` when ``durable``."""
        seq = self.append(event, **fields)
        if durable:
            self.sync(seq)

    def compact(self, select: Callable[[list[Entry]], Iterable[Entry]]) -> None:
        """Swap the file for ``select(entries)``, atomically and durably; writers wait.

        Raises ``OSError`` when the new file cannot be written (the old one stays, intact).
        """
        with self._sync_lock, self._lock:
            if self.broken is not None:
                raise self.broken
            if self._file is not None:
                self._file.flush()
            self._swap(list(select(self.entries())))

    def _swap(self, entries: list[Entry]) -> None:
        temporary = self.path.with_name(f".{self.path.name}.compacting")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.writelines(_line(entry) for entry in entries)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        if self._file is not None:
            self._file.close()
            self._file = None
        self._synced = self._written
        self.bytes_written = 0

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._file is not None:
                try:
                    self._file.flush()
                    os.fsync(self._file.fileno())
                except OSError as err:
                    self.broken = err
                finally:
                    self._file.close()
                    self._file = None
