"""`Ledger`: the ledger file opened, its parts together, its scratch files and marker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Self

import duckdb

from shipper.ledger.connection import LedgerError, connect, first_line, set_memory_limit
from shipper.ledger.queries import StatusQueries
from shipper.ledger.requests import RequestLog
from shipper.ledger.schema import create as create_schema
from shipper.ledger.store import OutcomeStore


class Ledger(OutcomeStore, RequestLog, StatusQueries):
    """Read and write the ledger file. One writer connection; readers use cursors of it.

    The parts share that connection and its lock: `OutcomeStore` (runs, outcomes),
    `RequestLog` (platform requests processed later), `StatusQueries` (reading back).
    This class opens and closes the file, and owns what lies beside it: scratch files
    and the `.delivered` marker.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool,
                 memory_limit: str | None = None) -> None:
        super().__init__(con)
        self.path = path
        self.read_only = read_only
        self.memory_limit = memory_limit
        self._scratch: list[Path] = []

    @classmethod
    def open(cls, path: str | Path, memory_limit: str | None = None) -> Ledger:
        """Open (creating if needed) for writing; runs left `running` are marked interrupted,
        and scratch files a killed run left beside the ledger are removed."""
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(path, read_only=False)
        # The ledger and its scratch files hold hashed identifiers: the owner's only.
        for owned in (path, path.with_name(path.name + ".wal")):
            if owned.exists():
                owned.chmod(0o600)
        for scratch in path.parent.glob(f".{path.name}.*"):
            _remove(scratch)  # what a killed run left
        try:
            if memory_limit:
                set_memory_limit(con, memory_limit)
            # No query of the shipper relies on an order it does not ask for, and keeping
            # it makes DuckDB buffer whole results (staging a rerun's pending rows).
            con.execute("set preserve_insertion_order = false")
            create_schema(con)
        except duckdb.Error as exc:
            con.close()
            raise LedgerError(
                f"the ledger {path} cannot be read ({first_line(exc)}): restore it (with its "
                ".wal) from a backup, or move it aside and run with --first-run."
            ) from None
        except Exception:
            con.close()
            raise
        return cls(con, path, read_only=False, memory_limit=memory_limit)

    @classmethod
    def open_read_only(cls, path: str | Path) -> Ledger | None:
        """Open for `ship status`; None when no ledger exists yet."""
        path = Path(path)
        if not path.is_file():
            return None
        return cls(connect(path, read_only=True), path, read_only=True)

    def close(self) -> None:
        if not self.read_only:
            # What this run wrote goes into the main file now, not only the .wal.
            try:
                self._con.execute("checkpoint")
            except duckdb.Error:
                pass  # the close below still keeps what was committed
        self._con.close()
        for scratch in self._scratch:
            _remove(scratch)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scratch_path(self, suffix: str) -> Path:
        """A scratch file (or folder) beside the ledger, removed when the ledger is closed."""
        path = self.path.with_name(f".{self.path.name}.{suffix}")
        self._scratch.append(path)
        return path

    # -- the marker: which destinations have delivered from this ledger ----------------

    @property
    def marker_path(self) -> Path:
        """Beside the ledger, and kept when the ledger is lost: a new, empty ledger where
        one of these destinations delivered before would send everything again."""
        return self.path.with_name(self.path.name + ".delivered")

    def delivered_before(self) -> set[str]:
        try:
            return set(json.loads(self.marker_path.read_text()))
        except (OSError, ValueError, TypeError):
            return set()

    def note_delivered(self, destination: str) -> None:
        names = self.delivered_before()
        if destination in names:
            return
        # Not `<ledger>.tmp`: DuckDB spills into a folder of that name.
        temporary = self.marker_path.with_name(self.marker_path.name + ".new")
        temporary.write_text(json.dumps(sorted(names | {destination})) + "\n")
        temporary.replace(self.marker_path)


def _remove(scratch: Path) -> None:
    if scratch.is_dir():
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        scratch.unlink(missing_ok=True)
