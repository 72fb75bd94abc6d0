"""The receiver's fault suite, input side: bodies in pieces and hostile labels over real TCP.

A real aiohttp server on loopback with the real receiver (journal, policy, state); the run is
the in-process stand-in of ``receiver_doubles``. Requests are written byte by byte where it
matters: a body split over several TCP writes, chunked without Content-Length, labels that
try to leave the evidence folder, forge a log line, page a Slack channel or break a page.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from alert_payloads import alert, payload
from loopback_http import Loopback, QuietHandler
from receiver_doubles import FakeDispatch, local_receiver

from runbook_lib.adapters.notify import ConsoleNotifier, SlackWebhook
from runbook_lib.adapters.webhook import MAX_BODY, make_app
from runbook_lib.receiver import Receiver

TOKEN = "input-suite-token"
POLICY = {
    "parameters": {"expected_cluster": "kwok-test"},
    "releases": [
        {"release": "shop-*", "namespace": "*", "auto_rollback": True},
        {"release": "*", "namespace": "default", "auto_rollback": True},
    ],
}


def _receiver(tmp: Path, *notifiers: Any) -> tuple[Receiver, FakeDispatch]:
    runs = FakeDispatch()
    receiver = local_receiver(tmp, runs, policy=POLICY, notifiers=notifiers, cooldown=0)
    receiver.start()
    return receiver, runs


@asynccontextmanager
async def _server(receiver: Receiver) -> AsyncIterator[int]:
    server = TestServer(make_app(receiver, token=TOKEN), host="127.0.0.1")
    await server.start_server()
    try:
        yield int(server.port)  # type: ignore[arg-type]
    finally:
        await server.close()


async def _raw(port: int, head: bytes, pieces: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Send ``head`` then each piece as its own TCP write (no Nagle, drained, a pause between)
    and read the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(head)
    await writer.drain()
    for piece in pieces:
        await asyncio.sleep(0.005)  # the fault: the rest of the body is still on its way
        writer.write(piece)
        await writer.drain()
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), json.loads(body or b"{}")


def _head(length: int | None) -> bytes:
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST /alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{size}\r\nConnection: close\r\n\r\n"
    ).encode()


def _body(alerts: int, annotation_bytes: int) -> bytes:
    note = {"description": "x" * annotation_bytes}
    group = [
        {**alert("app", labels={"pod": f"app-{i}"}), "annotations": note} for i in range(alerts)
    ]
    return json.dumps(payload(*group)).encode()


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in _cut(data, size)] + [b"0\r\n\r\n"]


@pytest.mark.parametrize(
    ("alerts", "note_bytes", "piece", "chunked"),
    [
        (10, 500, 3300, False),  # 6.5 KB in two writes
        (1, 640_000, 65_536, False),  # 647 KB in ten
        (40, 2000, 7000, True),  # chunked, no Content-Length
    ],
    ids=["6.5KB-two-writes", "647KB-ten-writes", "chunked"],
)
def test_a_body_in_several_tcp_writes_is_read_whole(
    tmp_path: Path, alerts: int, note_bytes: int, piece: int, chunked: bool
) -> None:
    receiver, runs = _receiver(tmp_path)
    body = _body(alerts, note_bytes)

    async def go() -> tuple[int, dict[str, Any]]:
        async with _server(receiver) as port:
            pieces = _chunked(body, piece) if chunked else _cut(body, piece)
            return await _raw(port, _head(None if chunked else len(body)), pieces)

    status, answer = asyncio.run(go())
    assert receiver.wait_idle(10)
    receiver.close()
    assert status == 200, answer
    assert answer["alerts"] == ["queued"] + ["coalesced"] * (alerts - 1)
    assert len(runs.calls) == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_1_mib_is_413_however_it_comes(tmp_path: Path, chunked: bool) -> None:
    receiver, runs = _receiver(tmp_path)
    body = b'{"version": "4", "alerts": [' + b" " * MAX_BODY + b"]}"

    async def go() -> tuple[int, dict[str, Any]]:
        async with _server(receiver) as port:
            if chunked:
                return await _raw(port, _head(None), _chunked(body, 256 * 1024))
            # Refused on the header alone: the body need not be sent.
            return await _raw(port, _head(len(body)), [])

    status, answer = asyncio.run(go())
    receiver.close()
    assert (status, answer["error"]) == (413, f"body over {MAX_BODY} bytes")
    assert runs.calls == []


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


HOSTILE = [
    ("shop-../../x", "default"),  # matches the policy's glob shop-*
    ("a" * 253, "default"),
    ("app", "default\nINFO forged log line"),
    ("app\x1b[2J\x1b[31m", "default"),
    ("app\ud800", "default"),
    ("APP", "default"),
    ("app", "../etc"),
]


def test_labels_that_are_not_kubernetes_names_touch_nothing(tmp_path: Path) -> None:
    receiver, runs = _receiver(tmp_path)
    outside = tmp_path / "x"
    before = _files(tmp_path)
    group = [alert(release, namespace) for release, namespace in HOSTILE]
    # Raw JSON: a lone surrogate escape (\ud800) stays in the text the way a hostile client
    # sends it.
    body = json.dumps(payload(*group), ensure_ascii=True).encode()

    async def go() -> list[tuple[int, Any]]:
        async with _server(receiver) as port:
            out = [await _raw(port, _head(len(body)), [body])]
            for path in ("/runs", "/runs?format=json", "/metrics", "/healthz"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                out.append((int((await reader.readline()).split()[1]), None))
                writer.close()
            return out

    (status, answer), *pages = asyncio.run(go())
    assert receiver.wait_idle(5)
    receiver.close()
    assert status == 200  # the group's other alerts must not be lost to a 4xx
    assert answer["alerts"] == ["invalid"] * len(HOSTILE)
    assert "release label not a Helm release name" in answer["problems"]["0"]
    assert all("\n" not in problem for problem in answer["problems"].values())
    assert [s for s, _ in pages] == [200, 200, 200, 200]
    assert runs.calls == []
    assert not outside.exists()
    assert not (tmp_path / "evidence").exists()  # nothing written, no folder made
    assert _files(tmp_path) - before <= {
        "state",
        "state/journal.jsonl",
        "notifications.jsonl",
    }
    journal = (tmp_path / "state" / "journal.jsonl").read_text()
    assert journal.isascii()
    assert all("\x1b" not in line for line in journal.splitlines())


class _Slack(Loopback):
    """A stand-in for Slack's incoming webhook on loopback: keeps what it is sent."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                size = int(self.headers["Content-Length"])
                outer.posts.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

        super().__init__(Handler, "/services/T/B/x")


@pytest.fixture
def slack() -> Iterator[_Slack]:
    found = _Slack()
    try:
        yield found
    finally:
        found.stop()


def test_label_text_is_escaped_for_the_console_slack_and_html(
    tmp_path: Path, slack: _Slack
) -> None:
    console = io.StringIO()
    receiver, runs = _receiver(tmp_path, SlackWebhook(slack.url), ConsoleNotifier(console))
    name = "Err\nINFO all good\x1b[32m <!channel> <https://evil.example|status page> \u202egnp"

    async def go() -> tuple[int, str]:
        async with _server(receiver) as port:
            body = json.dumps(payload(alert("app", name=name))).encode()
            status, _ = await _raw(port, _head(len(body)), [body])
            assert receiver.wait_idle(10)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /runs HTTP/1.0\r\nHost: x\r\n\r\n")
            page = (await reader.read()).decode()
            writer.close()
            return status, page

    with redirect_stdout(console):
        status, page = asyncio.run(go())
    receiver.close()
    assert status == 200
    assert len(runs.calls) == 1
    shown = console.getvalue()
    assert shown.count("\n") == len(shown.splitlines())  # one line per notification
    assert all(line.startswith("[notify] runbook serve:") for line in shown.splitlines())
    assert "\x1b" not in shown
    assert "\u202e" not in shown
    assert "Err\\x0aINFO all good\\x1b[32m" in shown
    texts = [p["text"] for p in slack.posts]
    assert texts
    assert all("<" not in t and ">" not in t for t in texts)
    assert "&lt;!channel&gt;" in texts[0]
    assert "&lt;https://evil.example|status page&gt;" in texts[0]
    assert "<!channel>" not in page
    assert "\x1b" not in page
    assert "&lt;!channel&gt;" in page


def test_bad_requests_are_4xx_with_a_reason_never_500(tmp_path: Path) -> None:
    receiver, runs = _receiver(tmp_path)
    nested = b'{"version": "4", "alerts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    async def go() -> list[tuple[int, dict[str, Any]]]:
        async with _server(receiver) as port:
            out = []
            head = _head(len(nested))
            out.append(await _raw(port, head, [nested]))
            non_ascii = (
                "POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\u00f6ken\r\n"
                "Content-Length: 2\r\nConnection: close\r\n\r\n"
            ).encode("latin-1")
            out.append(await _raw(port, non_ascii, [b"{}"]))
            utf8 = "Bearer \u043a\u043b\u044e\u0447".encode()
            head = _head(2).replace(f"Bearer {TOKEN}".encode(), utf8)
            out.append(await _raw(port, head, [b"{}"]))
            bad_utf8 = b'{"version": "4", "alerts": [{"labels": {"release": "\xff"}}]}'
            out.append(await _raw(port, _head(len(bad_utf8)), [bad_utf8]))
            return out

    (deep, latin, cyrillic, undecodable) = asyncio.run(go())
    receiver.close()
    assert deep == (400, {"error": "bad payload", "problems": ["body: JSON nested too deeply"]})
    assert latin[0] == 401
    assert cyrillic[0] == 401
    assert undecodable[0] == 400
    assert runs.calls == []


def test_the_journal_is_durable_before_the_answer(tmp_path: Path) -> None:
    """An accepted alert is in the journal, as an alert to run, by the time 200 is sent."""
    receiver, runs = _receiver(tmp_path)
    runs.gate.clear()
    journal = tmp_path / "state" / "journal.jsonl"

    async def go() -> list[Any]:
        async with _server(receiver) as port:
            body = json.dumps(payload(alert("app"))).encode()
            status, answer = await _raw(port, _head(len(body)), [body])
            # Read the file the way a restarted receiver would, right after the answer.
            lines = [json.loads(x) for x in journal.read_text().splitlines()]
            return [status, answer, lines]

    status, answer, lines = asyncio.run(go())
    runs.gate.set()
    receiver.close()
    assert (status, answer) == (200, {"alerts": ["queued"]})
    (accepted,) = [e for e in lines if e["event"] == "alert"]
    assert accepted["disposition"] == "queued"
    assert accepted["alert"]["labels"]["release"] == "app"
    assert os.stat(journal).st_mode & 0o077 == 0
