"""Fixtures of the shipper tests: a workspace (temp config, mart, ledger, fakes), a fake clock."""

from __future__ import annotations

import os
import random
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipper import cli, destinations
from shipper.delivery import Hooks
from shipper.ledger import Ledger
from tests.fakes import FakeMeta, FakeServer, FakeTikTok

# Re-exported: other suites (tests/files) build their marts with these helpers.
from tests.shipper.marts import (  # noqa: F401
    META_CONVERSIONS,
    META_TOKEN,
    META_USER_KEYS,
    TIKTOK_CONVERSIONS,
    TIKTOK_TOKEN,
    meta_row,
    sha,
    tiktok_row,
    write_mart,
)


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@dataclass
class Workspace:
    root: Path
    monkeypatch: pytest.MonkeyPatch
    clock: FakeClock
    hooks: Hooks
    servers: Callable[..., FakeServer]
    fakes: dict[str, Any] = field(default_factory=dict)

    @property
    def mart_path(self) -> Path:
        return self.root / "marts.duckdb"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.duckdb"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def config_path(self) -> Path:
        return self.root / "shipper.toml"

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def meta_mart(self, rows: Iterable[Mapping[str, Any]]) -> None:
        write_mart(self.mart_path, "meta_conversions", META_CONVERSIONS, rows)

    def tiktok_mart(self, rows: Iterable[Mapping[str, Any]]) -> None:
        write_mart(self.mart_path, "tiktok_conversions", TIKTOK_CONVERSIONS, rows)

    def meta(self, **options: Any) -> FakeMeta:
        """Start a fake Meta and point the shipper at it (token, base URL, dataset)."""
        options.setdefault("token", META_TOKEN)
        fake = FakeMeta(**options)
        server = self.servers(fake)
        self.env(META_BASE_URL=server.url, META_ACCESS_TOKEN=fake.token,
                 META_DATASET_ID=fake.dataset_id)
        self.fakes["meta"] = fake
        return fake

    def tiktok(self, **options: Any) -> FakeTikTok:
        options.setdefault("token", TIKTOK_TOKEN)
        fake = FakeTikTok(**options)
        server = self.servers(fake)
        self.env(TIKTOK_BASE_URL=server.url, TIKTOK_ACCESS_TOKEN=fake.token,
                 TIKTOK_EVENT_SOURCE_ID=fake.event_source_id)
        self.fakes["tiktok"] = fake
        return fake

    def ship(self, *argv: str) -> int:
        """Run the real `ship` in-process with the fake clock."""
        return cli.main(list(argv), hooks=self.hooks)

    def ledger(self) -> Ledger:
        ledger = Ledger.open_read_only(self.ledger_path)
        assert ledger is not None, "no ledger was written"
        return ledger

    def statuses(self, destination: str) -> dict[str, int]:
        with self.ledger() as ledger:
            return ledger.status_counts(destination)


TEST_CONFIG = """\
[ship]
source = "duckdb"
ledger_path = "ledger.duckdb"
outbox_dir = "outbox"
read_batch_rows = 700

[destinations.meta]
api_version = "v26.0"
dataset_id = "4242"
timeout_seconds = 5
give_up_after_seconds = 120
concurrency = 2

[destinations.tiktok]
event_source_id = "ESID123"
timeout_seconds = 5
give_up_after_seconds = 120
concurrency = 2
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              serve: Callable[..., FakeServer]) -> Iterator[Workspace]:
    """A temp directory with a test config, a mart file path and a clean environment."""
    prefixes = tuple(f"{name.upper()}_" for name in destinations.known_names()) + ("SHIP_",)
    for name in list(os.environ):
        if name.startswith(prefixes) or name == "DUCKDB_PATH":
            monkeypatch.delenv(name)
    (tmp_path / "shipper.toml").write_text(textwrap.dedent(TEST_CONFIG))
    monkeypatch.setenv("SHIP_CONFIG", str(tmp_path / "shipper.toml"))
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "marts.duckdb"))
    monkeypatch.chdir(tmp_path)
    clock = FakeClock()
    hooks = Hooks(clock=clock.monotonic, sleep=clock.sleep, rng=random.Random(20261128))
    yield Workspace(tmp_path, monkeypatch, clock, hooks, serve)
