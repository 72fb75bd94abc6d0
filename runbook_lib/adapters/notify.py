"""Notifications ("Rollback Steps", step 1): Slack incoming webhook, console, file.

A webhook URL is a credential (anyone holding it can post to the channel), so it never appears
in an error, a log or the timeline: errors name only the scheme and host. Failures say whether
retrying may help; the notify step retries once and never lets a failed notification block
the rollback. Each channel escapes the text for its medium (``core.escape``): Slack gets
entities, so text from an alert label can neither mention a channel nor disguise a link; the
console shows control characters as escapes, so it cannot forge a line or a colour.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

from runbook_lib.adapters.http import HttpClient, HttpError
from runbook_lib.core.escape import console_text, slack_text
from runbook_lib.errors import AdapterError, ParameterError

__all__ = ["ConsoleNotifier", "FileNotifier", "Notifier", "SlackWebhook", "redact_url"]


class Notifier(Protocol):
    """Where a notification goes. ``post`` raises ``AdapterError`` on failure."""

    def post(self, text: str) -> None: ...


def redact_url(url: str) -> str:
    """``https://hooks.example/<redacted>``: enough to tell which service, not the secret path."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme or '?'}://{host}/<redacted>"


class SlackWebhook:
    """Post ``{"text": ...}`` to a Slack incoming webhook (any HTTP(S) endpoint that takes it).

    ``timeout_s`` bounds connecting and each read. Raises ``ParameterError`` for a URL that is
    not http(s).
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The message must not echo the URL: it may be a real secret with a typo.
            raise ParameterError(["webhook_url: must be an http(s) URL with a host"])
        if timeout_s <= 0:
            raise ParameterError([f"timeout_s: must be positive, got {timeout_s}"])
        self._url = url
        self.timeout_s = timeout_s
        self.target = redact_url(url)
        # Servers echo the request path in error pages; the path is the secret part.
        self._http = HttpClient(timeout_s=timeout_s, secrets=(url, parts.path, parts.query))

    def __repr__(self) -> str:
        return f"SlackWebhook({self.target!r}, timeout_s={self.timeout_s:g})"

    def post(self, text: str) -> None:
        """Send one message. Raises ``AdapterError``, retryable as ``adapters.http`` rules:
        timeouts, refused or dropped connections, 429 and 5xx; not other 4xx (a bad or revoked
        webhook) nor an answer that is not HTTP."""
        command = f"POST {self.target}"
        try:
            # Tried once: a second POST could post the message twice (the notify step decides).
            self._http.post(self._url, json={"text": slack_text(text)}, command=command)
        except HttpError as err:
            message = err.in_words(
                "webhook answered HTTP {status}",
                "webhook unreachable: {reason}",
                timeout=f"webhook did not answer within {self.timeout_s:g} s",
                dropped="webhook connection failed: {reason}",
            )
            raise AdapterError(
                message, command=command, stderr=err.text[:500], retryable=err.retryable
            ) from err


class ConsoleNotifier:
    """Print the message (in a notebook: the step's output cell)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def post(self, text: str) -> None:
        """Write one line. Never fails in practice; raises ``AdapterError`` if the stream does."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            print(f"[notify] {console_text(text)}", file=stream, flush=True)
        except (OSError, ValueError) as err:
            raise AdapterError("console notification failed", command="stdout") from err


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FileNotifier:
    """Append ``{"at": ..., "text": ...}`` JSON lines to ``path`` (a channel log for tests,
    air-gapped sites, or a log shipper)."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.path = Path(path)
        self._clock = clock

    def post(self, text: str) -> None:
        """Append one line, flushed. Raises ``AdapterError`` (not retryable) on I/O errors."""
        line = json.dumps({"at": self._clock().isoformat(), "text": text}) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as err:
            raise AdapterError(
                f"cannot append to notification file: {err.strerror}", command=str(self.path)
            ) from err
