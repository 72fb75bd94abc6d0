"""The one HTTP client's retry rule against a real server on 127.0.0.1.

The server answers each path in one way (200, 404, 429, 503, a 503 then a 200, bytes that are
not HTTP, a slow answer, a closed or reset connection) and counts the requests that reached
it, so each row shows how many times the client tried and what error it raised.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from loopback_http import Loopback, QuietHandler

from runbook_lib.adapters.http import ErrorKind, HttpClient, HttpError
from runbook_lib.errors import AdapterError, ParameterError

TIMEOUT_S = 0.5
HANG_S = 30.0  # how long "/slow" holds a request unless the test ends first


class Server(Loopback):
    """Answers ``/<behaviour>`` as the behaviour says; ``arrivals`` counts requests per path."""

    def __init__(self) -> None:
        self.arrivals: Counter[str] = Counter()
        lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                with lock:
                    server.arrivals[self.path] += 1
                    seen = server.arrivals[self.path]
                behaviour = self.path.strip("/")
                if behaviour == "slow":
                    server.release.wait(HANG_S)
                    self.close_connection = True
                elif behaviour == "closes":
                    self.close_connection = True
                elif behaviour == "resets":
                    linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    self.close_connection = True
                elif behaviour == "garbage":
                    self.wfile.write(b"SSH-2.0-OpenSSH\r\n\r\n")
                    self.close_connection = True
                else:
                    status = 503 if behaviour == "503-then-200" and seen == 1 else None
                    self.reply(status or int(behaviour.split("-")[-1]))

            def reply(self, status: int) -> None:
                body = f"answer {status} to {self.path}".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.answer()

            def do_POST(self) -> None:
                self.answer()

        super().__init__(Handler, poll_s=0.05)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@dataclass(frozen=True)
class Row:
    path: str
    tries: int  # requests that reached the server
    kind: ErrorKind | None  # None: the answer is returned
    retryable: bool = False


ONCE, ALL = 1, 3  # all: the first try and two retries

GET_ROWS = {
    "200": Row("/200", ONCE, None),
    "404": Row("/404", ONCE, ErrorKind.REJECTED),
    "429": Row("/429", ALL, ErrorKind.UNAVAILABLE, retryable=True),
    "503": Row("/503", ALL, ErrorKind.UNAVAILABLE, retryable=True),
    "503-then-200": Row("/503-then-200", 2, None),
    "garbage": Row("/garbage", ONCE, ErrorKind.MALFORMED),
    "slow": Row("/slow", ALL, ErrorKind.TIMEOUT, retryable=True),
    "closes": Row("/closes", ALL, ErrorKind.DROPPED, retryable=True),
    "resets": Row("/resets", ALL, ErrorKind.DROPPED, retryable=True),
}
# The same answers to a POST: never retried, so a 503 that would pass is an error.
POST_ROWS = {
    "200": Row("/200", ONCE, None),
    "404": Row("/404", ONCE, ErrorKind.REJECTED),
    "429": Row("/429", ONCE, ErrorKind.UNAVAILABLE, retryable=True),
    "503": Row("/503", ONCE, ErrorKind.UNAVAILABLE, retryable=True),
    "503-then-200": Row("/503-then-200", ONCE, ErrorKind.UNAVAILABLE, retryable=True),
    "garbage": Row("/garbage", ONCE, ErrorKind.MALFORMED),
    "slow": Row("/slow", ONCE, ErrorKind.TIMEOUT, retryable=True),
    "closes": Row("/closes", ONCE, ErrorKind.DROPPED, retryable=True),
    "resets": Row("/resets", ONCE, ErrorKind.DROPPED, retryable=True),
}


def _call(client: HttpClient, method: str, url: str) -> tuple[int | None, HttpError | None]:
    try:
        if method == "GET":
            answer = client.get(url, command=f"GET {url}")
        else:
            answer = client.post(
                url, command=f"POST {url}", json={"x": 1}, idempotent=method == "POST idempotent"
            )
    except HttpError as err:
        return None, err
    return answer.status, None


CASES = [pytest.param("GET", row, id=f"get-{name}") for name, row in GET_ROWS.items()]
CASES += [pytest.param("POST", row, id=f"post-{name}") for name, row in POST_ROWS.items()]
CASES += [
    pytest.param("POST idempotent", GET_ROWS["503"], id="idempotent-post-503"),
    pytest.param("POST idempotent", GET_ROWS["404"], id="idempotent-post-404"),
]


@pytest.mark.parametrize(("method", "row"), CASES)
def test_retry_rule(server: Server, method: str, row: Row) -> None:
    client = HttpClient(timeout_s=TIMEOUT_S)
    started = time.monotonic()
    status, err = _call(client, method, server.url + row.path)
    elapsed = time.monotonic() - started

    assert server.arrivals[row.path] == row.tries
    if row.kind is None:
        assert err is None
        assert status == 200
        return
    assert isinstance(err, HttpError)
    assert isinstance(err, AdapterError)  # in the project's error tree
    assert (err.kind, err.retryable) == (row.kind, row.retryable)
    assert err.command == f"{method.split()[0]} {server.url}{row.path}"
    if row.kind in (ErrorKind.REJECTED, ErrorKind.UNAVAILABLE):
        assert err.status == int(row.path.strip("/")[:3])
        assert err.stderr == f"answer {err.status} to {row.path}"  # the server's own words
    else:
        assert err.status is None
    if row.kind is ErrorKind.TIMEOUT:
        assert f"timed out after {TIMEOUT_S:g} s" in str(err)
        assert elapsed < 10  # each try bounded by the timeout, not by the server's 30 s


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_nothing_listening_is_retryable(method: str) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/x"
    status, err = _call(HttpClient(timeout_s=TIMEOUT_S), method, url)
    assert status is None
    assert err is not None
    assert (err.kind, err.retryable, err.reason) == (
        ErrorKind.UNREACHABLE,
        True,
        "connection refused",
    )
    assert isinstance(err.__cause__, ConnectionRefusedError)  # the OS error stays attached


def test_an_invalid_url_is_not_retryable() -> None:
    status, err = _call(HttpClient(timeout_s=TIMEOUT_S), "GET", "http://127.0.0.1:99999/x")
    assert status is None
    assert err is not None
    assert (err.kind, err.retryable) == (ErrorKind.BAD_ADDRESS, False)


def test_secrets_are_redacted_from_error_answers(server: Server) -> None:
    secret = "/503"  # the server echoes the path in its answer
    client = HttpClient(timeout_s=TIMEOUT_S, secrets=[secret])
    with pytest.raises(HttpError) as caught:
        client.post(server.url + secret, command="POST webhook", json={})
    assert caught.value.stderr == "answer 503 to /<redacted>"
    assert secret not in str(caught.value)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ParameterError, match="timeout_s"):
        HttpClient(timeout_s=0)
