"""The loop every destination shares.

read the mart (rows still to handle, per the ledger)
  -> skip what the ledger says is done
  -> validate (invalid rows are recorded as rejected, never sent)
  -> batch (the destination's batch_size, and its request byte limit if it has one)
  -> send (a thread pool of `concurrency` workers, rate-limited, retried in http.py)
  -> record the batch's outcome in the ledger, one transaction per batch (the worker
     that sent it writes it, while the main thread prepares the next rows).

At most `concurrency` batches are in flight (sent or being sent, not yet
recorded) at any moment: they are the only
rows a `kill -9` can cause to be sent twice. A batch the platform refuses as a
whole (Meta 400, TikTok code != 0) is split in halves, recursively, until the
bad events are alone and the good ones land.

`--dry-run` goes through the same read, skip, validate and batch steps but
writes each request body to OUTBOX/<destination>/<run_id>-<batch_no>.json and
writes nothing to `deliveries`.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from shipper.destinations.base import (
    Destination,
    PrepareContext,
    PrepareError,
    Verdict,
    encode_body,
)
from shipper.http import RetryingSession
from shipper.ledger import DeliveryRecord, Ledger, RunCounts, fingerprint
from shipper.reader import MartError, MartSource, check_columns, stream_batches
from shipper.redact import get_logger, scrub

log = get_logger(__name__)

# How often a live run refreshes its counts in `runs` (they are final at the end).
COUNTS_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class Hooks:
    """Time and randomness, injectable so tests neither sleep nor depend on luck."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wallclock: Callable[[], float] = time.time
    rng: random.Random | None = None

    def for_session(self) -> dict[str, Any]:
        injected: dict[str, Any] = {"clock": self.clock, "sleep": self.sleep,
                                    "wallclock": self.wallclock}
        if self.rng is not None:
            injected["rng"] = self.rng
        return injected


@dataclass
class DestinationReport:
    """What happened to one destination in one run."""

    name: str
    mode: str  # live | dry_run | skipped
    counts: RunCounts = field(default_factory=RunCounts)
    # Why the destination could not complete (fatal platform answer, unreadable mart).
    problem: str | None = None
    outbox_files: int = 0

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


@dataclass(frozen=True)
class Item:
    """A valid row on its way: its key, its wire event, and that event's fingerprint."""

    key: str
    event: dict[str, Any]
    fingerprint: str
    # Bytes the event adds to a request body (0 unless the destination has a byte limit).
    size: int = 0


@dataclass
class BatchResult:
    records: list[DeliveryRecord]
    # Set when the platform (or TLS, or the URL) says no retry can help: stop the destination.
    fatal: str | None = None


class HttpSender:
    """Sends one batch, splitting it when the platform rejects it as a whole, and following
    it to the end when the platform answers with an asynchronous job (Klaviyo)."""

    # Asking about one asynchronous job more often than this is a module bug, not patience.
    MAX_FOLLOW_UPS = 10_000

    def __init__(self, destination: Destination, session: RetryingSession,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.destination = destination
        self.session = session
        self.sleep = sleep

    def deliver(self, items: Sequence[Item]) -> BatchResult:
        return self._send(list(items))

    def _send(self, items: list[Item]) -> BatchResult:
        destination = self.destination
        events = [item.event for item in items]
        request = destination.build_request(events)
        result = self.session.send(
            request, lambda status, body: destination.parse_response(status, body, events)
        )
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
                destination.follow_up_request(handle, events),
                lambda status, body, handle=handle: destination.parse_follow_up(
                    status, body, handle, events),
            )
            verdict = result.verdict
        result = replace(result, attempts=attempts)
        if verdict is None:
            reason = result.failure_reason or "no answer"
            fatal = reason if result.failure == "fatal" else None
            return BatchResult(_all(items, "failed", reason, result.attempts), fatal)
        if verdict.kind == "rows":
            if len(verdict.rows) != len(items):
                reason = (f"{destination.title} returned {len(verdict.rows)} outcomes for "
                          f"{len(items)} events")
                return BatchResult(_all(items, "failed", reason, result.attempts))
            records = [_record(item, outcome.status, outcome.reason, result.attempts)
                       for item, outcome in zip(items, verdict.rows, strict=True)]
            return BatchResult(records)
        if verdict.kind == "reject_batch":
            if len(items) == 1:
                records = _all(items, "rejected", verdict.reason, result.attempts)
                return BatchResult(records)
            log.info("%s: a batch of %d events was rejected as a whole (%s); splitting it to "
                     "find the bad event(s)", destination.name, len(items), verdict.reason)
            middle = len(items) // 2
            first = self._send(items[:middle])
            if first.fatal:
                rest = _all(items[middle:], "failed", first.fatal, 0)
                return _merge(first, BatchResult(rest), result.attempts)
            second = self._send(items[middle:])
            return _merge(first, second, result.attempts)
        reason = scrub(verdict.reason or "refused")
        if verdict.kind == "fatal":
            return BatchResult(_all(items, "failed", reason, result.attempts), reason)
        # "retry" cannot reach here (the session retries it); treat anything else as failed.
        return BatchResult(_all(items, "failed", reason, result.attempts))


class OutboxWriter:
    """The dry run's sender: write each body as it would be sent, send nothing."""

    def __init__(self, destination: Destination, directory: Path, run_id: str) -> None:
        self.destination = destination
        self.directory = directory / destination.name
        self.run_id = run_id
        self.files = 0

    def write(self, items: Sequence[Item]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        request = self.destination.build_request([item.event for item in items])
        self.files += 1
        path = self.directory / f"{self.run_id}-{self.files:05d}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_bytes(encode_body(self.destination.outbox_body(request)))
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
    return (f"{name}: {counts.read:,} read, {counts.skipped:,} skipped, {counts.sent:,} sent, "
            f"{counts.accepted:,} accepted, {counts.rejected:,} rejected, "
            f"{counts.failed:,} failed")


def ship_destination(
    destination: Destination,
    *,
    ledger: Ledger,
    source: MartSource,
    run_id: str,
    dry_run: bool,
    outbox_dir: Path,
    read_batch_rows: int,
    hooks: Hooks,
    progress: Progress,
) -> DestinationReport:
    """Ship one destination's mart; the report says what happened."""
    name = destination.name
    report = DestinationReport(name, "dry_run" if dry_run else "live")
    ledger.start_run(run_id, name, report.mode)
    cursor = ledger.cursor()
    session: RetryingSession | None = None
    interrupted = False
    try:
        mart = destination.settings.mart
        relation = source.relation(cursor, mart)
        check_columns(cursor, relation, mart, destination.columns)
        destination.open_prepare(PrepareContext(ledger, run_id, dry_run, outbox_dir / name,
                                                hooks))
        if dry_run:
            outbox = OutboxWriter(destination, outbox_dir, run_id)
            _Shipment(destination, ledger, run_id, report, progress, outbox=outbox).run(
                cursor, relation, read_batch_rows)
            report.outbox_files = outbox.files
        else:
            session = RetryingSession.for_destination(name, destination.settings,
                                                      **hooks.for_session())
            sender = HttpSender(destination, session, sleep=hooks.sleep)
            _Shipment(destination, ledger, run_id, report, progress, sender=sender).run(
                cursor, relation, read_batch_rows)
    except (MartError, PrepareError) as exc:
        report.problem = str(exc)
        log.error("%s: %s", name, exc)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        destination.close_prepare()
        if session is not None:
            session.close()
        cursor.close()
        progress.update(name, report.counts, final=True)
        status = "interrupted" if interrupted else report.status
        ledger.finish_run(run_id, name, report.counts, status, report.problem)
    return report


class _Shipment:
    """One destination's pass over its mart: the read -> send -> record loop."""

    def __init__(self, destination: Destination, ledger: Ledger, run_id: str,
                 report: DestinationReport, progress: Progress, *,
                 sender: HttpSender | None = None, outbox: OutboxWriter | None = None) -> None:
        self.destination = destination
        self.name = destination.name
        self.ledger = ledger
        self.run_id = run_id
        self.report = report
        self.counts = report.counts
        self.progress = progress
        self.sender = sender
        self.outbox = outbox
        self.concurrency = destination.settings.concurrency
        self.in_flight: dict[futures.Future[BatchResult], list[Item]] = {}
        self.counts_written_at = time.monotonic()
        # A byte limit per request (Klaviyo: 5 MB) cuts batches as well as batch_size.
        self.byte_limit = destination.request_byte_limit()
        self.envelope_bytes = (len(destination.build_request([]).body_bytes())
                               if self.byte_limit else 0)

    def run(self, cursor: Any, relation: str, read_batch_rows: int) -> None:
        destination, counts = self.destination, self.counts
        sql, already = self.ledger.stage_pending(cursor, self.name, relation,
                                                 destination.columns,
                                                 destination.resend_when_changed)
        counts.read += already
        counts.skipped += already
        executor = None
        if self.sender is not None:
            executor = futures.ThreadPoolExecutor(self.concurrency, f"ship-{self.name}")
        batch: list[Item] = []
        batch_bytes = self.envelope_bytes
        try:
            for record_batch in stream_batches(cursor, sql, None, read_batch_rows):
                rejected: list[DeliveryRecord] = []
                try:
                    rows = destination.prepare(record_batch.to_pylist())
                except PrepareError as exc:
                    self.report.problem = str(exc)
                    log.error("%s: stopping: %s", self.name, exc)
                    break
                for row in rows:
                    counts.read += 1
                    prepared = _prepare(destination, row, counts)
                    if isinstance(prepared, DeliveryRecord):
                        rejected.append(prepared)
                    elif prepared is not None:
                        if (self.byte_limit and batch
                                and batch_bytes + prepared.size > self.byte_limit):
                            self._dispatch(batch, executor)
                            batch, batch_bytes = [], self.envelope_bytes
                            if self.report.problem:
                                break
                        batch.append(prepared)
                        batch_bytes += prepared.size
                        if len(batch) >= destination.settings.batch_size:
                            self._dispatch(batch, executor)
                            batch, batch_bytes = [], self.envelope_bytes
                            if self.report.problem:
                                break
                if rejected and self.sender is not None:
                    self.ledger.record(self.run_id, self.name, rejected, self._counts_due())
                self.progress.update(self.name, counts)
                if self.report.problem:
                    break
            if batch and not self.report.problem:
                self._dispatch(batch, executor)
            while self.in_flight:
                self._settle_next()
        finally:
            if executor is not None:
                # On an exception (Ctrl-C) let the batches in flight finish: their sender
                # threads record them; count the ones that were recorded.
                executor.shutdown(wait=True, cancel_futures=True)
                for future in list(self.in_flight):
                    if (future.done() and not future.cancelled()
                            and future.exception() is None):
                        self._settle(future)

    def _dispatch(self, batch: list[Item], executor: futures.Executor | None) -> None:
        if self.outbox is not None:
            self.outbox.write(batch)
            self.counts.sent += len(batch)
            self.progress.update(self.name, self.counts)
            return
        assert executor is not None and self.sender is not None
        # At most `concurrency` batches unrecorded at once: all a kill -9 can resend.
        while len(self.in_flight) >= self.concurrency:
            self._settle_next()
        if not self.report.problem:
            self.in_flight[executor.submit(self._deliver_and_record, batch)] = batch

    def _deliver_and_record(self, batch: list[Item]) -> BatchResult:
        """Runs in a sender thread: send one batch, then record its outcome there too.

        Recording in the sender thread lets the main thread read and prepare the next
        rows while DuckDB writes (it releases the GIL); the ledger takes the writes
        one at a time. A batch still counts as in flight until it is recorded.
        """
        assert self.sender is not None
        try:
            result = self.sender.deliver(batch)
        except Exception as exc:  # a bug in a destination module: keep the rows for later
            log.exception("%s: sending a batch failed unexpectedly", self.name)
            reason = scrub(f"internal error: {type(exc).__name__}: {exc}")
            result = BatchResult(_all(batch, "failed", reason, 0), reason)
        self.ledger.record(self.run_id, self.name, result.records)
        log.debug("%s: recorded a batch of %d", self.name, len(batch))
        return result

    def _settle_next(self) -> None:
        done, _ = futures.wait(self.in_flight, return_when=futures.FIRST_COMPLETED)
        for future in done:
            self._settle(future)

    def _settle(self, future: futures.Future[BatchResult]) -> None:
        """Count a batch its sender thread has recorded; a ledger error is raised here."""
        items = self.in_flight.pop(future)
        result = future.result()
        self.counts.sent += len(items)  # every row travelled in at least one request
        self.counts.add(result.records)
        counts = self._counts_due()
        if counts is not None:
            self.ledger.record(self.run_id, self.name, [], counts)
        if result.fatal and not self.report.problem:
            self.report.problem = result.fatal
            log.error("%s: stopping: %s", self.name, result.fatal)
        self.progress.update(self.name, self.counts)

    def _counts_due(self) -> RunCounts | None:
        # `deliveries` is written every batch; the `runs` row every few seconds and at the end.
        if time.monotonic() - self.counts_written_at < COUNTS_EVERY_SECONDS:
            return None
        self.counts_written_at = time.monotonic()
        return self.counts


def _prepare(destination: Destination, row: dict[str, Any],
             counts: RunCounts) -> Item | DeliveryRecord | None:
    """A sendable Item, a validation rejection, or None when the row is skipped."""
    ledger_status = row.pop("__ledger_status")
    old_fingerprint = row.pop("__ledger_fingerprint")
    rejected_by = row.pop("__ledger_rejected_by")
    key = row.get("delivery_key")
    if key is None or key == "":
        # Nothing to record it under; the mart's not_null test should have caught it.
        counts.count_rejection("delivery_key is missing")
        return None
    key = str(key)
    try:
        event = destination.to_wire(row)
        current = fingerprint(event)
    except (TypeError, ValueError, KeyError) as exc:
        event, current = None, None
        wire_problem: str | None = f"row cannot become an event ({type(exc).__name__})"
    else:
        wire_problem = None

    if ledger_status is not None and current is not None and current == old_fingerprint:
        same_content_done = (
            ledger_status == "delivered"
            or (ledger_status == "rejected" and rejected_by == "platform")
        )
        if same_content_done:
            counts.skipped += 1
            return None
    if ledger_status == "delivered" and not destination.resend_when_changed:
        counts.skipped += 1
        return None

    reason = destination.validate(row) or wire_problem
    if reason is not None:
        counts.count_rejection(reason)
        return DeliveryRecord(key, "rejected", current, "validation", 0, reason)
    assert event is not None and current is not None
    # The event's bytes in the body, plus the comma between events.
    size = len(encode_body(event)) + 1 if destination.request_byte_limit() else 0
    return Item(key, event, current, size)


def _record(item: Item, status: str, reason: str | None, attempts: int) -> DeliveryRecord:
    # Platform messages are stored and printed; one could echo a credential back.
    reason = scrub(reason) if reason else None
    if status == "accepted":
        # A delivered row's `error` holds the platform's request or job id when it gives one.
        return DeliveryRecord(item.key, "delivered", item.fingerprint, None, attempts, reason)
    if status == "rejected":
        return DeliveryRecord(item.key, "rejected", item.fingerprint, "platform", attempts,
                              reason or "rejected by the platform")
    return DeliveryRecord(item.key, "failed", item.fingerprint, None, attempts,
                          reason or "the platform asked to retry this event")


def _all(items: Sequence[Item], status: str, reason: str | None,
         attempts: int) -> list[DeliveryRecord]:
    if status == "rejected":
        return [_record(item, "rejected", reason, attempts) for item in items]
    return [_record(item, "failed", reason, attempts) for item in items]


def _merge(first: BatchResult, second: BatchResult, parent_attempts: int) -> BatchResult:
    # Rows of a split batch also travelled in the parent request(s).
    records = [
        DeliveryRecord(record.delivery_key, record.status, record.fingerprint,
                       record.rejected_by, record.attempts + parent_attempts, record.error)
        for record in first.records + second.records
    ]
    return BatchResult(records, first.fatal or second.fatal)
