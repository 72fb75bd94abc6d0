"""The alert receiver's HTTP side (aiohttp): Alertmanager's webhook, health, metrics, runs.

Used by ``runbook serve``. Translates HTTP into calls on a ``ReceiverApi`` and back; decides
nothing itself. Routes:

  POST /alerts    Alertmanager webhook (payload version 4). ``Authorization: Bearer <token>``
                  is required (401 otherwise, nothing started); a body over ``max_body``
                  bytes is 413, malformed JSON or payload 400 (naming the fields); a full
                  queue 503 with ``Retry-After`` so Alertmanager tries again; else 200 with
                  what became of each alert.
  GET  /healthz   200 "ok" while the receiver works.
  GET  /metrics   Prometheus text format (runs by outcome, queue depth, durations).
  GET  /runs      recent runs as a small HTML page (``?format=json`` for JSON).

Loopback by default: the caller passes the host, and ``runbook serve`` defaults to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from runbook_lib.core.alerts import Notification, parse_webhook
from runbook_lib.errors import ParameterError

__all__ = ["MAX_BODY", "Accepted", "ReceiverApi", "make_app", "serve"]

MAX_BODY = 1024 * 1024  # 1 MiB: Alertmanager's posts are a few KiB


@dataclass(frozen=True)
class Accepted:
    """What became of each alert of a post; ``retry_after_s`` set when the queue was full."""

    dispositions: tuple[str, ...]
    retry_after_s: float | None = None


class ReceiverApi(Protocol):
    def accept(self, notification: Notification) -> Accepted: ...

    def healthy(self) -> bool: ...

    def metrics_text(self) -> str: ...

    def runs(self) -> Sequence[Mapping[str, Any]]: ...


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


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
            return web.json_response({"error": f"body over {max_body} bytes"}, status=413)
        try:
            body = await request.content.read(max_body + 1)
        except (asyncio.CancelledError, ConnectionError):
            raise
        if len(body) > max_body:
            return web.json_response({"error": f"body over {max_body} bytes"}, status=413)
        try:
            notification = parse_webhook(body)
        except ParameterError as err:
            return web.json_response({"error": "bad payload", "problems": err.problems}, status=400)
        accepted = api.accept(notification)
        payload = {"alerts": list(accepted.dispositions)}
        if accepted.retry_after_s is not None:
            retry = str(max(1, round(accepted.retry_after_s)))
            return web.json_response(
                {**payload, "error": "queue full"}, status=503, headers={"Retry-After": retry}
            )
        return web.json_response(payload)

    async def healthz(request: web.Request) -> web.Response:
        ok = api.healthy()
        return web.Response(text="ok\n" if ok else "unhealthy\n", status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=api.metrics_text(), content_type="text/plain", charset="utf-8")

    async def runs(request: web.Request) -> web.Response:
        rows = list(api.runs())
        if request.query.get("format") == "json":
            return web.json_response(rows, dumps=lambda o: json.dumps(o, default=str))
        return web.Response(text=_runs_page(rows), content_type="text/html", charset="utf-8")

    app = web.Application(client_max_size=max_body)
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
        + "".join(f"<td>{html.escape(str(row.get(c, '') or ''))}</td>" for c in _COLUMNS)
        + "</tr>"
        for row in rows
    )
    return (
        "<!doctype html><meta charset=utf-8><title>runbook serve: runs</title>"
        "<h1>Recent runs</h1><table border=1 cellpadding=4>"
        f"<tr>{head}</tr>{body}</table>\n"
    )


def serve(app: web.Application, *, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (aiohttp's runner handles both)."""
    web.run_app(app, host=host, port=port, print=None, handle_signals=True, access_log=None)
