"""The ledger's DuckDB connection and what every part of the ledger shares: its lock,
transactions, reading rows as dicts, and the errors a ledger raises."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from shipper.reader import fetch_one

__all__ = ["STORAGE_ERRORS", "LedgerConnection", "LedgerError", "connect", "fetch_one",
           "first_line", "rollback", "set_memory_limit", "storage_problem", "transaction",
           "utcnow"]

# A row read back, by column name (ship status, tests); each value is of its column's SQL
# type, which DuckDB's rows do not carry (its own stubs type them Any).
Row = dict[str, Any]
Params = Mapping[str, object] | Sequence[object]


class LedgerError(Exception):
    """The ledger cannot be opened; one sentence saying what to do."""


# What the shipper's own storage raises when it fails during a run (a full disk, a file
# removed under the run, DuckDB out of memory): the destination stops, incomplete.
STORAGE_ERRORS = (duckdb.IOException, duckdb.TransactionException,
                  duckdb.OutOfMemoryException, OSError)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class LedgerConnection:
    """The one writer connection of a ledger, and the lock its writers take.

    The writing methods may be called from several threads (each sender thread
    records the batch it sent); the lock takes them one at a time. Readers use
    cursors of the connection.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the same database: stream from it while this one writes."""
        return self._con.cursor()

    def _dicts(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = self._con.cursor()
        try:
            result = cursor.execute(sql, params or {})
            names = [column[0] for column in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cursor.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction on `con`: committed when the block ends, rolled back on error."""
    con.execute("begin transaction")
    try:
        yield
        con.execute("commit")
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement, keeping that statement's error: a failed
    COMMIT has already ended the transaction, and the rollback's own error would hide
    the one that matters."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


def connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise LedgerError(
                f"the ledger {path} is in use by another ship process: wait for it to finish."
            ) from None
        raise LedgerError(
            f"cannot open the ledger {path} ({first_line(exc)}): check ledger_path."
        ) from None
    except duckdb.Error as exc:
        raise LedgerError(
            f"cannot open the ledger {path} ({first_line(exc)}): check ledger_path."
        ) from None


def set_memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Bound DuckDB's buffer pool; its hash joins spill to disk beyond it."""
    try:
        con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    except duckdb.Error as exc:
        raise LedgerError(
            f"duckdb_memory_limit {limit!r} is not a size DuckDB understands "
            f"({first_line(exc)}): use "
            "a value such as '1GB'."
        ) from None


def storage_problem(exc: BaseException) -> str:
    """One sentence for a failure of the shipper's own storage during a run: DuckDB out
    of memory, or the ledger or a scratch file that could not be written."""
    first = first_line(exc)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return (f"DuckDB ran out of memory ({first}): raise duckdb_memory_limit under [ship] "
                "(SHIP_DUCKDB_MEMORY_LIMIT) or lower read_batch_rows")
    return (f"the ledger or a scratch file beside it could not be written ({first}): check "
            "the disk space")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
