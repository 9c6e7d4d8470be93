"""The delivery ledger: what was sent where, what the platform said, and why.

A DuckDB file the shipper owns (`ledger_path`, env `SHIP_LEDGER_PATH`).
Analysts can query it directly:

deliveries   one row per (destination, delivery_key): the latest outcome.
    fingerprint       SHA-256 hex of the event as sent: of its canonical JSON (sorted
                      keys) when built row by row in Python, of its JSON bytes as
                      sent when built in SQL (Meta, TikTok)
    status            delivered | rejected | failed | expired (older than the
                      platform's hard age limit when the run reached it; never sent)
    rejected_by       validation (the shipper refused to send it) | platform
    attempts          HTTP requests that carried the row, retries included
    first_attempt_at  UTC, first time the row was handled
    last_attempt_at   UTC, latest time
    error             the reason for rejected / failed rows (platform message or rule)
    run_id            the run that wrote the row last
runs         one row per (run_id, destination): mode (live | dry_run), started_at,
             finished_at, status (running | ok | rejections | incomplete | interrupted)
             and the counts rows_read, rows_skipped, rows_sent, rows_accepted,
             rows_rejected, rows_failed, rows_expired.
rejections   view: the rejected rows with their reason.
platform_requests       one row per request a platform processes after answering it
             (Google Data Manager's requestId): run_id, sent_at, events, status (`sent`
             until the platform's processing status is read, then the platform's:
             PROCESSING, SUCCESS, PARTIAL_SUCCESS, FAILED; NOT_FOUND or NO_STATUS when it
             never gave one), checked_at, checks, reason (its errors and warnings).
platform_request_rows   which delivery_key travelled in which request.

Every batch is written in one transaction by the thread that sent it, as
soon as the platform answered and before that thread takes another batch, so
a `kill -9` at any point loses nothing: what was committed is known, and only
the batches on the wire at that moment (at most `concurrency`) are sent again
by the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa

from shipper.reader import fetch_one, quote_identifier, quote_literal
from shipper.redact import scrub

SCHEMA_VERSION = "3"

# DuckDB's memory limit while a rerun stages its pending rows (see stage_pending).
STAGING_MEMORY_LIMIT = "1GB"

_SCHEMA = """
create table if not exists ledger_info (
    key varchar primary key,
    value varchar not null
);
create table if not exists deliveries (
    destination varchar not null,
    delivery_key varchar not null,
    fingerprint varchar,
    status varchar not null check (status in ('delivered', 'rejected', 'failed', 'expired')),
    rejected_by varchar check (rejected_by in ('validation', 'platform')),
    attempts integer not null default 0,
    first_attempt_at timestamp not null,
    last_attempt_at timestamp not null,
    error varchar,
    run_id varchar,
    primary key (destination, delivery_key)
);
create table if not exists runs (
    run_id varchar not null,
    destination varchar not null,
    mode varchar not null,
    started_at timestamp not null,
    finished_at timestamp,
    status varchar not null,
    rows_read bigint not null default 0,
    rows_skipped bigint not null default 0,
    rows_sent bigint not null default 0,
    rows_accepted bigint not null default 0,
    rows_rejected bigint not null default 0,
    rows_failed bigint not null default 0,
    rows_expired bigint not null default 0,
    message varchar,
    primary key (run_id, destination)
);
create or replace view rejections as
select
    destination,
    delivery_key,
    rejected_by,
    error as reason,
    last_attempt_at as rejected_at,
    run_id
from deliveries
where status = 'rejected';
create table if not exists platform_requests (
    destination varchar not null,
    request_id varchar not null,
    run_id varchar,
    sent_at timestamp not null,
    events integer not null,
    status varchar not null,
    checked_at timestamp,
    checks integer not null default 0,
    reason varchar,
    primary key (destination, request_id)
);
create table if not exists platform_request_rows (
    destination varchar not null,
    request_id varchar not null,
    delivery_key varchar not null
);
"""

# platform_requests.status values that are final: the platform will say nothing more.
FINAL_REQUEST_STATUSES = ("SUCCESS", "PARTIAL_SUCCESS", "FAILED", "NOT_FOUND", "NO_STATUS")

_RECORD_SCHEMA = pa.schema([
    ("delivery_key", pa.string()),
    ("fingerprint", pa.string()),
    ("status", pa.string()),
    ("rejected_by", pa.string()),
    ("attempts", pa.int32()),
    ("error", pa.string()),
])


# Writing one batch's outcomes (Ledger.record): new keys, then keys seen before.
_INSERT = """
insert into deliveries (
    destination, delivery_key, fingerprint, status, rejected_by,
    attempts, first_attempt_at, last_attempt_at, error, run_id
)
select
    $destination, delivery_key, fingerprint, status, rejected_by,
    attempts, $now, $now, error, $run_id
from batch_records
"""
_UPSERT = _INSERT + """
on conflict (destination, delivery_key) do update set
    fingerprint = coalesce(excluded.fingerprint, deliveries.fingerprint),
    status = excluded.status,
    rejected_by = excluded.rejected_by,
    attempts = deliveries.attempts + excluded.attempts,
    last_attempt_at = excluded.last_attempt_at,
    error = excluded.error,
    run_id = excluded.run_id
"""


class LedgerError(Exception):
    """The ledger cannot be opened; one sentence saying what to do."""


# Built once: json.dumps with options builds a new encoder per call, and a run
# fingerprints every row.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False)


def fingerprint(event: Any) -> str:
    """SHA-256 hex of the canonical JSON (sorted keys, no spaces) of a wire payload."""
    return hashlib.sha256(_CANONICAL_JSON.encode(event).encode()).hexdigest()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class DeliveryRecord:
    """The outcome of one row, as written to `deliveries`."""

    delivery_key: str
    status: str  # delivered | rejected | failed
    fingerprint: str | None = None
    rejected_by: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class Outcomes:
    """The outcomes of many rows, column by column (one list per `deliveries` column):
    a batch of a thousand events costs a few lists, not a thousand objects."""

    keys: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # delivered | rejected | failed
    fingerprints: list[str | None] = field(default_factory=list)
    rejected_by: list[str | None] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, records: Iterable[DeliveryRecord]) -> Outcomes:
        outcomes = cls()
        for record in records:
            outcomes.append(record.delivery_key, record.status, record.fingerprint,
                            record.rejected_by, record.attempts, record.error)
        return outcomes

    def append(self, key: str, status: str, fingerprint: str | None, rejected_by: str | None,
               attempts: int, error: str | None) -> None:
        self.keys.append(key)
        self.statuses.append(status)
        self.fingerprints.append(fingerprint)
        self.rejected_by.append(rejected_by)
        self.attempts.append(attempts)
        self.errors.append(error)

    def extend(self, other: Outcomes) -> None:
        self.keys.extend(other.keys)
        self.statuses.extend(other.statuses)
        self.fingerprints.extend(other.fingerprints)
        self.rejected_by.extend(other.rejected_by)
        self.attempts.extend(other.attempts)
        self.errors.extend(other.errors)

    def records(self) -> list[DeliveryRecord]:
        return [DeliveryRecord(*values) for values in zip(
            self.keys, self.statuses, self.fingerprints, self.rejected_by, self.attempts,
            self.errors, strict=True)]


@dataclass
class RunCounts:
    read: int = 0
    skipped: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    expired: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, records: Iterable[DeliveryRecord] | Outcomes) -> None:
        outcomes = records if isinstance(records, Outcomes) else Outcomes.of(records)
        delivered = outcomes.statuses.count("delivered")
        self.accepted += delivered
        if delivered == len(outcomes):
            return
        for status, error in zip(outcomes.statuses, outcomes.errors, strict=True):
            if status == "rejected":
                self.count_rejection(error or "no reason given")
            elif status == "expired":
                self.expired += 1
            elif status != "delivered":
                self.failed += 1

    def count_rejection(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1


class Ledger:
    """Read and write the ledger file. One writer connection; readers use cursors of it.

    The writing methods may be called from several threads (each sender thread
    records the batch it sent); a lock takes them one at a time.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path, read_only: bool,
                 memory_limit: str | None = None) -> None:
        self._con = con
        self.path = path
        self.read_only = read_only
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._scratch: list[Path] = []
        self._scratch_dirs: list[Path] = []

    @classmethod
    def open(cls, path: str | Path, memory_limit: str | None = None) -> Ledger:
        """Open (creating if needed) for writing; runs left `running` are marked interrupted,
        and scratch files a killed run left beside the ledger are removed."""
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        con = _connect(path, read_only=False)
        # The ledger and its scratch files hold hashed identifiers: the owner's only.
        for owned in (path, path.with_name(path.name + ".wal")):
            if owned.exists():
                owned.chmod(0o600)
        _remove_scratch(path)
        try:
            if memory_limit:
                set_memory_limit(con, memory_limit)
            # No query of the shipper relies on an order it does not ask for, and keeping
            # it makes DuckDB buffer whole results (staging a rerun's pending rows).
            con.execute("set preserve_insertion_order = false")
            _migrate(con)
            con.execute(_SCHEMA)
            con.execute(
                "insert into ledger_info values ('schema_version', ?) on conflict do nothing",
                [SCHEMA_VERSION],
            )
            # Only one process can hold the file for writing, so a `running` row left
            # behind belongs to a process that died (kill -9, power loss).
            con.execute(
                "update runs set status = 'interrupted' where status = 'running'"
            )
        except duckdb.Error as exc:
            con.close()
            raise LedgerError(
                f"the ledger {path} cannot be read ({_first_line(exc)}): restore it (with its "
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
        return cls(_connect(path, read_only=True), path, read_only=True)

    def close(self) -> None:
        if not self.read_only:
            # What this run wrote goes into the main file now, not only the .wal.
            try:
                self._con.execute("checkpoint")
            except duckdb.Error:
                pass  # the close below still keeps what was committed
        self._con.close()
        for scratch in self._scratch:
            scratch.unlink(missing_ok=True)
        for directory in self._scratch_dirs:
            shutil.rmtree(directory, ignore_errors=True)

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB of its own (in memory, same memory limit) for a run's long read.

        A query that streams for the whole run must not hold a transaction in the
        ledger's database: while one does, DuckDB cannot checkpoint the ledger, so every
        outcome written meanwhile stays in memory (with its index) until the memory limit
        fails a commit, about 1.8 million events into a run with 128MB. The reader
        attaches the mart itself, and `stage_pending(..., reader=...)` hands it the
        ledger's state of the pending keys as a Parquet file.
        """
        con = duckdb.connect()
        con.execute("set preserve_insertion_order = false")
        # One thread: it streams while the ledger, the senders and Python need the
        # other cores (measured faster than DuckDB's default of one per core).
        con.execute("set threads = 1")
        # A join with many pending keys spills next to the ledger, not into the cwd.
        spill = self.path.with_name(f".{self.path.name}.reader.tmp")
        con.execute(f"set temp_directory = {quote_literal(str(spill))}")
        self._scratch_dirs.append(spill)
        if self.memory_limit:
            set_memory_limit(con, self.memory_limit)
        return con

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

    def last_live_rows_read(self, destination: str) -> int | None:
        """Rows the last live run of `destination` that completed read, or None."""
        row = fetch_one(self._con, 
            "select rows_read from runs where destination = ? and mode = 'live' "
            "and status in ('ok', 'rejections') order by started_at desc limit 1",
            [destination])
        return int(row[0]) if row else None

    def has_deliveries(self, destination: str) -> bool:
        row = fetch_one(self._con, 
            "select count(*) from (select 1 from deliveries where destination = ? and "
            "status = 'delivered' limit 1)", [destination])
        return bool(row and row[0])

    def scratch_path(self, suffix: str) -> Path:
        """A scratch file beside the ledger, removed when the ledger is closed."""
        path = self.path.with_name(f".{self.path.name}.{suffix}")
        self._scratch.append(path)
        return path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the same database: stream from it while this one writes."""
        return self._con.cursor()

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, run_id: str, destination: str, mode: str) -> None:
        with self._lock:
            self._con.execute(
                "insert into runs (run_id, destination, mode, started_at, status) "
                "values (?, ?, ?, ?, 'running')",
                [run_id, destination, mode, utcnow()],
            )

    def finish_run(self, run_id: str, destination: str, counts: RunCounts, status: str,
                   message: str | None = None) -> None:
        with self._lock:
            self._finish_run(run_id, destination, counts, status, message)

    def _finish_run(self, run_id: str, destination: str, counts: RunCounts, status: str,
                    message: str | None) -> None:
        self._con.execute("begin transaction")
        try:
            self._update_run(run_id, destination, counts)
            self._con.execute(
                "update runs set status = ?, finished_at = ?, message = ? "
                "where run_id = ? and destination = ?",
                [status, utcnow(), scrub(message) if message else None, run_id, destination],
            )
            self._con.execute("commit")
        except BaseException:
            _rollback(self._con)
            raise

    def _update_run(self, run_id: str, destination: str, counts: RunCounts) -> None:
        self._con.execute(
            "update runs set rows_read = ?, rows_skipped = ?, rows_sent = ?, rows_accepted = ?, "
            "rows_rejected = ?, rows_failed = ?, rows_expired = ? "
            "where run_id = ? and destination = ?",
            [counts.read, counts.skipped, counts.sent, counts.accepted, counts.rejected,
             counts.failed, counts.expired, run_id, destination],
        )

    # -- deliveries ------------------------------------------------------------------------

    def record(self, run_id: str, destination: str,
               records: Sequence[DeliveryRecord] | Outcomes,
               counts: RunCounts | None = None) -> None:
        """Write the outcome of one batch (and, if given, the run's counts) in one transaction.

        Pass `counts` every few seconds rather than every batch: the run's long read
        keeps old row versions alive, and rewriting the same `runs` row thousands
        of times makes each rewrite slower than the last.
        """
        outcomes = records if isinstance(records, Outcomes) else Outcomes.of(records)
        if not len(outcomes) and counts is None:
            return
        if len(set(outcomes.keys)) != len(outcomes):
            # The last outcome of a key wins should a mart repeat a key inside one batch.
            last = {key: index for index, key in enumerate(outcomes.keys)}
            outcomes = Outcomes.of(outcomes.records()[index] for index in sorted(last.values()))
        # A failed batch gives its thousand rows one reason: scrub each reason once.
        errors = {error: scrub(error)[:2000] for error in set(outcomes.errors) if error}
        error_column = ([errors.get(error) if error else None for error in outcomes.errors]
                        if errors else outcomes.errors)
        table = pa.Table.from_arrays(
            [
                pa.array(outcomes.keys, pa.string()),
                pa.array(outcomes.fingerprints, pa.string()),
                pa.array(outcomes.statuses, pa.string()),
                pa.array(outcomes.rejected_by, pa.string()),
                pa.array(outcomes.attempts, pa.int32()),
                pa.array(error_column, pa.string()),
            ],
            schema=_RECORD_SCHEMA,
        )
        params = {"destination": destination, "now": utcnow(), "run_id": run_id}
        with self._lock:
            # Most batches hold keys the ledger has never seen: a plain INSERT writes them.
            # DuckDB (2.0.1) keeps several kilobytes per INSERT ... ON CONFLICT statement,
            # conflict or not, and never frees them (compare duckdb/duckdb#25162): 60 MB
            # more at ten million events than at one million. So the upsert is only for a
            # batch whose plain insert meets a key the ledger already has.
            try:
                self._write_records(table, _INSERT, params, run_id, destination, counts)
            except duckdb.ConstraintException:
                self._write_records(table, _UPSERT, params, run_id, destination, counts)

    def _write_records(self, table: pa.Table, sql: str, params: dict[str, Any], run_id: str,
                       destination: str, counts: RunCounts | None) -> None:
        # Registered outside the transaction: a failed statement aborts the transaction,
        # and nothing, not even unregistering, runs in it until the rollback.
        self._con.register("batch_records", table)
        try:
            self._con.execute("begin transaction")
            try:
                if table.num_rows:
                    self._con.execute(sql, params)
                if counts is not None:
                    self._update_run(run_id, destination, counts)
                self._con.execute("commit")
            except BaseException:
                _rollback(self._con)
                raise
        finally:
            self._con.unregister("batch_records")

    # -- platform requests (answered at once, processed later: Google Data Manager) ----------

    def record_request(self, run_id: str, destination: str, request_id: str,
                       keys: Sequence[str]) -> None:
        """Remember the platform's id of one accepted request and the keys it carried, so
        its processing status can be asked for later and applied to those rows."""
        table = pa.Table.from_arrays([pa.array(list(keys), pa.string())],
                                     names=["delivery_key"])
        params = {"destination": destination, "request_id": request_id, "run_id": run_id,
                  "now": utcnow(), "events": len(keys)}
        with self._lock:
            self._con.register("request_keys", table)
            try:
                self._con.execute("begin transaction")
                try:
                    self._con.execute(
                        "insert into platform_requests (destination, request_id, run_id, "
                        "sent_at, events, status) values ($destination, $request_id, "
                        "$run_id, $now, $events, 'sent') on conflict do nothing", params)
                    self._con.execute(
                        "insert into platform_request_rows select $destination, $request_id, "
                        "delivery_key from request_keys",
                        {"destination": destination, "request_id": request_id})
                    self._con.execute("commit")
                except BaseException:
                    _rollback(self._con)
                    raise
            finally:
                self._con.unregister("request_keys")

    def requests_to_check(self, destination: str, *, sent_before: dt.datetime | None = None,
                          limit: int = 1000) -> list[dict[str, Any]]:
        """The destination's requests whose processing status is not final yet, oldest
        first (those sent before `sent_before`, when given)."""
        final = ", ".join(quote_literal(status) for status in FINAL_REQUEST_STATUSES)
        when = "and sent_at <= $sent_before" if sent_before is not None else ""
        params: dict[str, Any] = {"destination": destination}
        if sent_before is not None:
            params["sent_before"] = sent_before
        return self._dicts(
            f"select request_id, run_id, events, status, sent_at, checks "
            f"from platform_requests where destination = $destination "
            f"and status not in ({final}) {when} "
            f"order by sent_at, request_id limit {int(limit)}", params)

    def give_up_requests(self, destination: str, sent_before: dt.datetime,
                         reason: str) -> int:
        """Stop asking about requests sent before `sent_before` that never got a final
        status: they become NO_STATUS with `reason`. Returns how many."""
        final = ", ".join(quote_literal(status) for status in FINAL_REQUEST_STATUSES)
        with self._lock:
            row = fetch_one(self._con, f"""
                update platform_requests
                set status = 'NO_STATUS', reason = $reason, checked_at = $now
                where destination = $destination and status not in ({final})
                    and sent_at < $sent_before
            """, {"destination": destination, "reason": reason, "now": utcnow(),
                  "sent_before": sent_before})
        return int(row[0]) if row else 0

    def settle_request(self, destination: str, request_id: str, status: str,
                       reason: str | None, rows_status: str | None = None,
                       rows_reason: str | None = None) -> int:
        """Record the platform's processing status of a request and, with `rows_status`
        ('rejected' or 'failed'), give it to the rows that request delivered (those still
        delivered by that request's run), with `rows_reason`. Returns the rows changed."""
        now = utcnow()
        params = {"destination": destination, "request_id": request_id}
        with self._lock:
            self._con.execute("begin transaction")
            try:
                self._con.execute(
                    "update platform_requests set status = $status, reason = $reason, "
                    "checked_at = $now, checks = checks + 1 "
                    "where destination = $destination and request_id = $request_id",
                    {**params, "status": status, "now": now,
                     "reason": scrub(reason)[:2000] if reason else None})
                changed = 0
                if rows_status is not None:
                    row = fetch_one(self._con, """
                        update deliveries
                        set status = $rows_status,
                            rejected_by = case when $rows_status = 'rejected'
                                               then 'platform' end,
                            error = $rows_reason,
                            last_attempt_at = $now
                        where destination = $destination
                            and status = 'delivered'
                            and run_id = (
                                select run_id from platform_requests
                                where destination = $destination
                                    and request_id = $request_id)
                            and delivery_key in (
                                select delivery_key from platform_request_rows
                                where destination = $destination
                                    and request_id = $request_id)
                    """, {**params, "rows_status": rows_status, "now": now,
                          "rows_reason": scrub(rows_reason)[:2000] if rows_reason else None})
                    changed = int(row[0]) if row else 0
                self._con.execute("commit")
            except BaseException:
                _rollback(self._con)
                raise
        return changed

    def stage_pending(self, con: duckdb.DuckDBPyConnection, destination: str, relation: str,
                      columns: Sequence[str], resend_when_changed: bool,
                      reader: duckdb.DuckDBPyConnection | None = None,
                      ) -> tuple[str, int]:
        """Find the mart rows still to handle: SQL that streams them, and how many were skipped.

        The anti-join runs inside DuckDB, so ten million delivered keys never become
        Python objects. With `resend_when_changed` False (events) delivered keys are
        left out here; every row that comes through carries its ledger state
        (`__ledger_status`, `__ledger_fingerprint`, `__ledger_rejected_by`) so the
        caller can skip unchanged rows and resend changed ones.

        The keys to handle are staged in a temp table of `con` (it vanishes with
        `con`), so the streaming query joins the mart with that table only. Stream
        the returned SQL on the same `con`. With `reader` (`Ledger.reader()`, where
        the mart is attached under the same name) the pending rows themselves are
        written to a Parquet file instead, and the SQL, for `reader`, streams that
        file: the long stream then holds no transaction in the ledger's database,
        and needs no more memory than a scan.

        Two cases skip the staging, because the streaming query is the one thing in a
        run that lives long: when the ledger knows none of the mart's keys (a first
        run) the mart is streamed alone, and when nothing is pending the query reads
        no row. A long query that joins a temp table, and with it a writable
        database, keeps DuckDB from checkpointing the ledger until it ends: every
        batch recorded meanwhile stays in memory (and in the WAL), and the join's
        hash table grows with the pending rows. Streamed alone, a first run of ten
        million rows needs no more memory than one of a thousand.
        """
        keep = "" if resend_when_changed else (
            "where ledger.status is null or ledger.status <> 'delivered'"
        )
        ledger_state = ("__ledger_status", "__ledger_fingerprint", "__ledger_rejected_by")
        selected = ", ".join(f"mart.{quote_identifier(column)}" for column in columns)
        # One pass over the mart for the counts that decide how to stream it.
        total, known, delivered = con.execute(
            f"""
            select
                count(*),
                count(ledger.delivery_key),
                count(*) filter (where ledger.status = 'delivered')
            from {relation} as mart
            left join deliveries as ledger
                on ledger.destination = $destination
                and ledger.delivery_key = cast(mart.delivery_key as varchar)
            """,
            {"destination": destination},
        ).fetchall()[0]
        skipped = 0 if resend_when_changed else int(delivered)
        if known == 0 or skipped == total:
            no_state = ", ".join(f"cast(null as varchar) as {column}" for column in ledger_state)
            # A NULL key never matches in the join below, so it is not streamed here either.
            where = "false" if skipped == total else "mart.delivery_key is not null"
            sql = f"select {selected}, {no_state} from {relation} as mart where {where}"
            return sql, skipped

        if reader is not None:
            destination_literal = quote_literal(destination)
            if resend_when_changed:
                # Every key's state is needed (its fingerprint decides).
                state_rows, skip_delivered = "", ""
            else:
                # Delivered keys only leave rows out: the join that carries a state
                # (with its 64-character fingerprint) holds just the keys not delivered,
                # usually few, and the delivered ones go in an anti-join of bare keys.
                # One join holding every key with its state needs several times the
                # memory, more than a 64MB DuckDB has at a million keys.
                state_rows = "and status <> 'delivered'"
                skip_delivered = f"""
                    anti join (
                        select delivery_key from deliveries
                        where destination = {destination_literal} and status = 'delivered'
                    ) as delivered
                        on delivered.delivery_key = cast(mart.delivery_key as varchar)
                """
            # The pending rows themselves, with their state, to a Parquet file the reader
            # streams: no join in the reader, whose memory stays that of a plain scan,
            # and the long stream holds no transaction in the ledger's database.
            scratch = self.path.with_name(f".{self.path.name}.pending-{destination}.parquet")
            self._scratch.append(scratch)
            # A one-off query before the run, which a small memory limit fails with
            # millions of keys (DuckDB 2.0.1 does not spill all of it): one thread and
            # STAGING_MEMORY_LIMIT for it, then the run's own settings again.
            con.execute("set threads = 1")
            con.execute(f"set memory_limit = '{STAGING_MEMORY_LIMIT}'")
            try:
                con.execute(f"""
                copy (
                    select
                        {selected},
                        ledger.status as __ledger_status,
                        ledger.fingerprint as __ledger_fingerprint,
                        ledger.rejected_by as __ledger_rejected_by
                    from {relation} as mart
                    {skip_delivered}
                    left join (
                        select delivery_key, status, fingerprint, rejected_by
                        from deliveries
                        where destination = {destination_literal} {state_rows}
                    ) as ledger
                        on ledger.delivery_key = cast(mart.delivery_key as varchar)
                    where mart.delivery_key is not null
                ) to {quote_literal(str(scratch))} (format parquet, row_group_size 8192)
                """)
            finally:
                con.execute("reset threads")
                if self.memory_limit:
                    set_memory_limit(con, self.memory_limit)
                else:
                    con.execute("reset memory_limit")
            names = ", ".join(quote_identifier(column) for column in (*columns, *ledger_state))
            return f"select {names} from read_parquet({quote_literal(str(scratch))})", skipped

        staged = quote_identifier(f"pending_{destination}")
        con.execute(
            f"""
            create or replace temp table {staged} as
            select
                cast(mart.delivery_key as varchar) as delivery_key,
                ledger.status as __ledger_status,
                ledger.fingerprint as __ledger_fingerprint,
                ledger.rejected_by as __ledger_rejected_by
            from {relation} as mart
            left join deliveries as ledger
                on ledger.destination = {quote_literal(destination)}
                and ledger.delivery_key = cast(mart.delivery_key as varchar)
            {keep}
            """
        )
        sql = f"""
            select
                {selected},
                pending.__ledger_status,
                pending.__ledger_fingerprint,
                pending.__ledger_rejected_by
            from {relation} as mart
            join temp.{staged} as pending
                on pending.delivery_key = cast(mart.delivery_key as varchar)
        """
        return sql, skipped

    # -- reading back (ship status, tests) ------------------------------------------------------

    def recent_runs(self, destinations: Sequence[str] | None = None,
                    per_destination: int = 5) -> list[dict[str, Any]]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"""
            select * exclude (rank_in_destination)
            from (
                select
                    *,
                    row_number() over (
                        partition by destination order by started_at desc, run_id desc
                    ) as rank_in_destination
                from runs
                {filter_sql}
            )
            where rank_in_destination <= {int(per_destination)}
            order by destination, started_at desc, run_id desc
            """,
            params,
        )

    def rejections(self, destinations: Sequence[str] | None = None,
                   limit: int = 20) -> list[dict[str, Any]]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"select * from rejections {filter_sql} "
            f"order by destination, rejected_at desc, delivery_key limit {int(limit)}",
            params,
        )

    def rejection_counts(self, destinations: Sequence[str] | None = None,
                         ) -> list[dict[str, Any]]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"select destination, rejected_by, reason, count(*) as rows from rejections "
            f"{filter_sql} group by all order by destination, rows desc, reason",
            params,
        )

    def status_counts(self, destination: str) -> dict[str, int]:
        rows = self._con.execute(
            "select status, count(*) from deliveries where destination = ? group by status",
            [destination],
        ).fetchall()
        return {status: count for status, count in rows}

    def delivery(self, destination: str, key: str) -> dict[str, Any] | None:
        rows = self._dicts(
            "select * from deliveries where destination = $destination and delivery_key = $key",
            {"destination": destination, "key": key},
        )
        return rows[0] if rows else None

    def request_counts(self, destinations: Sequence[str] | None = None,
                       ) -> list[dict[str, Any]]:
        """Requests and their events by destination and processing status (none when the
        ledger predates the table: read-only, it is not migrated)."""
        filter_sql, params = _destination_filter(destinations)
        return self._dicts_if_table(
            f"select destination, status, count(*) as requests, sum(events) as events "
            f"from platform_requests {filter_sql} group by all "
            f"order by destination, status", params)

    def request_problems(self, destinations: Sequence[str] | None = None,
                         limit: int = 20) -> list[dict[str, Any]]:
        """The latest requests the platform did not (or not yet) process without error."""
        filter_sql, params = _destination_filter(destinations)
        return self._dicts_if_table(
            f"select * from (select destination, request_id, run_id, sent_at, events, status, "
            f"checked_at, reason from platform_requests {filter_sql}) "
            f"where status <> 'SUCCESS' order by destination, sent_at desc, request_id "
            f"limit {int(limit)}", params)

    def _dicts_if_table(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return self._dicts(sql, params)
        except duckdb.CatalogException:
            return []

    def _dicts(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        cursor = self._con.cursor()
        try:
            result = cursor.execute(sql, params or {})
            names = [column[0] for column in result.description]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cursor.close()


def _remove_scratch(path: Path) -> None:
    """Scratch files of earlier runs beside the ledger (a killed run leaves them)."""
    for scratch in path.parent.glob(f".{path.name}.*"):
        if scratch.is_dir():
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            scratch.unlink(missing_ok=True)


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a ledger written by an earlier version to SCHEMA_VERSION, in one transaction.

    1 -> 2: `deliveries.status` may be 'expired' (DuckDB cannot alter a CHECK
    constraint, so the table is rebuilt) and `runs` counts expired rows.
    2 -> 3: the tables `platform_requests` and `platform_request_rows` (created by
    _SCHEMA, which runs after this).
    """
    tables = {row[0] for row in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'"
    ).fetchall()}
    if "ledger_info" not in tables:
        return
    row = fetch_one(con, "select value from ledger_info where key = 'schema_version'")
    version = row[0] if row else SCHEMA_VERSION
    if version == SCHEMA_VERSION:
        return
    if version not in ("1", "2"):
        raise LedgerError(f"the ledger has schema version {version}, which this shipper does "
                          f"not know (it writes {SCHEMA_VERSION}): use a newer shipper.")
    con.execute("begin transaction")
    try:
        if version == "1":
            con.execute("drop view if exists rejections")
            con.execute("alter table deliveries rename to deliveries_v1")
            con.execute(_SCHEMA)
            con.execute("insert into deliveries select * from deliveries_v1")
            con.execute("drop table deliveries_v1")
            con.execute("alter table runs add column if not exists rows_expired bigint "
                        "default 0")
        # 2 -> 3 adds tables only: _SCHEMA creates them (here, or right after).
        con.execute(_SCHEMA)
        con.execute("update ledger_info set value = ? where key = 'schema_version'",
                    [SCHEMA_VERSION])
        con.execute("commit")
    except BaseException:
        _rollback(con)
        raise


# What the shipper's own storage raises when it fails during a run (a full disk, a file
# removed under the run, DuckDB out of memory): the destination stops, incomplete.
STORAGE_ERRORS = (duckdb.IOException, duckdb.TransactionException,
                  duckdb.OutOfMemoryException, OSError)


def storage_problem(exc: BaseException) -> str:
    """One sentence for a failure of the shipper's own storage during a run: DuckDB out
    of memory, or the ledger or a scratch file that could not be written."""
    first = _first_line(exc)
    if isinstance(exc, duckdb.OutOfMemoryException):
        return (f"DuckDB ran out of memory ({first}): raise duckdb_memory_limit under [ship] "
                "(SHIP_DUCKDB_MEMORY_LIMIT) or lower read_batch_rows")
    return (f"the ledger or a scratch file beside it could not be written ({first}): check "
            "the disk space")


def set_memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Bound DuckDB's buffer pool; its hash joins spill to disk beyond it."""
    try:
        con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    except duckdb.Error as exc:
        raise LedgerError(
            f"duckdb_memory_limit {limit!r} is not a size DuckDB understands "
            f"({_first_line(exc)}): use "
            "a value such as '1GB'."
        ) from None


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement, keeping that statement's error: a failed
    COMMIT has already ended the transaction, and the rollback's own error would hide
    the one that matters."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


def _destination_filter(destinations: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    if not destinations:
        return "", {}
    return "where destination in (select unnest($destinations))", {
        "destinations": list(destinations)
    }


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise LedgerError(
                f"the ledger {path} is in use by another ship process: wait for it to finish."
            ) from None
        raise LedgerError(
            f"cannot open the ledger {path} ({_first_line(exc)}): check ledger_path."
        ) from None
    except duckdb.Error as exc:
        raise LedgerError(
            f"cannot open the ledger {path} ({_first_line(exc)}): check ledger_path."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
