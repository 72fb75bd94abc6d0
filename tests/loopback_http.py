"""A test's own HTTP server on 127.0.0.1: a stand-in for Slack, Jaeger or any service a test
cannot ask to fail on demand. The port is the kernel's choice; the server runs in a daemon
thread until ``stop``."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Loopback", "QuietHandler", "closed_port"]


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that does not log each request to stderr (pytest would show it)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class Loopback:
    """``handler`` served at ``url`` (``path`` appended). ``release`` is for handlers that
    hang: ``stop`` sets it, so no request outlives the test."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], path: str = "", *, poll_s: float = 0.5
    ) -> None:
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(poll_s,), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port nothing listens on any more: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
