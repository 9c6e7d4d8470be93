"""Stream a mart in Arrow record batches, from the dbt DuckDB file or from Parquet.

A source turns a mart name into a relation inside a DuckDB connection: the
DuckDB file is ATTACHed read-only, Parquet files are read with
`read_parquet`. Either way the rows come out through the same
`stream_batches`, a fixed number of rows at a time, so memory stays flat
whatever the size of the mart. Reading through DuckDB also lets `shipper.pending`
anti-join the mart against delivered keys without loading them into Python. The
long read runs in a DuckDB of its own (`open_reader`), never in the ledger's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import duckdb
import pyarrow as pa

from shipper.settings import ShipSettings

MART_ALIAS = "mart_source"


class MartError(Exception):
    """A mart cannot be read; the message is one sentence saying what to fix."""


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str,
              params: Mapping[str, object] | Sequence[object] | None = None,
              ) -> tuple[Any, ...] | None:
    """The first row of `sql`, with the result read to its end: a result left open
    (`fetchone`) keeps its transaction open, and an open transaction keeps DuckDB from
    checkpointing the ledger, whose memory then grows with every outcome written."""
    rows = con.execute(sql, params if params is not None else []).fetchall()
    return rows[0] if rows else None


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBSource:
    """Marts as tables (or views) of the dbt DuckDB database, opened read-only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def describe(self, mart: str) -> str:
        return f"{mart} in {self.path}"

    def relation(self, con: duckdb.DuckDBPyConnection, mart: str) -> str:
        if not self.path.is_file():
            raise MartError(
                f"there is no DuckDB file at {self.path}: build the marts with dbt or point "
                "DUCKDB_PATH at the database that holds them."
            )
        rows = con.execute(
            "select path from duckdb_databases() where database_name = ?", [MART_ALIAS]
        ).fetchall()
        attached = rows[0] if rows else None
        if attached is None:
            try:
                con.execute(
                    f"attach {quote_literal(str(self.path))} as {MART_ALIAS} (read_only)"
                )
            except duckdb.Error as exc:
                raise MartError(
                    f"cannot open {self.path} read-only ({_first_line(exc)}): make sure no "
                    "other process is writing it."
                ) from None
        elif Path(attached[0]).resolve() != self.path.resolve():
            raise MartError(f"another mart database ({attached[0]}) is already attached.")
        parts = [MART_ALIAS, *mart.split(".")] if "." in mart else [MART_ALIAS, "main", mart]
        relation = ".".join(quote_identifier(part) for part in parts)
        _probe(con, relation, f"{self.path} has no table {mart}: build the marts with dbt "
                              f"or fix the mart name in shipper.toml.")
        return relation


class ParquetSource:
    """Marts exported as Parquet: `<dir>/<mart>.parquet` or `<dir>/<mart>/*.parquet`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def describe(self, mart: str) -> str:
        return f"{mart} in {self.directory}"

    def files(self, mart: str) -> list[Path]:
        single = self.directory / f"{mart}.parquet"
        if single.is_file():
            return [single]
        folder = self.directory / mart
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def relation(self, con: duckdb.DuckDBPyConnection, mart: str) -> str:
        files = self.files(mart)
        if not files:
            raise MartError(
                f"no Parquet files for {mart}: export {mart}.parquet or {mart}/*.parquet "
                f"into {self.directory} or fix parquet_dir."
            )
        listing = ", ".join(quote_literal(str(path)) for path in files)
        relation = f"read_parquet([{listing}])"
        _probe(con, relation, f"cannot read the Parquet files of {mart} in {self.directory}.")
        return relation


MartSource = DuckDBSource | ParquetSource


def source_from_settings(ship: ShipSettings) -> MartSource:
    if ship.source == "parquet":
        return ParquetSource(ship.parquet_dir)
    return DuckDBSource(ship.duckdb_path)


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return list(con.sql(f"select * from {relation} limit 0").columns)


def check_columns(con: duckdb.DuckDBPyConnection, relation: str, mart: str,
                  required: Sequence[str]) -> None:
    present = set(columns_of(con, relation))
    missing = [column for column in required if column not in present]
    if missing:
        raise MartError(
            f"{mart} lacks column(s) {', '.join(missing)}: rebuild it to the contract in "
            "docs/marts.md."
        )


def open_reader(spill: Path, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """A DuckDB of its own (in memory) for a run's long read of a mart.

    A query that streams for the whole run must not hold a transaction in the
    ledger's database: while one does, DuckDB cannot checkpoint the ledger, so every
    outcome written meanwhile stays in memory (with its index) until the memory limit
    fails a commit on a long run (bench/HISTORY.md has the measurement). The reader
    attaches the mart itself (`MartSource.relation`), and `shipper.pending` hands it
    the pending rows as a Parquet file. `spill` is a folder for joins and sorts that
    outgrow `memory_limit` (the caller removes it; the loops put it beside the ledger,
    a `Ledger.scratch_path`, not in the cwd).
    """
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = false")
    # One thread: it streams while the ledger, the senders and Python need the
    # other cores (measured faster than DuckDB's default of one per core).
    con.execute("set threads = 1")
    con.execute(f"set temp_directory = {quote_literal(str(spill))}")
    if memory_limit:
        con.execute(f"set memory_limit = {quote_literal(memory_limit)}")
    return con


def stream_batches(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object] | None,
                   rows_per_batch: int) -> Iterator[pa.RecordBatch]:
    """Run `sql` and yield its result `rows_per_batch` rows at a time."""
    relation = con.sql(sql, params=dict(params) if params else None)
    if hasattr(relation, "to_arrow_reader"):
        reader = relation.to_arrow_reader(rows_per_batch)
    else:  # duckdb < 1.4
        reader = relation.fetch_record_batch(rows_per_batch)
    yield from reader


def prefetch(batches: Iterator[pa.RecordBatch], depth: int = 1) -> Iterator[pa.RecordBatch]:
    """Fetch the next record batches in a thread while the caller works on this one.

    DuckDB computes a streamed query as the caller fetches it, without the GIL: with
    the fetch in its own thread, DuckDB works on one core while Python works on the
    other. `depth` batches wait at most (each is a read batch's worth of memory).
    Close the returned generator (or run it to the end) to stop the thread.
    """
    queue: Queue[pa.RecordBatch | _Failed | object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                queue.put(batch)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller, raised there)
            queue.put(_Failed(exc))
        finally:
            queue.put(_END)

    thread = threading.Thread(target=produce, name="mart-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:  # unblock a producer waiting for room
                queue.get(timeout=0.1)
            except Empty:
                pass
        thread.join()


@dataclass(frozen=True)
class _Failed:
    exc: BaseException


_END = object()


def binary_views(array: pa.Array) -> list[memoryview]:
    """The values of a string or binary Arrow array as views of their UTF-8 bytes in its
    data buffer (no copies); a NULL is an empty view."""
    if not len(array):
        return []
    _validity, offsets_buffer, data_buffer = array.buffers()
    large = pa.types.is_large_binary(array.type) or pa.types.is_large_string(array.type)
    offsets = memoryview(offsets_buffer).cast(
        "q" if large else "i"
    )[array.offset:array.offset + len(array) + 1].tolist()
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    return [data[start:stop] for start, stop in pairwise(offsets)]


def stream_mart(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str],
                rows_per_batch: int) -> Iterator[pa.RecordBatch]:
    """Every row of a mart, only `columns`, in record batches."""
    selected = ", ".join(quote_identifier(column) for column in columns)
    return stream_batches(con, f"select {selected} from {relation}", None, rows_per_batch)


def _probe(con: duckdb.DuckDBPyConnection, relation: str, message: str) -> None:
    try:
        con.sql(f"select * from {relation} limit 0").fetchall()
    except duckdb.Error:
        raise MartError(message) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
