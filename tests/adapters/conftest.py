"""A real Prometheus for adapter tests: Debian's binary on a free 127.0.0.1 port, temp storage.

``start_prometheus(targets)`` starts one scraping the given targets every second and stops it
after the test module. Without the binary the tests skip ("apt-get install prometheus"); with
``CI=true`` they fail instead. Other test folders can reuse this: import ``require_prometheus``
and ``PrometheusFactory`` from here, or build on ``runbook_sandbox.prometheus_server``.
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
    prometheus_binary,
)

PrometheusFactory = Callable[[Sequence[ScrapeTarget]], PrometheusServer]


def require_prometheus() -> str:
    """The prometheus binary; skips (fails under CI=true) when it is not installed."""
    binary = prometheus_binary()
    if binary is None:
        reason = f"no prometheus binary: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: Prometheus tests must run, not skip)")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def start_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusFactory]:
    """Start Prometheus servers scraping the given targets; all are stopped after the module."""
    binary = require_prometheus()
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
