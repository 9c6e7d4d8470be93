"""The loop every REST destination shares.

stage: the ledger and the mart, joined in DuckDB, say which rows are pending
       (shipper.pending): delivered rows are skipped there, without reading them
  -> read the pending rows (delivery_key, payload, fingerprint, expired) in Arrow
     record batches; a thread fetches the next one while this one is handled
  -> expired: older than the platform's hard age limit now; recorded, not sent
  -> prepare: the module's step before sending, if it has one (UID2 mapping)
  -> batch (the destination's batch_size, and its request byte limit if any)
  -> send (`concurrency` sender threads, rate-limited, retried in http.py); a
     batch the platform refuses as a whole is split in halves, recursively,
     until the bad events are alone and the good ones land
  -> record: the sender thread writes its batch's outcomes to the ledger before
     it takes another batch.

So the only rows a `kill -9` can cause to be sent twice are those of the
`concurrency` batches on the wire at that moment (platforms also deduplicate on
their event ids).

`--dry-run` goes through the same stage, read, prepare and batch steps but
writes each request body to OUTBOX/<destination>/<run_id>-<batch_no>.json and
writes nothing to `deliveries`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, cast

import duckdb
import pyarrow as pa

from shipper import pending
from shipper.batching import Batcher
from shipper.destinations.base import (
    EVENTS,
    Payload,
    PrepareContext,
    PrepareError,
    Rows,
)
from shipper.hooks import Hooks
from shipper.http import RetryingSession
from shipper.ledger import STORAGE_ERRORS, Outcomes, RunCounts, storage_problem
from shipper.reader import (
    MartError,
    binary_views,
    check_columns,
    fetch_one,
    open_reader,
    prefetch,
    stream_batches,
)
from shipper.redact import get_logger, scrub
from shipper.report import DestinationReport, RunContext
from shipper.sender_pool import SenderPool, Sent
from shipper.sending import BatchResult, HttpSender, OutboxWriter, all_rows, fingerprints

if TYPE_CHECKING:
    from shipper.destinations.rest import RestDestination

__all__ = ["DestinationReport", "Hooks", "HttpSender", "OutboxWriter", "payload_problems",
           "ship_destination"]

log = get_logger(__name__)

# How often a live run refreshes its counts in `runs` (they are final at the end).
COUNTS_EVERY_SECONDS = 5.0


def ship_destination(destination: RestDestination, context: RunContext) -> DestinationReport:
    """Ship one destination's mart; the report says what happened."""
    name = destination.name
    ledger = context.ledger
    report = DestinationReport(name, "dry_run" if context.dry_run else "live")
    ledger.start_run(context.run_id, name, report.mode)
    interrupted = False
    try:
        _ship(destination, context, report)
    except (MartError, PrepareError) as exc:
        report.problem = str(exc)
        log.error("%s: %s", name, exc)
    except KeyboardInterrupt:
        interrupted = True
        raise
    # A full disk, a file removed under the run, DuckDB out of memory: this destination
    # stops, incomplete, and the others still run.
    except STORAGE_ERRORS as exc:
        report.problem = scrub(storage_problem(exc))
        log.error("%s: %s", name, report.problem)
    except Exception as exc:  # a bug: this destination stops, recorded as incomplete
        report.problem = scrub(f"internal error: {type(exc).__name__}: {exc}")
        log.exception("%s: stopped by an unexpected error", name)
    finally:
        context.progress.update(name, report.counts, final=True)
        status = "interrupted" if interrupted else report.status
        ledger.finish_run(context.run_id, name, report.counts, status, report.problem)
    return report


def _ship(destination: RestDestination, context: RunContext, report: DestinationReport) -> None:
    """Check the mart, open the prepare step and the sender, run the shipment."""
    name = destination.name
    ledger = context.ledger
    cursor = ledger.cursor()
    # The mart is streamed from a DuckDB of its own, spilling beside the ledger, with the
    # mart attached there too.
    reader = open_reader(ledger.scratch_path("reader.tmp"), ledger.memory_limit)
    session: RetryingSession | None = None
    try:
        mart = destination.settings.mart
        relation = context.source.relation(cursor, mart)
        check_columns(cursor, relation, mart, destination.columns)
        if context.source.relation(reader, mart) != relation:
            raise MartError(f"{mart} reads differently in the reader: a bug, please report it.")
        destination.open_prepare(PrepareContext(ledger, context.run_id, context.dry_run,
                                                context.outbox_dir / name, context.hooks))
        if context.dry_run:
            outbox = OutboxWriter(destination, context.outbox_dir, context.run_id)
            _Shipment(destination, context, report, outbox=outbox).run(cursor, reader, relation)
            report.outbox_files = outbox.files
        else:
            session = RetryingSession.for_destination(name, destination.settings,
                                                      hooks=destination.attempt_hooks(),
                                                      **context.hooks.for_session())
            sender = HttpSender(destination, session, sleep=context.hooks.sleep)
            _Shipment(destination, context, report, sender=sender).run(cursor, reader, relation)
    finally:
        destination.close_prepare()
        if session is not None:
            session.close()
        cursor.close()
        reader.close()


class _Shipment:
    """One destination's pass over its pending rows: read -> batch -> send -> record.

    The main thread reads and batches; the sender threads (`shipper.sender_pool`)
    each send one batch and write its outcomes to the ledger. Only the main thread
    touches the counts and the report.
    """

    def __init__(self, destination: RestDestination, context: RunContext,
                 report: DestinationReport, *, sender: HttpSender | None = None,
                 outbox: OutboxWriter | None = None) -> None:
        self.destination = destination
        self.name = destination.name
        self.context = context
        self.ledger = context.ledger
        self.report = report
        self.counts = report.counts
        self.sender = sender
        self.outbox = outbox
        self.pool: SenderPool | None = None
        self.counts_written_at = time.monotonic()
        byte_limit = destination.request_byte_limit()
        envelope_bytes = len(destination.build_request([]).body or b"") if byte_limit else 0
        self.batcher = Batcher(destination.settings.batch_size, byte_limit, envelope_bytes)

    def run(self, cursor: duckdb.DuckDBPyConnection, reader: duckdb.DuckDBPyConnection,
            relation: str) -> None:
        scratch = self.ledger.scratch_path(f"pending-{self.name}.parquet")
        staged = pending.stage(cursor, self.destination, relation, self.destination.now(),
                               scratch, self.ledger.memory_limit)
        counts = self.counts
        counts.read, counts.skipped = staged.total, staged.skipped
        for _ in range(staged.missing_key):
            counts.count_rejection("delivery_key is missing")
        self.context.progress.start(self.name, counts)
        if self.sender is not None:
            self.pool = SenderPool(self.name, self.destination.settings.concurrency,
                                   self._deliver)
        batches = prefetch(stream_batches(reader, staged.sql, None,
                                          self.context.read_batch_rows))
        try:
            self._read_all(batches)
        finally:
            _close(batches)
            if self.pool is not None:
                try:
                    self._settle(self.pool.drain())
                finally:
                    self.pool.close()

    def _read_all(self, batches: Iterator[pa.RecordBatch]) -> None:
        for record_batch in batches:
            self._take(record_batch)
            if self.report.problem:
                return
        last = self.batcher.flush()
        if last is not None:
            self._dispatch(last)

    def _take(self, record_batch: pa.RecordBatch) -> None:
        """One read batch: record the expired and unsendable rows, prepare and batch
        the others."""
        rows, expired, problems = _rows_of(record_batch, self.destination.extra_columns)
        if len(expired):
            self.counts.expired += len(expired)
            self._record_now(all_rows(expired, "expired", self.destination.expired_reason, 0))
        if problems:
            rows = self._refuse(rows, problems)
        if self.destination.rewrites_payloads:
            rows.fingerprints = fingerprints(rows, [True] * len(rows))
        reasons = self.destination.prepare(rows)
        if any(reasons):
            rows = self._refuse(rows, reasons)
        for batch in self.batcher.add(rows):
            self._dispatch(batch)
            if self.report.problem:
                return

    def _refuse(self, rows: Rows, reasons: Sequence[str | None]) -> Rows:
        """Record the rows with a reason as rejected, alone; the others go on."""
        refused = Outcomes()
        keep = []
        for index, reason in enumerate(reasons):
            if reason is None:
                keep.append(index)
            else:
                self.counts.count_rejection(reason)
                refused.append(rows.keys[index], "rejected", rows.fingerprints[index],
                               "validation", 0, reason)
        self._record_now(refused)
        return rows.take(keep)

    def _record_now(self, outcomes: Outcomes) -> None:
        """Outcomes decided before any send (expired, refused by the prepare step)."""
        if self.outbox is None and len(outcomes):
            self.ledger.record(self.context.run_id, self.name, outcomes)

    def _dispatch(self, batch: Rows) -> None:
        if self.outbox is not None:
            self.outbox.write(batch)
            self.counts.sent += len(batch)
            self.context.progress.update(self.name, self.counts)
            return
        assert self.pool is not None
        self._settle(self.pool.room())
        if not self.report.problem:
            self.pool.submit(batch)

    def _deliver(self, batch: Rows) -> BatchResult:
        """Runs in a sender thread: send one batch, then write its outcomes to the ledger
        (a failure to write is raised in the main thread when its message is read)."""
        assert self.sender is not None
        try:
            result = self.sender.deliver(batch)
        except Exception as exc:  # a bug in a destination module: keep the rows for later
            log.exception("%s: sending a batch failed unexpectedly", self.name)
            reason = scrub(f"internal error: {type(exc).__name__}: {exc}")
            result = BatchResult(all_rows(batch, "failed", reason, 0), reason)
        self.ledger.record(self.context.run_id, self.name, result.outcomes)
        return result

    def _settle(self, messages: Sequence[Sent]) -> None:
        """The main thread reads the sender threads' messages: counts, marker, report."""
        if not messages:
            return
        for message in messages:
            self.counts.sent += len(message.batch)  # every row travelled in a request
            delivered_before = self.counts.accepted
            self.counts.add(message.result.outcomes)
            if not delivered_before and self.counts.accepted:
                # From now on, a ledger without this destination's deliveries is a lost
                # one (a kill -9, then a lost .wal): the marker says so at once.
                self.ledger.note_delivered(self.name)
            fatal = message.result.fatal
            if fatal and not self.report.problem:
                self.report.problem = fatal
                log.error("%s: stopping: %s", self.name, fatal)
        if time.monotonic() - self.counts_written_at >= COUNTS_EVERY_SECONDS:
            self.counts_written_at = time.monotonic()
            self.ledger.record(self.context.run_id, self.name, Outcomes(), self.counts)
        self.context.progress.update(self.name, self.counts)


def _close(batches: Iterator[pa.RecordBatch]) -> None:
    """Stop the reader's prefetching thread (a generator: closing it stops the thread)."""
    if isinstance(batches, Generator):
        batches.close()


def _rows_of(record_batch: pa.RecordBatch, extra_columns: Sequence[str],
             ) -> tuple[Rows, Rows, list[str | None]]:
    """The rows of a read batch to go on, the expired ones, and per row going on the
    reason it cannot be sent (empty when every row can)."""
    column = record_batch.column
    names = record_batch.schema.names
    rows = Rows(
        column(names.index(pending.KEY)).to_pylist(),
        # Views into the Arrow buffer rather than a bytes object per event: joined
        # into the request body as they are, never copied one by one.
        cast("list[Payload]", binary_views(column(names.index(pending.PAYLOAD)))),
        column(names.index(pending.FINGERPRINT)).to_pylist(),
        {name: column(names.index(name)).to_pylist() for name in extra_columns},
    )
    problem_column = column(names.index(pending.PROBLEM))
    problems = ([] if problem_column.null_count == len(problem_column)
                else problem_column.to_pylist())
    expired_column = column(names.index(pending.EXPIRED))
    if not expired_column.true_count:
        return rows, Rows(), problems
    flags = expired_column.to_pylist()
    going_on = [i for i, flag in enumerate(flags) if not flag]
    return (rows.take(going_on), rows.take([i for i, flag in enumerate(flags) if flag]),
            [problems[i] for i in going_on] if problems else [])


def payload_problems(destination: RestDestination, con: duckdb.DuckDBPyConnection,
                     relation: str) -> RunCounts:
    """What the REST loop relies on in a mart, counted in one pass (`ship validate`; the
    mart's dbt tests prove the same, this checks the table as it is now)."""
    # The expiry of a run (each event's own limit where the mart names one).
    expired = (f"count(*) filter (where "
               f"{pending.expired_condition(destination, destination.now(), '')})"
               if destination.kind == EVENTS else "0")
    total, missing_key, repeated, not_object, old = fetch_one(con, f"""
        select
            count(*),
            count(*) filter (where delivery_key is null),
            count(delivery_key) - count(distinct delivery_key),
            count(*) filter (
                where coalesce(case when json_valid(payload) then json_type(payload) end,
                               '') <> 'OBJECT'),
            {expired}
        from {relation}
    """) or (0, 0, 0, 0, 0)
    counts = RunCounts(read=int(total), expired=int(old))
    counts.count_rejections({"delivery_key is missing": missing_key,
                             "delivery_key is repeated": repeated,
                             "payload is not a JSON object": not_object})
    return counts
