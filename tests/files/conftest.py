"""Fixtures of the file destination tests: marts built to docs/marts.md, a real sshd, helpers.

The shipper workspace (temp dir, clean env, fake clock) comes from
tests/shipper/conftest.py and the dbt build on the fixture data from
tests/sql/conftest.py; both are imported here so pytest offers their fixtures.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shipper import cli
from tests.fakes.sshd import (
    PASSPHRASE,
    CuttingProxy,
    OpenSSHServer,
    PasswordUser,
    create_password_user,
    remove_password_user,
)
from tests.shipper.conftest import Workspace, workspace  # noqa: F401 (a fixture)
from tests.shipper.marts import sha, write_mart
from tests.sql.conftest import AS_OF, DbtProject

# Column types of the file marts, as docs/marts.md (and the dbt contracts) define them:
# delivery_key, then the file's columns in file order under the file's header names.
CRITEO_SALES = {
    "delivery_key": "varchar",
    "event_id": "varchar",
    "event_timestamp": "varchar",
    "user_email": "varchar",
    "event_item_id": "varchar",
    "event_item_price": "decimal(18, 2)",
    "event_item_quantity": "integer",
    "event_currency": "varchar",
    "store_id": "varchar",
}
PINTEREST_CONVERSIONS_CSV = {
    "delivery_key": "varchar",
    "email": "varchar",
    "event_time": "bigint",
    "event_type": "varchar",
    "source_type": "varchar",
    "value": "decimal(18, 2)",
    "currency": "varchar",
    "order_id": "varchar",
    "quantity": "integer",
}
SNAPCHAT_CONVERSIONS_CSV = {
    "delivery_key": "varchar",
    "hashed_email": "varchar",
    "hashed_phone_number": "varchar",
    "event_type": "varchar",
    "timestamp": "varchar",
    "price": "decimal(18, 2)",
    "currency": "varchar",
    "transaction_id": "varchar",
    "item_ids": "varchar",
    "number_items": "integer",
}

MARTS = {
    "criteo": ("criteo_sales", CRITEO_SALES),
    "pinterest_file": ("pinterest_conversions_csv", PINTEREST_CONVERSIONS_CSV),
    "snapchat_file": ("snapchat_conversions_csv", SNAPCHAT_CONVERSIONS_CSV),
}


# One "now" for the whole session, so a row built twice is the same row.
NOW = int(time.time())


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def criteo_row(order: int, line: int = 1, **overrides: Any) -> dict[str, Any]:
    event_id = f"evt-{order:05d}"
    row = {
        "delivery_key": f"{event_id}:{line}",
        "event_id": event_id,
        "event_timestamp": iso(NOW - 3600 - order % 600),
        "user_email": sha(f"customer{order}@example.com"),
        "event_item_id": f"sku-{(order + line) % 13}",
        "event_item_price": f"{5 + order % 40}.{line:02d}",
        "event_item_quantity": 1 + line % 3,
        "event_currency": "USD",
        "store_id": f"store-{order % 4}",
    }
    row.update(overrides)
    return row


def pinterest_row(index: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "delivery_key": f"evt-{index:05d}",
        "email": sha(f"customer{index}@example.com"),
        "event_time": NOW - 3600 - index % 600,
        "event_type": "checkout",
        "source_type": "offline",
        "value": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "order_id": f"SO-{index}",
        "quantity": 1 + index % 4,
    }
    row.update(overrides)
    return row


def snapchat_row(index: int, **overrides: Any) -> dict[str, Any]:
    moment = NOW - 3600 - index % 600
    row: dict[str, Any] = {
        "delivery_key": f"evt-{index:05d}",
        "hashed_email": sha(f"customer{index}@example.com"),
        "hashed_phone_number": sha(f"1650555{index:04d}"),
        "event_type": "PURCHASE",
        "timestamp": iso(moment),
        "price": f"{10 + index % 90}.50",
        "currency": "EUR",
        "transaction_id": f"SO-{index}",
        "item_ids": "sku-1;sku-2",
        "number_items": 2,
    }
    row.update(overrides)
    return row


def read_rows(path: Path) -> list[list[str]]:
    """Every line of a CSV (gzip or not) as cells, the header first, as a spreadsheet would
    split them (RFC 4180)."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.fixture(scope="session")
def file_marts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtProject]:
    """The three file marts (and what they need) built by dbt from tests/fixtures/raw.

    Its own database and a selective build (no data tests: tests/sql runs those), so
    this costs a few seconds and never touches the database tests/sql builds.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    previous = os.environ.get("DUCKDB_PATH")
    project = DbtProject(tmp_path_factory.mktemp("dbt-file-marts"))
    try:
        result = project.invoke(
            "build", "--select",
            "+criteo_sales +pinterest_conversions_csv +snapchat_conversions_csv",
            "--exclude", "resource_type:test resource_type:unit_test")
        assert result.success, f"dbt build of the file marts failed: {result.exception}"
        yield project
    finally:
        if previous is None:
            os.environ.pop("DUCKDB_PATH", None)
        else:
            os.environ["DUCKDB_PATH"] = previous


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSSHServer]:
    """One real OpenSSH server for the session (skipped locally, failed in CI, without sshd)."""
    server = OpenSSHServer(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sftp_password_user(sshd: OpenSSHServer) -> Iterator[PasswordUser]:
    """A throwaway account with a password on this machine, for the real sshd (fails, never
    skips, when it cannot be made; removed at the end of the session)."""
    user = create_password_user()
    yield user
    remove_password_user(user)


class FileTests:
    """The shipper workspace plus what the file tests set up and inspect."""

    def __init__(self, ws: Workspace, request: pytest.FixtureRequest) -> None:
        self.ws = ws
        self.root = ws.root
        self._request = request
        self.proxies: list[CuttingProxy] = []

    @property
    def server(self) -> OpenSSHServer:
        return self._request.getfixturevalue("sshd")

    def env(self, **values: str) -> None:
        self.ws.env(**values)

    def mart(self, destination: str, rows: Iterable[Mapping[str, Any]],
             columns: Mapping[str, str] | None = None) -> None:
        """Write `destination`'s mart with these rows (and other `columns`, when given)."""
        table, contract = MARTS[destination]
        write_mart(self.ws.mart_path, table, columns or contract, rows)

    def build_log(self, mart: str, as_of: str, finished_at: str = "2026-11-28 05:00:00") -> None:
        """Record in the marts' database, as the project's on-run-end hook does (dbt_builds),
        that a successful `dbt build` for `as_of` built `mart`."""
        with duckdb.connect(str(self.ws.mart_path)) as con:
            con.execute("""
                create table if not exists dbt_builds (
                    invocation_id varchar, as_of varchar, finished_at timestamp,
                    node_name varchar, resource_type varchar, tested_model varchar,
                    status varchar, message varchar, command varchar)
            """)
            con.execute("insert into dbt_builds values (?, ?, ?, ?, 'model', ?, 'success', "
                        "null, 'build')", [f"build-{as_of}-{finished_at}", as_of, finished_at,
                                           mart, mart])

    def ship_at(self, when: str, *argv: str) -> int:
        """`ship` with the wall clock at `when` (ISO, UTC): a run on that day."""
        moment = dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()
        hooks = dataclasses.replace(self.ws.hooks, wallclock=lambda: moment)
        return cli.main(list(argv), hooks=hooks)

    def ship(self, *argv: str) -> int:
        return self.ws.ship(*argv)

    def sftp(self, destination: str = "criteo", *, key: str | None = "ed25519",
             port: int | None = None, known_hosts: str | None = None) -> Path:
        """Point `destination` at the real sshd (or a proxy `port`); return the remote folder."""
        server = self.server
        prefix = destination.upper()
        remote = server.root / f"{self._request.node.name}-{destination}"[:120]
        remote.mkdir(parents=True, exist_ok=True)
        port = port or server.port
        hosts = self.root / "known_hosts"
        hosts.write_text(known_hosts if known_hosts is not None
                         else server.known_hosts_line(port))
        self.env(**{
            f"{prefix}_TRANSPORT": "sftp",
            f"{prefix}_SFTP_HOST": server.host,
            f"{prefix}_SFTP_PORT": str(port),
            f"{prefix}_SFTP_USER": server.user,
            f"{prefix}_SFTP_REMOTE_DIR": str(remote),
            f"{prefix}_SFTP_KNOWN_HOSTS": str(hosts),
            f"{prefix}_CONNECT_TIMEOUT_SECONDS": "5",
            f"{prefix}_TIMEOUT_SECONDS": "5",
        })
        if key is not None:
            self.env(**{f"{prefix}_SFTP_KEY_PATH": str(server.client_keys[key].path)})
            if key.endswith("_encrypted"):
                self.env(**{f"{prefix}_SFTP_KEY_PASSPHRASE": PASSPHRASE})
        return remote

    def sftp_password(self, destination: str = "criteo") -> tuple[PasswordUser, Path]:
        """Point `destination` at the real sshd as the throwaway password account, the
        password in `<NAME>_SFTP_PASSWORD` (no key); return the account and its folder."""
        user: PasswordUser = self._request.getfixturevalue("sftp_password_user")
        self.sftp(destination, key=None)
        remote = user.folder(f"{self._request.node.name}-{destination}"[:120])
        prefix = destination.upper()
        self.env(**{f"{prefix}_SFTP_USER": user.name,
                    f"{prefix}_SFTP_REMOTE_DIR": str(remote),
                    f"{prefix}_SFTP_PASSWORD": user.password})
        return user, remote

    def proxy(self) -> CuttingProxy:
        proxy = CuttingProxy(self.server.port)
        self.proxies.append(proxy)
        return proxy

    def directory(self, destination: str) -> Path:
        target = self.root / "drop" / destination
        self.env(**{f"{destination.upper()}_TRANSPORT": "directory",
                    f"{destination.upper()}_DIRECTORY": str(target)})
        return target

    @staticmethod
    def listing(folder: Path) -> list[str]:
        """Every entry of a folder, hidden (temporary) files included."""
        return sorted(os.listdir(folder)) if folder.is_dir() else []

    def files_table(self, destination: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.ws.ledger_path), read_only=True) as con:
            # Asked of a missing table, DuckDB would scan Python variables named `files`.
            if not con.execute("select 1 from duckdb_tables() where table_name = 'files'"
                               ).fetchall():
                return []
            result = con.execute(
                "select * from files where destination = ? order by started_at, part",
                [destination])
            names = [column[0] for column in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

    def statuses(self, destination: str) -> dict[str, int]:
        return self.ws.statuses(destination)


@pytest.fixture
def files(workspace: Workspace, request: pytest.FixtureRequest) -> Iterator[FileTests]:  # noqa: F811
    helper = FileTests(workspace, request)
    yield helper
    for proxy in helper.proxies:
        proxy.close()


__all__ = ["AS_OF", "CRITEO_SALES", "MARTS", "FileTests", "criteo_row", "pinterest_row", "read_rows",
           "snapchat_row"]
