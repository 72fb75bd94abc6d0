"""The traffic model's HTTP surface: metrics, the serving mix, and the control API.

    GET    /metrics                          every target's series (traffic_metrics.py)
    GET    /mix                              serving pods per target (the default's on top)
    GET    /targets                          {"targets": [target, ...]}
    GET    /targets/<namespace>/<release>    one target
    PUT    /targets/<namespace>/<release>    add or replace: {"selector", "dialect", "rate",
                                             "traced", "mix"} (all optional: a new target's
                                             defaults, or the default target's own settings);
                                             201 new, 200 replaced
    DELETE /targets/<namespace>/<release>    remove it and its overrides (409: the default one)
    GET    /behaviour                        {"overrides": {"<ns>/<release>": [override, ...]}}
    GET    /behaviour/<namespace>/<release>  {"overrides": [override, ...]}
    PUT    /behaviour/<namespace>/<release>  add or replace (by its match) an override:
                                             {"match": {"pod_template_hash": H} | {"image": I},
                                              "error_ratio", "latency_median_s",
                                              "latency_p99_s", "orders_factor"}
    DELETE /behaviour/<namespace>/<release>[?pod_template_hash=H|?image=I]
                                             clear all, or the one with that match

Answers are JSON. 400 carries ``{"error", "problems": [...]}`` (every problem at once); 404
names the unknown target. Changes are kept in the state dir before the answer is sent. The
server binds 127.0.0.1 only (``traffic_model.run``); it has no authentication, like the rest
of the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import make_wsgi_app

from runbook_sandbox.traffic_targets import (
    DefaultTargetError,
    MatchKind,
    parse_override,
    parse_target,
    target_key,
)

if TYPE_CHECKING:  # run as a script, traffic_model is __main__: no import at run time
    from runbook_sandbox.traffic_model import TrafficModel

__all__ = ["make_app"]

_MAX_BODY = 64 * 1024
_REASONS = {
    200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
}  # fmt: skip

StartResponse = Callable[..., Any]
Answer = tuple[int, Any]


class _Refused(Exception):
    def __init__(self, status: int, error: str, problems: Iterable[str] = ()) -> None:
        super().__init__(error)
        self.status = status
        self.body = {"error": error, "problems": list(problems)}


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > _MAX_BODY:
        raise _Refused(413, f"body larger than {_MAX_BODY} bytes")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        data = json.loads(raw or b"{}")
    except ValueError as err:
        raise _Refused(400, f"body is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise _Refused(400, "body must be a JSON object")
    return data


def _targets(model: TrafficModel, method: str, rest: list[str], environ: dict[str, Any]) -> Answer:
    if not rest:
        if method != "GET":
            raise _Refused(405, "use GET /targets, or PUT/DELETE /targets/<namespace>/<release>")
        return 200, {"targets": [t.to_json() for t in model.targets()]}
    namespace, release = rest
    key = target_key(namespace, release)
    if method == "GET":
        for target in model.targets():
            if target.key == key:
                return 200, target.to_json()
        raise _Refused(404, f"no target {key}")
    if method == "PUT":
        # The sandbox's own target keeps its built-in settings where the body says nothing.
        default = model.options.default_target
        try:
            target = parse_target(
                namespace, release, _body(environ),
                defaults=default if key == default.key else None,
            )  # fmt: skip
        except ValueError as err:
            raise _Refused(400, f"invalid target {key}", err.args) from err
        created = model.put_target(target)
        return (201 if created else 200), target.to_json()
    if method == "DELETE":
        try:
            removed = model.remove_target(key)
        except DefaultTargetError as err:
            raise _Refused(409, str(err)) from err
        if not removed:
            raise _Refused(404, f"no target {key}")
        return 200, {"removed": key}
    raise _Refused(405, f"{method} is not supported on /targets")


def _behaviour(
    model: TrafficModel, method: str, rest: list[str], environ: dict[str, Any]
) -> Answer:
    if not rest:
        if method != "GET":
            raise _Refused(405, "use GET /behaviour, or PUT/DELETE /behaviour/<ns>/<release>")
        overrides = model.overrides()
        return 200, {"overrides": {k: [o.to_json() for o in v] for k, v in overrides.items()}}
    key = target_key(*rest)
    try:
        if method == "GET":
            if key not in {t.key for t in model.targets()}:
                raise KeyError(key)
            return 200, {"overrides": [o.to_json() for o in model.overrides().get(key, [])]}
        if method == "PUT":
            try:
                override = parse_override(_body(environ), model.config)
            except ValueError as err:
                raise _Refused(400, f"invalid behaviour for {key}", err.args) from err
            model.put_override(key, override)
            return 200, override.to_json()
        if method == "DELETE":
            # Blank values kept: an empty filter must be refused, not read as "clear all".
            query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            kinds = {str(k) for k in MatchKind}
            match = {k: v[-1] for k, v in query.items() if k in kinds}
            if set(query) - kinds or len(match) > 1 or not all(match.values()):
                raise _Refused(400, f"filter by at most one of {sorted(kinds)}, non-empty")
            return 200, {"removed": model.clear_overrides(key, match or None)}
    except KeyError as err:
        raise _Refused(404, f"no target {key}") from err
    raise _Refused(405, f"{method} is not supported on /behaviour")


def make_app(model: TrafficModel) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application of ``model`` (served by ``traffic_model.run``)."""
    metrics = make_wsgi_app(model.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        parts = [p for p in path.split("/") if p]
        try:
            if parts == ["mix"]:
                status, body = 200, model.mix()
            elif parts[:1] == ["targets"] and len(parts) in (1, 3):
                status, body = _targets(model, method, parts[1:], environ)
            elif parts[:1] == ["behaviour"] and len(parts) in (1, 3):
                status, body = _behaviour(model, method, parts[1:], environ)
            else:
                raise _Refused(404, "see /metrics, /mix, /targets or /behaviour")
        except _Refused as refused:
            status, body = refused.status, refused.body
        start_response(
            f"{status} {_REASONS.get(status, '')}".strip(),
            [("Content-Type", "application/json")],
        )
        return [json.dumps(body).encode() + b"\n"]

    return app
