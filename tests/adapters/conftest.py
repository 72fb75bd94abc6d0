"""A real Prometheus for adapter tests: Debian's binary on a free 127.0.0.1 port, temp storage.

``start_prometheus(targets)`` starts one scraping the given targets every second and stops it
after the test module. Without the binary the tests skip ("apt-get install prometheus"); with
``CI=true`` they fail instead. Another test folder can reuse the fixtures with
``pytest_plugins`` in the root conftest, or build on ``runbook_sandbox.prometheus_server``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from runbook_sandbox.prometheus_server import (
    INSTALL_HINT,
    PrometheusServer,
    ScrapeTarget,
    free_port,
)
from runbook_sandbox.prometheus_server import (
    prometheus_binary as find_prometheus,
)

PrometheusFactory = Callable[[Sequence[ScrapeTarget]], PrometheusServer]


def require_prometheus() -> str:
    """The prometheus binary; skips (fails under CI=true) when it is not installed."""
    binary = find_prometheus()
    if binary is None:
        reason = f"no prometheus binary: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: Prometheus tests must run, not skip)")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the prometheus binary (skips, or fails under CI=true, without one)."""
    return require_prometheus()


@pytest.fixture(scope="module")
def start_prometheus(
    prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusFactory]:
    """Start Prometheus servers scraping the given targets; all are stopped after the module."""
    binary = prometheus_binary
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[ScrapeTarget]) -> PrometheusServer:
        server = PrometheusServer(
            port=free_port(),
            targets=targets,
            work_dir=tmp_path_factory.mktemp("prometheus"),
            binary=binary,
        )
        servers.append(server)
        server.start()
        for target in targets:
            server.wait_scraped(target.job)
        return server

    yield start
    for server in servers:
        server.stop()
