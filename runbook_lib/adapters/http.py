"""The adapters' one HTTP client (Prometheus, Jaeger, the Slack webhook), with one retry rule.

Every failed request becomes ``HttpError`` (an ``AdapterError``) whose ``kind`` says what went
wrong; the kind alone decides ``retryable``, and the same rule drives the automatic retries:

    kind            what happened                                     retryable
    UNREACHABLE     connection refused, no route to the host          yes
    DROPPED         connection reset or closed before a full answer   yes
    TIMEOUT         no connection or no answer within ``timeout_s``   yes
    UNAVAILABLE     HTTP 429 or 5xx                                   yes
    REJECTED        any other status that is not 2xx (400, 404, ...)  no
    MALFORMED       not an HTTP answer, or a body that cannot be read no
    BAD_ADDRESS     unknown host name, TLS failure, invalid URL       no

Adapters catch ``HttpError`` and raise their own error (``MetricsError``, ``TracesError``, ...)
in their own words, passing ``retryable`` on unchanged. A 2xx answer that is not what the
adapter expected (not JSON, wrong shape) is the adapter's to judge, and is never retryable.

Built on requests and urllib3's ``Retry``. Secrets (a webhook URL is one) given to the client
never appear in its errors, nor in urllib3's log records while the client exists.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from runbook_lib.errors import AdapterError, ParameterError

__all__ = ["RETRIES", "ErrorKind", "HttpClient", "HttpError", "Response", "classify_status"]

# Automatic retries of an idempotent request: enough to ride out a server restarting or a
# connection dropped by a proxy, few enough that a real outage surfaces within seconds; the
# callers own longer waits (check_recovery polls, notify retries once). Only idempotent
# requests are retried: a second POST to a webhook could post the message twice.
RETRIES = 2
# urllib3 sleeps 0 s before the first retry and BACKOFF_S * 2 before the second.
BACKOFF_S = 0.25
_ERROR_TEXT_CHARS = 2000
_REDACTED = "/<redacted>"


class ErrorKind(StrEnum):
    """What went wrong with a request; ``retryable`` is the project's one retry rule."""

    UNREACHABLE = "unreachable"
    DROPPED = "dropped"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"
    MALFORMED = "malformed"
    BAD_ADDRESS = "bad address"

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (nothing about the request is wrong)."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {ErrorKind.UNREACHABLE, ErrorKind.DROPPED, ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE}
)


def classify_status(status: int) -> ErrorKind | None:
    """``None`` for a 2xx answer, else the kind of failure the status means."""
    if 200 <= status < 300:
        return None
    if status == 429 or 500 <= status < 600:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.REJECTED


class HttpError(AdapterError):
    """A request failed. ``kind`` decides ``retryable``; ``status`` is the HTTP status when the
    server answered; ``reason`` a short text for messages ("connection refused", "HTTP 503");
    ``text`` the start of an error answer's body (redacted), also given as ``stderr``."""

    def __init__(
        self,
        kind: ErrorKind,
        reason: str,
        *,
        command: str,
        status: int | None = None,
        text: str = "",
    ) -> None:
        self.kind = kind
        self.reason = reason
        self.status = status
        self.text = text
        super().__init__(
            f"HTTP request failed ({kind}): {reason}",
            command=command,
            stderr=text,
            retryable=kind.retryable,
        )

    def in_words(self, answered: str, unreachable: str, **by_kind: str) -> str:
        """The failure as an adapter says it: ``answered`` when the server answered with an
        error status, else the text for its kind (``by_kind``, keyed by the kind's name in
        lower case) or ``unreachable``. ``{status}`` and ``{reason}`` are filled in."""
        if self.status is not None:
            template = answered
        else:
            template = by_kind.get(self.kind.name.lower(), unreachable)
        # Not str.format: a template may hold a URL, whose braces are not fields.
        return template.replace("{status}", str(self.status)).replace("{reason}", self.reason)


@dataclass(frozen=True)
class Response:
    """A 2xx answer: its status and its whole body."""

    status: int
    body: bytes


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first (requests and urllib3 wrap the OS error)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        inner = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        current = (
            current.__cause__
            or (reason if isinstance(reason, BaseException) else None)
            or (inner[0] if inner else None)
            or current.__context__
        )


def _kind_of(exc: BaseException) -> tuple[ErrorKind, str, BaseException]:
    """The kind of a failed exchange, a reason without any URL in it, and the innermost error
    (the one to chain: requests' and urllib3's own texts name the URL, path included)."""
    chain = list(_chain(exc))
    root = chain[-1]
    if isinstance(root, socket.gaierror):
        return ErrorKind.BAD_ADDRESS, "host name does not resolve", root
    if isinstance(root, ssl.SSLError):
        detail = getattr(root, "verify_message", None) or getattr(root, "reason", None)
        return ErrorKind.BAD_ADDRESS, f"TLS failed: {detail or type(root).__name__}", root
    if isinstance(root, ConnectionRefusedError):
        return ErrorKind.UNREACHABLE, "connection refused", root
    if isinstance(root, TimeoutError) or any(
        isinstance(e, requests.Timeout | urllib3.exceptions.ReadTimeoutError) for e in chain
    ):
        return ErrorKind.TIMEOUT, "timed out", root
    if isinstance(root, http.client.RemoteDisconnected):
        return ErrorKind.DROPPED, "connection closed before an answer", root
    if isinstance(root, ConnectionError):
        return ErrorKind.DROPPED, "connection reset", root
    if isinstance(root, http.client.IncompleteRead):
        return ErrorKind.DROPPED, "answer cut short", root
    if any(isinstance(e, urllib3.exceptions.DecodeError) for e in chain):
        return ErrorKind.MALFORMED, "the body cannot be decoded", root
    if isinstance(root, http.client.HTTPException):
        return ErrorKind.MALFORMED, f"not an HTTP answer ({type(root).__name__})", root
    if isinstance(root, OSError) and root.errno is not None:
        return ErrorKind.UNREACHABLE, os.strerror(root.errno).lower(), root
    return ErrorKind.BAD_ADDRESS, type(root).__name__, root


class _Retry(Retry):
    """urllib3's ``Retry`` that gives up at once on an error the rule says will not pass (a
    host name that does not resolve, an answer that is not HTTP): retrying gets the same."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if error is not None and not _kind_of(error)[0].retryable:
            # What urllib3 raises when retries run out, so requests maps it as usual.
            raise urllib3.exceptions.MaxRetryError(_pool, url or "", error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _policy(retries: int, method: str) -> _Retry:
    return _Retry(
        total=retries,
        allowed_methods=frozenset({method}),
        status_forcelist=frozenset(
            s for s in range(400, 600) if classify_status(s) is ErrorKind.UNAVAILABLE
        ),
        backoff_factor=BACKOFF_S,
        # The last answer is wanted (its body says why), not urllib3's MaxRetryError.
        raise_on_status=False,
        # A server's Retry-After may ask for minutes; the runbook's budget is its own.
        respect_retry_after_header=False,
    )


class _HideSecrets(logging.Filter):
    """Redacts live clients' secrets from urllib3's records (at DEBUG it logs request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for client in list(_CLIENTS) for s in client.secrets]
        if secrets:
            text = record.getMessage()
            clean = _redact(text, secrets)
            if clean != text:
                record.msg, record.args = clean, None
        return True


_CLIENTS: weakref.WeakSet[HttpClient] = weakref.WeakSet()
for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_HideSecrets())


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if len(secret) > 1:
            text = text.replace(secret, _REDACTED)
    return text


class HttpClient:
    """Requests with an explicit timeout and the one retry rule; raises ``HttpError``.

    ``timeout_s`` bounds connecting and each read of the answer (a request that is retried
    can take ``(RETRIES + 1) * timeout_s`` plus the backoff). ``secrets``: strings (a webhook
    URL, its path) replaced by ``/<redacted>`` in everything the client reports or logs.
    Each request opens its own connection: a kept-alive one that the server has closed in the
    meantime would fail a request that is not retried (the adapters make few requests).
    """

    def __init__(self, *, timeout_s: float, secrets: Sequence[str] = ()) -> None:
        if not timeout_s > 0:
            raise ParameterError([f"timeout_s: must be > 0, got {timeout_s}"])
        self.timeout_s = timeout_s
        # Longest first, so a URL is redacted whole before its path is.
        self.secrets = tuple(sorted((s for s in secrets if len(s) > 1), key=len, reverse=True))
        _CLIENTS.add(self)

    def __repr__(self) -> str:
        return f"HttpClient(timeout_s={self.timeout_s:g})"

    def get(self, url: str, *, command: str) -> Response:
        """GET ``url``, retried by the rule. ``command`` names the request in errors."""
        return self._send("GET", url, command=command, idempotent=True)

    def post(
        self,
        url: str,
        *,
        command: str,
        json: object = None,
        form: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> Response:
        """POST ``json`` or ``form`` to ``url``; tried once unless ``idempotent`` (a query sent
        as a form, e.g. Prometheus' range query, which is a read that is too long for a URL)."""
        return self._send("POST", url, command=command, json=json, data=form, idempotent=idempotent)

    def _send(
        self, method: str, url: str, *, command: str, idempotent: bool, **body: Any
    ) -> Response:
        try:
            answer = self._exchange(method, url, idempotent=idempotent, **body)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as err:
            kind, reason, root = _kind_of(err)
        else:
            status_kind = classify_status(answer.status_code)
            if status_kind is None:
                return Response(answer.status_code, answer.content)
            # Redacted before it is cut, so no secret is left half-cut at the end.
            text = answer.content[: 2 * _ERROR_TEXT_CHARS].decode(errors="replace")
            raise HttpError(
                status_kind,
                f"HTTP {answer.status_code}",
                command=command,
                status=answer.status_code,
                text=_redact(text, self.secrets)[:_ERROR_TEXT_CHARS],
            )
        if kind is ErrorKind.TIMEOUT:
            reason = f"timed out after {self.timeout_s:g} s"
        # Raised outside the except block and chained to the low-level error only: the
        # exceptions of requests and urllib3 (and an invalid URL's) carry the whole URL.
        low_level = isinstance(root, OSError | http.client.HTTPException)
        raise HttpError(kind, reason, command=command) from (root if low_level else None)

    def _exchange(
        self, method: str, url: str, *, idempotent: bool, **body: Any
    ) -> requests.Response:
        adapter = HTTPAdapter(max_retries=_policy(RETRIES if idempotent else 0, method))
        with requests.Session() as session:
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            return session.request(method, url, timeout=self.timeout_s, **body)
