"""The alert receiver's HTTP side (aiohttp): Alertmanager's webhook, health, metrics, runs.

Used by ``runbook serve``. Translates HTTP into calls on a ``ReceiverApi`` and back; decides
nothing itself. Routes:

  POST /alerts    Alertmanager webhook (payload version 4). ``Authorization: Bearer <token>``
                  is required (401 otherwise, nothing started). The whole body is read, in
                  as many TCP segments or chunks as it comes (with or without
                  Content-Length); over ``max_body`` bytes it is 413. Malformed JSON or
                  payload is 400 naming the fields; a full queue, a stopping receiver or a
                  journal that cannot be written 503 with ``Retry-After`` (Alertmanager
                  retries only 5xx); else 200 with what became of each alert (and why, for
                  an alert whose labels are not Kubernetes names).
  GET  /healthz   200 "ok" while the receiver takes work; 503 with the reason otherwise.
  GET  /metrics   Prometheus text format (runs by outcome, queue depth, durations).
  GET  /runs      recent runs as a small HTML page (``?format=json`` for JSON).

No request can make a handler answer 500 with a traceback: bad input is a 4xx with a reason,
and anything unforeseen a 500 with one line (the traceback goes to the log, not the client).
``serve`` listens (loopback unless told otherwise; TLS with ``tls_context``) until a signal,
and hands each SIGTERM/SIGINT to the caller, which decides how to stop.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from runbook_lib.core.alerts import Notification, parse_webhook
from runbook_lib.core.escape import html_text
from runbook_lib.errors import ParameterError

__all__ = ["MAX_BODY", "Accepted", "ReceiverApi", "make_app", "serve", "tls_context"]

MAX_BODY = 1024 * 1024  # 1 MiB: Alertmanager's posts are a few KiB, a 200-alert group ~200 KiB
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    """What became of each alert of a post. ``retry_after_s`` set: answer 503 (the queue was
    full, or ``refused`` says why nothing was taken); ``reasons`` explain each disposition."""

    dispositions: tuple[str, ...]
    retry_after_s: float | None = None
    reasons: tuple[str, ...] = ()
    refused: str = ""


class ReceiverApi(Protocol):
    def accept(self, notification: Notification) -> Accepted: ...

    def health(self) -> tuple[bool, str]: ...

    def metrics_text(self) -> str: ...

    def runs(self) -> Sequence[Mapping[str, Any]]: ...


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Header text that is not ASCII arrives with surrogate escapes: compared as bytes, never
    # an encoding error.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    )


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def _no_tracebacks(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # the last net: one line to the client, the traceback to the log
        _log.exception("runbook serve: %s %s failed", request.method, request.path)
        return _error(500, "internal error (see the receiver's log)")


def make_app(api: ReceiverApi, *, token: str, max_body: int = MAX_BODY) -> web.Application:
    """The aiohttp application. ``token`` must be non-empty (``ParameterError`` otherwise)."""
    if not token:
        raise ParameterError(["token: the receiver needs a bearer token (--token-file)"])

    async def alerts(request: web.Request) -> web.Response:
        if not _authorized(request, token):
            return web.json_response(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if request.content_length is not None and request.content_length > max_body:
            return _error(413, f"body over {max_body} bytes")
        try:
            body = await request.read()  # every segment or chunk, up to client_max_size
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body over {max_body} bytes")
        try:
            notification = parse_webhook(body)
        except ParameterError as err:
            return _error(400, "bad payload", problems=list(err.problems))
        # In a thread: the answer waits for the journal's fsync, and posts arriving meanwhile
        # share it.
        accepted = await asyncio.to_thread(api.accept, notification)
        payload: dict[str, Any] = {"alerts": list(accepted.dispositions)}
        problems = {str(i): r for i, r in enumerate(accepted.reasons) if r}
        if problems:
            payload["problems"] = problems
        if accepted.retry_after_s is not None:
            retry = str(max(1, round(accepted.retry_after_s)))
            return web.json_response(
                {**payload, "error": accepted.refused or "queue full"},
                status=503,
                headers={"Retry-After": retry},
            )
        return web.json_response(payload)

    async def healthz(request: web.Request) -> web.Response:
        ok, why = api.health()
        return web.Response(text=f"{'ok' if ok else why}\n", status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=api.metrics_text(), content_type="text/plain", charset="utf-8")

    async def runs(request: web.Request) -> web.Response:
        rows = list(api.runs())
        if request.query.get("format") == "json":
            return web.json_response(rows, dumps=lambda o: json.dumps(o, default=str))
        return web.Response(text=_runs_page(rows), content_type="text/html", charset="utf-8")

    app = web.Application(client_max_size=max_body, middlewares=[_no_tracebacks])
    app.router.add_post("/alerts", alerts)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/runs", runs)
    return app


_COLUMNS = ("received_at", "release", "namespace", "alert", "action", "outcome", "evidence")


def _runs_page(rows: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html_text(str(row.get(c, '') or ''))}</td>" for c in _COLUMNS)
        + "</tr>"
        for row in rows
    )
    return (
        "<!doctype html><meta charset=utf-8><title>runbook serve: runs</title>"
        "<h1>Recent runs</h1><table border=1 cellpadding=4>"
        f"<tr>{head}</tr>{body}</table>\n"
    )


def tls_context(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or later); with ``client_ca`` clients must present a
    certificate it signed (mutual TLS). ``ParameterError`` names the file that cannot serve."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as err:
        raise ParameterError(
            [f"--tls-cert/--tls-key: cannot load {cert} and {key}: {err}"]
        ) from err
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (OSError, ssl.SSLError) as err:
            raise ParameterError([f"--tls-client-ca: cannot load {client_ca}: {err}"]) from err
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    on_signal: Callable[[int], None],
    stopped: threading.Event,
    ssl_context: ssl.SSLContext | None = None,
    on_listening: Callable[[int], None] = lambda _port: None,
) -> None:
    """Listen until ``stopped`` is set. Each SIGTERM/SIGINT calls ``on_signal(signum)`` (the
    server keeps answering meanwhile, so a stopping receiver can still say it is stopping).
    ``on_listening`` gets the port (useful with ``port=0``)."""

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
            await site.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal, sig)
            sockets = getattr(site._server, "sockets", None) or ()
            on_listening(sockets[0].getsockname()[1] if sockets else port)
            await asyncio.to_thread(stopped.wait)
        finally:
            await runner.cleanup()

    asyncio.run(main())
