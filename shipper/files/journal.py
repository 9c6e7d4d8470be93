"""What the ledger knows about files: the tables `files` and `file_rows`.

files        one row per file a live run started: file_id (<destination>:<run_id>:<part>),
             destination, run_id, part, as_of, file_name, transport, location,
             rows, bytes (on disk, compressed when gzip), sha256, attempts (uploads
             tried), status, temporary_removed, started_at, finished_at, error.
             status: writing -> uploading -> uploaded -> delivered, or failed,
             abandoned (a run died before its upload started or finished and the
             file is not on the server), duplicate (same SHA-256 as a file already
             delivered; not uploaded again without --force).
file_rows    (file_id, delivery_key, fingerprint): the rows a file carried. Kept for
             delivered files (which file took an order to Criteo?); removed for
             failed, abandoned and duplicate files (their rows go in a later
             file, or went in an earlier one).

The rows of a file are recorded in `file_rows` while it is written, before its
upload starts. The file is `uploading` during the upload, `uploaded` once the
server holds it under its final name, then its rows are written to
`deliveries` as delivered (in chunks, through `Ledger.record`) and it becomes
`delivered`. A run killed at any point leaves a status the next run resolves:

  writing     nothing was uploaded: abandoned, its rows are pending again;
  uploading   the server is asked: the final name with the recorded size means
              the upload finished (the file becomes uploaded), otherwise its
              temporary file is removed and it is abandoned;
  uploaded    its rows are recorded as delivered.

So rows are sent twice only when the platform removed the file from the
server between the kill and the next run (a pick-up); then the duplicates are
the rows of that one file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from shipper.ledger import Ledger, utcnow
from shipper.ledger.connection import transaction
from shipper.outcomes import Outcomes, RunCounts
from shipper.redact import scrub

UNFINISHED = ("writing", "uploading", "uploaded")
CHUNK_ROWS = 10_000

_ROWS_SCHEMA = pa.schema([("delivery_key", pa.string()), ("fingerprint", pa.string())])

# A file's recorded rows, a chunk at a time: their keys and their fingerprints.
Chunk = tuple[list[str], list[str | None]]
# A row of `files`, by column name; each value is of its column's SQL type (DuckDB's rows
# are typed Any).
FileRecord = dict[str, Any]


class FileJournal:
    """The file tables for one destination in one run (a cursor of the ledger's database,
    whose schema, `shipper.ledger.schema`, holds the tables)."""

    def __init__(self, ledger: Ledger, destination: str, run_id: str) -> None:
        self.ledger = ledger
        self.destination = destination
        self.run_id = run_id
        self._con = ledger.cursor()

    def close(self) -> None:
        self._con.close()

    # -- a file of this run ------------------------------------------------------------------

    def start_file(self, file_id: str, part: int, as_of: str, transport: str) -> None:
        self._con.execute(
            "insert into files (file_id, destination, run_id, part, as_of, transport, status, "
            "started_at) values (?, ?, ?, ?, ?, ?, 'writing', ?)",
            [file_id, self.destination, self.run_id, part, as_of, transport, utcnow()],
        )

    def add_rows(self, file_id: str, rows: Sequence[tuple[str, str | None]]) -> None:
        if not rows:
            return
        table = pa.Table.from_pylist(
            [{"delivery_key": key, "fingerprint": print_} for key, print_ in rows],
            schema=_ROWS_SCHEMA,
        )
        self._con.register("file_row_chunk", table)
        try:
            self._con.execute(
                "insert into file_rows select ?, delivery_key, fingerprint from file_row_chunk",
                [file_id],
            )
        finally:
            self._con.unregister("file_row_chunk")

    def file_written(self, file_id: str, name: str, location: str, rows: int, size: int,
                     sha256: str) -> None:
        """The file is complete on local disk; from now on the server may hold it."""
        self._con.execute(
            "update files set file_name = ?, location = ?, rows = ?, bytes = ?, sha256 = ?, "
            "status = 'uploading' where file_id = ?",
            [name, location, rows, size, sha256, file_id],
        )

    def mark_uploaded(self, file_id: str, location: str, attempts: int) -> None:
        """The server holds the whole file under its final name."""
        self._con.execute(
            "update files set status = 'uploaded', location = ?, attempts = attempts + ? "
            "where file_id = ?",
            [location, attempts, file_id],
        )

    def mark_delivered(self, file_id: str, run_id: str, attempts: int,
                       counts: RunCounts | None) -> int:
        """Record the file's rows as delivered, then the file; returns the row count."""
        total = self._record_delivered(file_id, run_id, attempts, counts)
        self._con.execute(
            "update files set status = 'delivered', finished_at = ?, error = null "
            "where file_id = ?",
            [utcnow(), file_id],
        )
        return total

    def _record_delivered(self, file_id: str, run_id: str, attempts: int,
                          counts: RunCounts | None) -> int:
        total = 0
        for keys, prints in self._rows(file_id):
            self.ledger.record(run_id, self.destination,
                               Outcomes.same(keys, prints, "delivered", attempts), counts)
            total += len(keys)
        return total

    def mark_failed(self, file_id: str, run_id: str, reason: str, attempts: int,
                    counts: RunCounts | None) -> None:
        """The upload gave up: its rows are failed (sent again next run), the file too."""
        # A row delivered before (a --force run) stays delivered.
        for keys, prints in self._rows(file_id, undelivered_only=True):
            self.ledger.record(run_id, self.destination,
                               Outcomes.same(keys, prints, "failed", attempts, reason), counts)
        self._finish(file_id, "failed", reason, attempts)

    def mark_abandoned(self, file_id: str, reason: str) -> None:
        self._finish(file_id, "abandoned", reason, 0)

    def mark_duplicate(self, file_id: str, run_id: str, name: str, sha256: str, rows: int,
                       same_as: str, counts: RunCounts | None) -> None:
        """Same bytes as a delivered file: record its rows as delivered, upload nothing."""
        self._record_delivered(file_id, run_id, 0, counts)
        self._con.execute(
            "update files set file_name = ?, sha256 = ?, rows = ?, finished_at = ? "
            "where file_id = ?",
            [name, sha256, rows, utcnow(), file_id],
        )
        self._finish(file_id, "duplicate", f"same content as {same_as}, already delivered", 0)

    def temporary_removed(self, file_id: str) -> None:
        self._con.execute("update files set temporary_removed = true where file_id = ?",
                          [file_id])

    def _finish(self, file_id: str, status: str, reason: str, attempts: int) -> None:
        with transaction(self._con):
            self._con.execute(
                "update files set status = ?, finished_at = ?, error = ?, "
                "attempts = attempts + ? where file_id = ?",
                [status, utcnow(), scrub(reason)[:2000], attempts, file_id],
            )
            self._con.execute("delete from file_rows where file_id = ?", [file_id])

    def _rows(self, file_id: str, undelivered_only: bool = False,
              ) -> Iterator[Chunk]:
        cursor = self.ledger.cursor()
        keep = ("and not exists (select 1 from deliveries where deliveries.destination = ? "
                "and deliveries.delivery_key = file_rows.delivery_key "
                "and deliveries.status = 'delivered')") if undelivered_only else ""
        params = [file_id, self.destination] if undelivered_only else [file_id]
        try:
            result = cursor.execute(
                f"select delivery_key, fingerprint from file_rows where file_id = ? {keep} "
                "order by delivery_key", params)
            while chunk := result.fetchmany(CHUNK_ROWS):
                yield [str(key) for key, _ in chunk], [print_ for _, print_ in chunk]
        finally:
            cursor.close()

    # -- earlier runs ------------------------------------------------------------------------

    def unfinished(self) -> list[FileRecord]:
        """Files of this destination a run left mid-way (killed, power loss), oldest first."""
        return self._dicts(
            "select * from files where destination = ? and status in ('writing', 'uploading', "
            "'uploaded') and run_id <> ? order by started_at, file_id",
            [self.destination, self.run_id],
        )

    def temporaries_left(self) -> list[FileRecord]:
        """Failed or abandoned uploads whose temporary file may still be on the server."""
        return self._dicts(
            "select * from files where destination = ? and status in ('failed', 'abandoned') "
            "and file_name is not null and not temporary_removed and run_id <> ? "
            "order by started_at",
            [self.destination, self.run_id],
        )

    def delivered_with_checksum(self, sha256: str) -> FileRecord | None:
        rows = self._dicts(
            "select * from files where destination = ? and sha256 = ? and status = 'delivered' "
            "order by finished_at desc limit 1",
            [self.destination, sha256],
        )
        return rows[0] if rows else None

    def files_of_run(self) -> list[FileRecord]:
        return self._dicts(
            "select * from files where destination = ? and run_id = ? order by part",
            [self.destination, self.run_id],
        )

    def _dicts(self, sql: str, params: list[object]) -> list[FileRecord]:
        result = self._con.execute(sql, params)
        names = [column[0] for column in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

