"""Network faults between a client and the sandbox's API server.

A real API server cannot be made to hang mid-handshake, or vanish for exactly three seconds
and come back on the same address, on demand without disturbing everything else using the
sandbox. These sit on 127.0.0.1 in front of it: ``Forwarder`` relays bytes unchanged (TLS end
to end) and can be cut and restored; ``Blackhole`` accepts connections and never answers.
``kubeconfig_via`` writes a copy of a kubeconfig whose server points at them. The adapter
tests and the harness's ``Faults.api_server_down`` use them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import yaml

__all__ = ["Blackhole", "Forwarder", "api_port", "free_port", "kubeconfig_via"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_port(kubeconfig: Path, context: str) -> int:
    config = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in config["contexts"] if c["name"] == context)["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == ctx["cluster"])["cluster"]
    port = urlsplit(cluster["server"]).port
    assert port is not None
    return port


def kubeconfig_via(kubeconfig: Path, context: str, port: int, dest: Path) -> Path:
    """Copy of ``kubeconfig`` whose ``context`` talks to 127.0.0.1:``port``."""
    config = yaml.safe_load(kubeconfig.read_text())
    ctx = next(c for c in config["contexts"] if c["name"] == context)["context"]
    for cluster in config["clusters"]:
        if cluster["name"] == ctx["cluster"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    dest.write_text(yaml.safe_dump(config))
    return dest


class Forwarder:
    """TCP relay 127.0.0.1:port -> 127.0.0.1:target that can be cut (refuse + reset)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.accepted = 0
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.2)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(None)
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """The API server "goes away": new connections refused, open ones reset."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class Blackhole:
    """Accepts TCP connections (kernel backlog) and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()
