"""Fixtures shared by every test suite: loopback fake servers and a clean network env."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakes.server import FakeApp, FakeServer


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the developer's environment must never see test traffic.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def serve() -> Iterator[Callable[[FakeApp], FakeServer]]:
    """serve(app) starts a fake on a free 127.0.0.1 port; it is stopped after the test."""
    servers: list[FakeServer] = []

    def start(app: FakeApp) -> FakeServer:
        server = FakeServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
