"""Drive a running traffic model: add and remove targets, make chosen pods misbehave.

The client half of ``traffic_api.py``, for tests and fixtures (``Sandbox.traffic_url`` is the
model's URL). Every function takes the URL first and keyword-only options, returns the model's
answer as plain data, and raises ``TrafficControlError`` (with the HTTP status and every
problem the model listed) when the model refuses or cannot be reached.

    add_target(url, release="shop", namespace="team-a", dialect="otel")
    set_behaviour(url, release="shop", namespace="team-a", pod_template_hash="5d9c7b8f4",
                  error_ratio=0.3)
    clear_behaviour(url, release="shop", namespace="team-a")
    remove_target(url, release="shop", namespace="team-a")
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

__all__ = [
    "TrafficControlError",
    "add_target",
    "clear_behaviour",
    "mix",
    "remove_target",
    "set_behaviour",
    "targets",
]

_TIMEOUT_S = 10.0


class TrafficControlError(RuntimeError):
    """The traffic model refused a request (``status`` >= 400) or was unreachable (0)."""

    def __init__(self, message: str, *, status: int, problems: tuple[str, ...] = ()) -> None:
        detail = "; ".join(problems)
        super().__init__(f"{message}: {detail}" if detail else message)
        self.status = status
        self.problems = problems


def _call(method: str, url: str, body: Mapping[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        try:
            answer = json.loads(err.read() or b"{}")
        except ValueError:
            answer = {}
        raise TrafficControlError(
            f"{method} {url}: {answer.get('error') or err.reason}",
            status=err.code,
            problems=tuple(answer.get("problems") or ()),
        ) from err
    except (urllib.error.URLError, OSError) as err:
        raise TrafficControlError(f"{method} {url}: {err}", status=0) from err


def _path(traffic_url: str, kind: str, namespace: str, release: str) -> str:
    return f"{traffic_url.rstrip('/')}/{kind}/{quote(namespace, safe='')}/{quote(release, safe='')}"


def add_target(
    traffic_url: str,
    *,
    release: str,
    namespace: str,
    selector: str | None = None,
    dialect: str | None = None,
    rate: float | None = None,
    traced: bool | None = None,
    mix: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Send traffic to ``release``'s pods (``selector`` in ``namespace``), exposed in
    ``dialect`` (``prometheus``, ``otel`` or ``istio``) at ``rate`` req/s; ``traced``: its
    requests become spans; ``mix`` gives fixed synthetic pods (version -> count) instead of
    the cluster's. Replaces a target of the same release and namespace. What is left None
    takes the default (``app=api``, ``prometheus``, the model's rate, not traced, the
    cluster's pods; for ``default/app``, its own settings). Returns the target."""
    given = {"selector": selector, "dialect": dialect, "rate": rate, "traced": traced}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if mix is not None:
        body["mix"] = dict(mix)
    answer: dict[str, Any] = _call("PUT", _path(traffic_url, "targets", namespace, release), body)
    return answer


def remove_target(traffic_url: str, *, release: str, namespace: str) -> bool:
    """Stop the traffic of a target and drop its overrides; False when there was none."""
    try:
        _call("DELETE", _path(traffic_url, "targets", namespace, release))
    except TrafficControlError as err:
        if err.status == 404:
            return False
        raise
    return True


def targets(traffic_url: str) -> list[dict[str, Any]]:
    """Every target the model serves (the sandbox's own release ``default/app`` included)."""
    answer: dict[str, Any] = _call("GET", f"{traffic_url.rstrip('/')}/targets")
    return list(answer["targets"])


def set_behaviour(
    traffic_url: str,
    *,
    release: str,
    namespace: str,
    pod_template_hash: str | None = None,
    image: str | None = None,
    error_ratio: float | None = None,
    latency_p99_s: float | None = None,
    latency_median_s: float | None = None,
    orders_factor: float | None = None,
) -> dict[str, Any]:
    """Make the target's pods with this ``pod_template_hash`` (or, given instead, exactly this
    ``image``) behave as told; fields left out take the default (healthy) version's values.
    Replaces an override with the same match. Returns the override as the model keeps it."""
    if (pod_template_hash is None) == (image is None):
        raise ValueError("give exactly one of pod_template_hash and image")
    match = {"pod_template_hash": pod_template_hash} if image is None else {"image": image}
    body: dict[str, Any] = {"match": match}
    given = {
        "error_ratio": error_ratio,
        "latency_p99_s": latency_p99_s,
        "latency_median_s": latency_median_s,
        "orders_factor": orders_factor,
    }
    body.update({k: v for k, v in given.items() if v is not None})
    answer: dict[str, Any] = _call("PUT", _path(traffic_url, "behaviour", namespace, release), body)
    return answer


def clear_behaviour(
    traffic_url: str,
    *,
    release: str,
    namespace: str,
    pod_template_hash: str | None = None,
    image: str | None = None,
) -> int:
    """Remove the target's overrides (only the one with that match, when given); returns
    how many were removed."""
    query = {k: v for k, v in (("pod_template_hash", pod_template_hash), ("image", image)) if v}
    url = _path(traffic_url, "behaviour", namespace, release)
    if query:
        url += "?" + urlencode(query)
    return int(_call("DELETE", url)["removed"])


def mix(traffic_url: str) -> dict[str, Any]:
    """The model's ``/mix``: serving pods per target (``["targets"]["<ns>/<release>"]``)."""
    answer: dict[str, Any] = _call("GET", f"{traffic_url.rstrip('/')}/mix")
    return answer
