"""The pure tier's guard: a test in tests/unit that opens a socket or starts a process fails.

``make check`` runs this folder on every edit, so it must stay fast and must not depend on what
the machine runs beside it. Python's audit hooks see every socket bind/connect and every process
start, whichever library makes it (papermill's kernel, aiohttp, subprocess, ssh-keygen), so a
test that needs one belongs in another folder (docs/TESTING.md says which).

The hook records what it saw and refuses the call; the test then fails naming the first call,
even when the code under test caught the refusal and carried on.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
import traceback
from collections.abc import Iterator

import pytest

# urllib3 probes for IPv6 by binding a socket to ::1 when it is first imported (through the
# Kubernetes client, detect-secrets, ...): imported here, before any test, that probe is not
# a test's doing.
import urllib3  # noqa: F401

# Audit events that open a network socket or start a program (the Python docs' audit table).
_FORBIDDEN = frozenset(
    {
        "socket.bind",
        "socket.connect",
        "socket.sendto",
        "socket.getaddrinfo",
        "subprocess.Popen",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "os.system",
    }
)


class ImpureCall(RuntimeError):
    """Raised into the test's code when it opens a socket or starts a process."""


class _Guard:
    """Process-wide switch: on while a pure test's setup, call or teardown runs."""

    def __init__(self) -> None:
        self.active = False
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.active or event not in _FORBIDDEN:
            return
        what = f"{event}{_describe(args)} from {_caller()}"
        with self._lock:
            self.seen.append(what)
        raise ImpureCall(f"the pure tier opens no socket and starts no process: {what}")


def _caller() -> str:
    """The innermost frame outside the standard library: who asked for the socket or process."""
    stdlib = sysconfig.get_paths()["stdlib"]
    for frame in reversed(traceback.extract_stack()[:-3]):
        if not frame.filename.startswith(stdlib) and frame.filename != __file__:
            return f"{frame.filename}:{frame.lineno}"
    return "?"


def _describe(args: tuple[object, ...]) -> str:
    shown = ", ".join(repr(arg)[:120] for arg in args[:2])
    return f"({shown})"


_GUARD = _Guard()
sys.addaudithook(_GUARD.hook)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


def _guarded(item: pytest.Item) -> Iterator[None]:
    _GUARD.seen.clear()
    _GUARD.active = True
    try:
        result = yield
    finally:
        _GUARD.active = False
    if _GUARD.seen:
        seen = "; ".join(dict.fromkeys(_GUARD.seen))
        pytest.fail(
            f"{item.nodeid} is in the pure tier (tests/unit) but made {seen}. "
            "Move it to the folder of what it needs (tests/cli, tests/adapters, "
            "tests/notebooks, ...): docs/TESTING.md",
            pytrace=False,
        )
    return result
