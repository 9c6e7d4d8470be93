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

import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from typing import TextIO

import duckdb
import pyarrow as pa

from shipper import pending
from shipper.batching import Batcher
from shipper.destinations.base import (
    ACCEPTED,
    PrepareContext,
    PrepareError,
    RestDestination,
    RowOutcome,
    Rows,
    Verdict,
)
from shipper.hooks import Hooks
from shipper.http import RetryingSession
from shipper.ledger import STORAGE_ERRORS, Ledger, Outcomes, RunCounts, storage_problem
from shipper.reader import (
    MartError,
    MartSource,
    binary_views,
    check_columns,
    prefetch,
    stream_batches,
)
from shipper.redact import get_logger, scrub

__all__ = ["DestinationReport", "Hooks", "HttpSender", "OutboxWriter", "Progress",
           "describe_counts", "ship_destination"]

log = get_logger(__name__)

# How often a live run refreshes its counts in `runs` (they are final at the end).
COUNTS_EVERY_SECONDS = 5.0


@dataclass
class DestinationReport:
    """What happened to one destination in one run."""

    name: str
    mode: str  # live | dry_run
    counts: RunCounts = field(default_factory=RunCounts)
    # Why the destination could not complete (fatal platform answer, unreadable mart).
    problem: str | None = None
    outbox_files: int = 0

    @property
    def file_lines(self) -> list[str]:
        """Lines the summary prints under the table (a file destination's files)."""
        return []

    @property
    def exit_code(self) -> int:
        if self.problem or self.counts.failed:
            return 2
        if self.counts.rejected:
            return 1
        return 0

    @property
    def status(self) -> str:
        return {0: "ok", 1: "rejections", 2: "incomplete"}[self.exit_code]


@dataclass
class BatchResult:
    outcomes: Outcomes
    # Set when the platform (or TLS, or the URL) says no retry can help: stop the destination.
    fatal: str | None = None


class HttpSender:
    """Sends one batch, splitting it when the platform rejects it as a whole, and following
    it to the end when the platform answers with an asynchronous job (Klaviyo)."""

    # Asking about one asynchronous job more often than this is a module bug, not patience.
    MAX_FOLLOW_UPS = 10_000

    def __init__(self, destination: RestDestination, session: RetryingSession,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.destination = destination
        self.session = session
        self.sleep = sleep

    def deliver(self, rows: Rows) -> BatchResult:
        destination = self.destination
        request = destination.build_request(rows.payloads)
        result = self.session.send(
            request, lambda status, body: destination.parse_response(status, body, rows))
        verdict: Verdict | None = result.verdict
        attempts = result.attempts
        follow_ups = 0
        while verdict is not None and verdict.kind == "pending":
            # An asynchronous job (Klaviyo's import): ask about it until it is settled.
            # The follow-up requests carry no rows, so they do not count as attempts.
            follow_ups += 1
            if follow_ups > self.MAX_FOLLOW_UPS:
                # Not a kind parse_* returns: recorded as failed below, sent again next run.
                verdict = Verdict("failed", f"{destination.title} job never settled")
                break
            if verdict.wait > 0:
                self.sleep(verdict.wait)
            handle = verdict.follow_up
            result = self.session.send(
                destination.follow_up_request(handle, rows),
                lambda status, body, handle=handle: destination.parse_follow_up(
                    status, body, handle, rows),
            )
            verdict = result.verdict
        result = replace(result, attempts=attempts)
        if verdict is None:
            reason = result.failure_reason or "no answer"
            fatal = reason if result.failure == "fatal" else None
            return BatchResult(_all(rows, "failed", reason, result.attempts), fatal)
        if verdict.kind == "rows":
            if len(verdict.rows) != len(rows):
                reason = (f"{destination.title} returned {len(verdict.rows)} outcomes for "
                          f"{len(rows)} events")
                return BatchResult(_all(rows, "failed", reason, result.attempts))
            return BatchResult(_per_row(rows, verdict.rows, result.attempts))
        if verdict.kind in ("reject_batch", "too_large"):
            return self._split(rows, verdict, result.attempts)
        reason = scrub(verdict.reason or "refused")
        if verdict.kind == "fatal":
            return BatchResult(_all(rows, "failed", reason, result.attempts), reason)
        # "retry" cannot reach here (the session retries it); treat anything else as failed.
        return BatchResult(_all(rows, "failed", reason, result.attempts))

    def _split(self, rows: Rows, verdict: Verdict, attempts: int) -> BatchResult:
        reason = verdict.reason
        if len(rows) == 1:
            # Only the platform's own refusal rejects an event for good; a single event
            # still too large for whatever answered 413 is kept for the next run.
            status = "rejected" if verdict.kind == "reject_batch" else "failed"
            return BatchResult(_all(rows, status, reason, attempts))
        log.info("%s: a batch of %d events was refused as a whole (%s); splitting it",
                 self.destination.name, len(rows), reason)
        middle = len(rows) // 2
        first = self.deliver(rows.part(0, middle))
        if first.fatal:
            rest = _all(rows.part(middle, len(rows)), "failed", first.fatal, 0)
            return _merge(first, BatchResult(rest), attempts)
        second = self.deliver(rows.part(middle, len(rows)))
        return _merge(first, second, attempts)


class OutboxWriter:
    """The dry run's sender: write each body as it would be sent, send nothing."""

    def __init__(self, destination: RestDestination, directory: Path, run_id: str) -> None:
        self.destination = destination
        self.directory = directory / destination.name
        self.run_id = run_id
        self.files = 0

    def write(self, rows: Rows) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        request = self.destination.build_request(rows.payloads)
        self.files += 1
        path = self.directory / f"{self.run_id}-{self.files:05d}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_bytes(request.body or b"")
        temporary.replace(path)
        return path


class Progress:
    """One live line per destination on a terminal; plain periodic lines otherwise."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if not self.tty else 0.2
        self.clock = clock
        self._last = float("-inf")

    def update(self, name: str, counts: RunCounts, final: bool = False) -> None:
        now = self.clock()
        if not final and now - self._last < self.interval:
            return
        self._last = now
        line = describe_counts(name, counts)
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info("%s", line)


def describe_counts(name: str, counts: RunCounts) -> str:
    line = (f"{name}: {counts.read:,} read, {counts.skipped:,} skipped, {counts.sent:,} sent, "
            f"{counts.accepted:,} accepted, {counts.rejected:,} rejected, "
            f"{counts.failed:,} failed")
    if counts.expired:
        line += f", {counts.expired:,} expired"
    return line


@dataclass(frozen=True)
class RunContext:
    """What one destination's run works with."""

    ledger: Ledger
    source: MartSource
    run_id: str
    dry_run: bool
    outbox_dir: Path
    read_batch_rows: int
    hooks: Hooks
    progress: Progress


def ship_destination(destination: RestDestination, context: RunContext) -> DestinationReport:
    """Ship one destination's mart; the report says what happened."""
    name = destination.name
    ledger = context.ledger
    report = DestinationReport(name, "dry_run" if context.dry_run else "live")
    ledger.start_run(context.run_id, name, report.mode)
    cursor = ledger.cursor()
    # The mart is streamed from a DuckDB of its own (Ledger.reader), attached there too.
    reader = ledger.reader()
    session: RetryingSession | None = None
    interrupted = False
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
                                                      **context.hooks.for_session())
            sender = HttpSender(destination, session, sleep=context.hooks.sleep)
            _Shipment(destination, context, report, sender=sender).run(cursor, reader, relation)
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
        destination.close_prepare()
        if session is not None:
            session.close()
        cursor.close()
        reader.close()
        context.progress.update(name, report.counts, final=True)
        status = "interrupted" if interrupted else report.status
        ledger.finish_run(context.run_id, name, report.counts, status, report.problem)
    return report


class _Shipment:
    """One destination's pass over its pending rows: read -> batch -> send -> record.

    The main thread reads and batches; up to `concurrency` sender threads each send
    one batch and write its outcomes to the ledger. Only the main thread touches the
    counts and the report.
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
        self.concurrency = destination.settings.concurrency
        self.in_flight: set[futures.Future[tuple[Rows, BatchResult]]] = set()
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
        executor = (futures.ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.name)
                    if self.sender is not None else None)
        batches = prefetch(stream_batches(reader, staged.sql, None,
                                          self.context.read_batch_rows))
        try:
            for record_batch in batches:
                self._take(record_batch, executor)
                if self.report.problem:
                    return
            last = self.batcher.flush()
            if last is not None:
                self._dispatch(last, executor)
        finally:
            batches.close()
            self._wait_for_all()
            if executor is not None:
                executor.shutdown(wait=True)

    def _take(self, record_batch: pa.RecordBatch,
              executor: futures.ThreadPoolExecutor | None) -> None:
        """One read batch: record the expired and unsendable rows, prepare and batch
        the others."""
        rows, expired, problems = _rows_of(record_batch, self.destination.extra_columns)
        if len(expired):
            self.counts.expired += len(expired)
            self._record_now(_all(expired, "expired", self.destination.expired_reason, 0))
        if problems:
            rows = self._refuse(rows, problems)
        if self.destination.rewrites_payloads:
            rows.fingerprints = _fingerprints(rows, [True] * len(rows))
        reasons = self.destination.prepare(rows)
        if any(reasons):
            rows = self._refuse(rows, reasons)
        for batch in self.batcher.add(rows):
            self._dispatch(batch, executor)
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

    def _dispatch(self, batch: Rows, executor: futures.ThreadPoolExecutor | None) -> None:
        if self.outbox is not None:
            self.outbox.write(batch)
            self.counts.sent += len(batch)
            self.context.progress.update(self.name, self.counts)
            return
        assert executor is not None
        while len(self.in_flight) >= self.concurrency:
            self._settle(futures.wait(self.in_flight, return_when=futures.FIRST_COMPLETED).done)
        if not self.report.problem:
            self.in_flight.add(executor.submit(self._deliver, batch))

    def _deliver(self, batch: Rows) -> tuple[Rows, BatchResult]:
        """Runs in a sender thread: send one batch, then write its outcomes to the ledger
        (a failure to write is raised in the main thread by `_settle`)."""
        assert self.sender is not None
        try:
            result = self.sender.deliver(batch)
        except Exception as exc:  # a bug in a destination module: keep the rows for later
            log.exception("%s: sending a batch failed unexpectedly", self.name)
            reason = scrub(f"internal error: {type(exc).__name__}: {exc}")
            result = BatchResult(_all(batch, "failed", reason, 0), reason)
        self.ledger.record(self.context.run_id, self.name, result.outcomes)
        return batch, result

    def _settle(self, done: set[futures.Future[tuple[Rows, BatchResult]]]) -> None:
        for future in done:
            self.in_flight.discard(future)
            batch, result = future.result()
            self.counts.sent += len(batch)  # every row travelled in at least one request
            delivered_before = self.counts.accepted
            self.counts.add(result.outcomes)
            if not delivered_before and self.counts.accepted:
                # From now on, a ledger without this destination's deliveries is a lost
                # one (a kill -9, then a lost .wal): the marker says so at once.
                self.ledger.note_delivered(self.name)
            if result.fatal and not self.report.problem:
                self.report.problem = result.fatal
                log.error("%s: stopping: %s", self.name, result.fatal)
        if time.monotonic() - self.counts_written_at >= COUNTS_EVERY_SECONDS:
            self.counts_written_at = time.monotonic()
            self.ledger.record(self.context.run_id, self.name, Outcomes(), self.counts)
        self.context.progress.update(self.name, self.counts)

    def _wait_for_all(self) -> None:
        if self.in_flight:
            self._settle(futures.wait(self.in_flight).done)


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
        binary_views(column(names.index(pending.PAYLOAD))),
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


def _per_row(rows: Rows, verdicts: Sequence[RowOutcome], attempts: int) -> Outcomes:
    """The ledger outcomes of a batch the platform answered row by row."""
    count = len(rows)
    if all(verdict is ACCEPTED for verdict in verdicts):
        return Outcomes(list(rows.keys), ["delivered"] * count, list(rows.fingerprints),
                        [None] * count, [attempts] * count, [None] * count)
    outcomes = Outcomes()
    # Platform messages are stored and printed; one could echo a credential back.
    scrubbed: dict[str, str] = {}
    prints = _fingerprints(rows, [verdict.status == "rejected" for verdict in verdicts])
    for key, print_, verdict in zip(rows.keys, prints, verdicts, strict=True):
        reason = verdict.reason
        if reason:
            if reason not in scrubbed:
                scrubbed[reason] = scrub(reason)
            reason = scrubbed[reason]
        if verdict.status == "accepted":
            # A delivered row's `error` holds the platform's request or job id when it
            # gives one.
            outcomes.append(key, "delivered", print_, None, attempts, reason)
        elif verdict.status == "rejected":
            outcomes.append(key, "rejected", print_, "platform", attempts,
                            reason or "rejected by the platform")
        else:
            outcomes.append(key, "failed", print_, None, attempts,
                            reason or "the platform asked to retry this event")
    return outcomes


def _all(rows: Rows, status: str, reason: str | None, attempts: int) -> Outcomes:
    """Every row of the batch with one status (rejected by the platform, failed,
    expired) for one reason."""
    count = len(rows)
    reason = scrub(reason) if reason else None
    default = {"rejected": "rejected by the platform",
               "failed": "the platform asked to retry this event"}.get(status)
    rejected_by = "platform" if status == "rejected" else None
    prints = _fingerprints(rows, [status == "rejected"] * count)
    return Outcomes(list(rows.keys), [status] * count, prints,
                    [rejected_by] * count, [attempts] * count, [reason or default] * count)


def _fingerprints(rows: Rows, needed: Sequence[bool]) -> list[str | None]:
    """Each row's fingerprint, computed where `needed` and missing: the ledger compares
    a rejected row's with its payload next run (an unchanged row is not sent again), and
    events carry none until then (hashing every event would cost more than sending it)."""
    if not any(needed):
        return list(rows.fingerprints)
    return [sha256(payload).hexdigest() if need and print_ is None else print_
            for payload, print_, need in zip(rows.payloads, rows.fingerprints, needed,
                                             strict=True)]


def _merge(first: BatchResult, second: BatchResult, parent_attempts: int) -> BatchResult:
    # Rows of a split batch also travelled in the parent request(s).
    outcomes = Outcomes()
    outcomes.extend(first.outcomes)
    outcomes.extend(second.outcomes)
    outcomes.attempts = [attempts + parent_attempts for attempts in outcomes.attempts]
    return BatchResult(outcomes, first.fatal or second.fatal)
