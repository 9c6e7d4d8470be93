"""The loop every destination shares.

read the mart (rows still to handle, per the ledger; a thread fetches the next
read batch from DuckDB while this one is handled)
  -> skip what the ledger says is done
  -> validate (invalid rows are recorded as rejected, never sent) and build the
     wire events: in DuckDB, a read batch at a time, for destinations that
     describe their events in SQL (Meta, TikTok: destinations/sql.py); row by
     row in Python otherwise
  -> batch (the destination's batch_size, and its request byte limit if it has one)
  -> send (a thread pool of `concurrency` workers, rate-limited, retried in http.py)
  -> record the outcome in the ledger (a recorder thread: one transaction holds
     every answered batch waiting at that moment, at most `ledger_group_batches`).

At most `concurrency` batches are being sent and at most `ledger_group_batches`
answered ones wait for the ledger at any moment: they are the only rows a
`kill -9` can cause to be sent twice (platforms also deduplicate on event_id).
A batch the platform refuses as a
whole (Meta 400, TikTok code != 0) is split in halves, recursively, until the
bad events are alone and the good ones land.

`--dry-run` goes through the same read, skip, validate and batch steps but
writes each request body to OUTBOX/<destination>/<run_id>-<batch_no>.json and
writes nothing to `deliveries`.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from queue import Empty, Queue
from typing import Any, TextIO

import pyarrow.compute as pc

from shipper.destinations.base import (
    ACCEPTED,
    Destination,
    PrepareContext,
    PrepareError,
    RowOutcome,
    Verdict,
    encode_body,
)
from shipper.destinations.sql import Columns, SqlEvents, binary_views, rows_not_hex
from shipper.http import RetryingSession
from shipper.ledger import Ledger, Outcomes, RunCounts, fingerprint
from shipper.reader import (
    MartError,
    MartSource,
    check_columns,
    prefetch,
    quote_identifier,
    stream_batches,
)
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


@dataclass
class Batch:
    """Valid rows on their way, column by column: keys, wire events (dicts, or the JSON
    bytes DuckDB built) and each event's fingerprint."""

    keys: list[str] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    def part(self, start: int, stop: int) -> Batch:
        return Batch(self.keys[start:stop], self.events[start:stop],
                     self.fingerprints[start:stop])


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

    def __init__(self, destination: Destination, session: RetryingSession,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.destination = destination
        self.session = session
        self.sleep = sleep

    def deliver(self, batch: Batch) -> BatchResult:
        return self._send(batch)

    def _send(self, batch: Batch) -> BatchResult:
        destination = self.destination
        events = batch.events
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
            return BatchResult(_all(batch, "failed", reason, result.attempts), fatal)
        if verdict.kind == "rows":
            if len(verdict.rows) != len(batch):
                reason = (f"{destination.title} returned {len(verdict.rows)} outcomes for "
                          f"{len(batch)} events")
                return BatchResult(_all(batch, "failed", reason, result.attempts))
            return BatchResult(_per_row(batch, verdict.rows, result.attempts))
        if verdict.kind == "reject_batch":
            if len(batch) == 1:
                return BatchResult(_all(batch, "rejected", verdict.reason, result.attempts))
            log.info("%s: a batch of %d events was rejected as a whole (%s); splitting it to "
                     "find the bad event(s)", destination.name, len(batch), verdict.reason)
            middle = len(batch) // 2
            first = self._send(batch.part(0, middle))
            if first.fatal:
                rest = _all(batch.part(middle, len(batch)), "failed", first.fatal, 0)
                return _merge(first, BatchResult(rest), result.attempts)
            second = self._send(batch.part(middle, len(batch)))
            return _merge(first, second, result.attempts)
        reason = scrub(verdict.reason or "refused")
        if verdict.kind == "fatal":
            return BatchResult(_all(batch, "failed", reason, result.attempts), reason)
        # "retry" cannot reach here (the session retries it); treat anything else as failed.
        return BatchResult(_all(batch, "failed", reason, result.attempts))


class OutboxWriter:
    """The dry run's sender: write each body as it would be sent, send nothing."""

    def __init__(self, destination: Destination, directory: Path, run_id: str) -> None:
        self.destination = destination
        self.directory = directory / destination.name
        self.run_id = run_id
        self.files = 0

    def write(self, batch: Batch) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        request = self.destination.build_request(batch.events)
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
    # The mart is streamed from a DuckDB of its own (Ledger.reader), attached there too.
    reader = ledger.reader()
    session: RetryingSession | None = None
    interrupted = False
    try:
        mart = destination.settings.mart
        relation = source.relation(cursor, mart)
        check_columns(cursor, relation, mart, destination.columns)
        if source.relation(reader, mart) != relation:
            raise MartError(f"{mart} reads differently in the reader: a bug, please report it.")
        destination.open_prepare(PrepareContext(ledger, run_id, dry_run, outbox_dir / name,
                                                hooks))
        if dry_run:
            outbox = OutboxWriter(destination, outbox_dir, run_id)
            _Shipment(destination, ledger, run_id, report, progress, outbox=outbox).run(
                cursor, reader, relation, read_batch_rows)
            report.outbox_files = outbox.files
        else:
            session = RetryingSession.for_destination(name, destination.settings,
                                                      **hooks.for_session())
            sender = HttpSender(destination, session, sleep=hooks.sleep)
            _Shipment(destination, ledger, run_id, report, progress, sender=sender).run(
                cursor, reader, relation, read_batch_rows)
    except (MartError, PrepareError) as exc:
        report.problem = str(exc)
        log.error("%s: %s", name, exc)
    except KeyboardInterrupt:
        interrupted = True
        raise
    except Exception as exc:  # a bug: this destination stops, recorded as incomplete
        report.problem = scrub(f"internal error: {type(exc).__name__}: {exc}")
        log.exception("%s: stopped by an unexpected error", name)
    finally:
        destination.close_prepare()
        if session is not None:
            session.close()
        cursor.close()
        reader.close()
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
        self.batch_size = destination.settings.batch_size
        # Sent batches wait for the ledger in a group of at most this many (see _Recorder).
        self.group_batches = max(1, destination.settings.ledger_group_batches)
        self.sending = 0  # batches handed to a sender thread, not yet answered
        self.unrecorded = 0  # batches handed to a sender thread, not yet in the ledger
        self.notices: Queue[tuple[Any, ...]] = Queue()
        self.recorder: _Recorder | None = None
        self.counts_written_at = time.monotonic()
        # A byte limit per request (Klaviyo: 5 MB) cuts batches as well as batch_size.
        self.byte_limit = destination.request_byte_limit()
        self.envelope_bytes = (len(destination.build_request([]).body_bytes())
                               if self.byte_limit else 0)
        self.executor: futures.Executor | None = None
        self.batch = Batch()
        self.batch_bytes = self.envelope_bytes

    def run(self, cursor: Any, reader: Any, relation: str, read_batch_rows: int) -> None:
        destination, counts = self.destination, self.counts
        sql, already = self.ledger.stage_pending(cursor, self.name, relation,
                                                 destination.columns,
                                                 destination.resend_when_changed, reader=reader)
        counts.read += already
        counts.skipped += already
        in_sql = self._sql_events(reader, relation)
        if in_sql is not None:
            sql = _with_sql_events(sql, in_sql)
            log.debug("%s: events are validated and built in SQL", self.name)
        if self.sender is not None:
            self.executor = futures.ThreadPoolExecutor(self.concurrency, f"ship-{self.name}")
            self.recorder = _Recorder(self.ledger, self.run_id, self.name, self.notices,
                                      self.group_batches)
            self.recorder.start()
        batches = prefetch(stream_batches(reader, sql, None, read_batch_rows))
        try:
            for record_batch in batches:
                rejected = Outcomes()
                try:
                    if in_sql is not None:
                        self._take_built(record_batch, rejected, in_sql)
                    else:
                        self._take_rows(record_batch.to_pylist(), rejected)
                except PrepareError as exc:
                    self.report.problem = str(exc)
                    log.error("%s: stopping: %s", self.name, exc)
                    break
                if len(rejected) and self.sender is not None:
                    self.ledger.record(self.run_id, self.name, rejected, self._counts_due())
                self.progress.update(self.name, counts)
                if self.report.problem:
                    break
            if len(self.batch) and not self.report.problem:
                self._dispatch()
            while self.unrecorded:
                self._next_notice()
        finally:
            batches.close()
            if self.executor is not None:
                # On an exception (Ctrl-C) let the batches being sent finish and be
                # recorded; count the ones that were.
                self.executor.shutdown(wait=True, cancel_futures=True)
            if self.recorder is not None:
                self.recorder.stop()
                while not self.notices.empty():
                    self._next_notice(raise_errors=False)

    def _sql_events(self, cursor: Any, relation: str) -> SqlEvents | None:
        destination = self.destination
        if (not destination.settings.build_events_in_sql
                or type(destination).prepare is not Destination.prepare):
            return None
        selected = ", ".join(quote_identifier(column) for column in destination.columns)
        described = cursor.sql(f"select {selected} from {relation} limit 0")
        types = dict(zip(described.columns, (str(kind) for kind in described.types),
                         strict=True))
        return destination.sql_events(Columns(types))

    # -- taking the rows of one read batch ------------------------------------------------

    def _take_rows(self, rows: list[dict[str, Any]], rejected: Outcomes) -> None:
        """Row by row: prepare, then skip, validate and build each row in Python."""
        destination, counts = self.destination, self.counts
        for row in destination.prepare(rows):
            counts.read += 1
            taken = _prepare(destination, row, counts, rejected)
            if taken is not None:
                self._add(*taken)
                if self.report.problem:
                    return

    def _take_built(self, record_batch: Any, rejected: Outcomes, built: SqlEvents) -> None:
        """A read batch whose reasons and events DuckDB made (`_with_sql_events`)."""
        counts = self.counts
        names = record_batch.schema.names
        by_python = set()
        if pc.any(record_batch.column(names.index("__python"))).as_py():
            flags = record_batch.column(names.index("__python")).to_pylist()
            by_python.update(index for index, flag in enumerate(flags) if flag)
        for name in built.hex_columns:
            by_python.update(rows_not_hex(record_batch.column(names.index(name))))
        if by_python:
            # A few rows SQL cannot judge like Python: hand them to the Python methods,
            # which give each its exact reason.
            in_python = sorted(by_python)
            rows = record_batch.select([*self.destination.columns, *_LEDGER_STATE])
            self._take_rows(rows.take(in_python).to_pylist(), rejected)
            record_batch = record_batch.take(
                [index for index in range(record_batch.num_rows) if index not in by_python])
        rows = record_batch.num_rows
        column = record_batch.column
        counts.read += rows
        keys = column(names.index("__key")).to_pylist()
        reasons = column(names.index("__reason"))
        # Views into the Arrow buffer rather than a bytes object per event: hashed here,
        # joined into the request body by encode_body, never copied one by one.
        texts = binary_views(column(names.index("__event")))
        fingerprints = [sha256(text).hexdigest() for text in texts]
        status = column(names.index("__ledger_status"))
        if (reasons.null_count == rows and status.null_count == rows
                and None not in keys and "" not in keys):
            # The usual batch: every row new and valid.
            self._add_many(keys, texts, fingerprints)
            return
        states = zip(reasons.to_pylist(), status.to_pylist(),
                     column(names.index("__ledger_fingerprint")).to_pylist(),
                     column(names.index("__ledger_rejected_by")).to_pylist(), strict=True)
        resend_when_changed = self.destination.resend_when_changed
        for key, text, current, (reason, ledger_status, old_fingerprint, rejected_by) in zip(
                keys, texts, fingerprints, states, strict=True):
            if not key:
                counts.count_rejection("delivery_key is missing")
                continue
            if _skip(ledger_status, current, old_fingerprint, rejected_by, resend_when_changed):
                counts.skipped += 1
                continue
            if reason is not None:
                counts.count_rejection(reason)
                rejected.append(key, "rejected", current, "validation", 0, reason)
                continue
            self._add(key, text, current, len(text) + 1)
            if self.report.problem:
                return

    # -- batching ------------------------------------------------------------------------

    def _add(self, key: str, event: Any, fingerprint: str, size: int) -> None:
        """One valid row into the current batch; a full batch is dispatched."""
        if self.byte_limit and len(self.batch) and self.batch_bytes + size > self.byte_limit:
            self._dispatch()
            if self.report.problem:
                return
        batch = self.batch
        batch.keys.append(key)
        batch.events.append(event)
        batch.fingerprints.append(fingerprint)
        self.batch_bytes += size
        if len(batch) >= self.batch_size:
            self._dispatch()

    def _add_many(self, keys: list[str], events: list[Any], fingerprints: list[str]) -> None:
        if self.byte_limit:
            for key, event, fingerprint in zip(keys, events, fingerprints, strict=True):
                self._add(key, event, fingerprint, len(event) + 1)
                if self.report.problem:
                    return
            return
        start = 0
        while start < len(keys):
            take = min(self.batch_size - len(self.batch), len(keys) - start)
            batch = self.batch
            batch.keys.extend(keys[start:start + take])
            batch.events.extend(events[start:start + take])
            batch.fingerprints.extend(fingerprints[start:start + take])
            start += take
            if len(batch) >= self.batch_size:
                self._dispatch()
                if self.report.problem:
                    return

    def _dispatch(self) -> None:
        batch, self.batch, self.batch_bytes = self.batch, Batch(), self.envelope_bytes
        if self.outbox is not None:
            self.outbox.write(batch)
            self.counts.sent += len(batch)
            self.progress.update(self.name, self.counts)
            return
        assert self.executor is not None and self.sender is not None
        # At most `concurrency` batches being sent, and at most `ledger_group_batches`
        # more sent and waiting for the ledger: all a kill -9 can cause to be sent twice.
        while (self.sending >= self.concurrency
               or self.unrecorded >= self.concurrency + self.group_batches):
            self._next_notice()
        if not self.report.problem:
            self.sending += 1
            self.unrecorded += 1
            self.executor.submit(self._deliver, batch)

    def _deliver(self, batch: Batch) -> None:
        """Runs in a sender thread: send one batch and hand its outcome to the recorder."""
        assert self.sender is not None and self.recorder is not None
        try:
            result = self.sender.deliver(batch)
        except Exception as exc:  # a bug in a destination module: keep the rows for later
            log.exception("%s: sending a batch failed unexpectedly", self.name)
            reason = scrub(f"internal error: {type(exc).__name__}: {exc}")
            result = BatchResult(_all(batch, "failed", reason, 0), reason)
        # The main thread learns of a fatal answer at once, before it sends another batch.
        self.notices.put(("sent", result.fatal))
        self.recorder.put(batch, result)

    def _next_notice(self, raise_errors: bool = True) -> None:
        """Wait for a sender thread or the recorder, and take in what it says."""
        notice = self.notices.get()
        if notice[0] == "sent":
            self.sending -= 1
            if notice[1] and not self.report.problem:
                self.report.problem = notice[1]
                log.error("%s: stopping: %s", self.name, notice[1])
        elif notice[0] == "recorded":
            self.unrecorded -= 1
            self._settle(notice[1], notice[2])
        elif raise_errors:  # ("failed", exc): the ledger could not be written
            raise notice[1]

    def _settle(self, batch: Batch, result: BatchResult) -> None:
        """Count a batch the recorder has written to the ledger."""
        self.counts.sent += len(batch)  # every row travelled in at least one request
        self.counts.add(result.outcomes)
        counts = self._counts_due()
        if counts is not None:
            self.ledger.record(self.run_id, self.name, [], counts)
        self.progress.update(self.name, self.counts)

    def _counts_due(self) -> RunCounts | None:
        # `deliveries` is written every batch; the `runs` row every few seconds and at the end.
        if time.monotonic() - self.counts_written_at < COUNTS_EVERY_SECONDS:
            return None
        self.counts_written_at = time.monotonic()
        return self.counts


class _Recorder:
    """Writes the outcomes of sent batches to the ledger, in a thread of its own.

    Each write is one transaction holding up to `ledger_group_batches` answered
    batches: what waits, after lingering 20 ms for a full group (a transaction costs
    milliseconds whatever its size, so at high rates fewer and larger ones halve the
    ledger's cost; at low rates each batch is written alone, 20 ms later). The main
    thread lets at most that many answered batches wait. A batch counts as settled only once it
    is written: the recorder then tells the main thread ("recorded").
    """

    # How long a lone answered batch waits for others before it is written alone.
    linger_seconds = 0.02

    def __init__(self, ledger: Ledger, run_id: str, name: str,
                 notices: Queue[tuple[Any, ...]], group_batches: int) -> None:
        self.group_batches = group_batches
        self.ledger = ledger
        self.run_id = run_id
        self.name = name
        self.notices = notices
        # Unbounded: the main thread already bounds what waits, and a sender thread
        # must never block here (not even after the recorder has failed).
        self.waiting: Queue[tuple[Batch, BatchResult] | None] = Queue()
        self.thread = threading.Thread(target=self._run, name=f"ledger-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, batch: Batch, result: BatchResult) -> None:
        self.waiting.put((batch, result))

    def stop(self) -> None:
        """Write what waits, then end the thread."""
        if self.thread.is_alive():
            self.waiting.put(None)
            self.thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self.waiting.get()
            if first is None:
                return
            group = [first]
            # Take what else waits, and linger a moment for a full group: a transaction
            # costs milliseconds whatever its size, so fewer and larger ones are cheaper.
            deadline = time.monotonic() + self.linger_seconds
            while len(group) < self.group_batches:
                try:
                    item = self.waiting.get(timeout=max(0.0, deadline - time.monotonic()))
                except Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            outcomes = Outcomes()
            for _batch, result in group:
                outcomes.extend(result.outcomes)
            try:
                self.ledger.record(self.run_id, self.name, outcomes)
            except BaseException as exc:  # noqa: BLE001 (raised in the main thread)
                self.notices.put(("failed", exc))
                return
            log.debug("%s: recorded %d batch(es), %d rows", self.name, len(group),
                      len(outcomes))
            for batch, result in group:
                self.notices.put(("recorded", batch, result))


_LEDGER_STATE = ("__ledger_status", "__ledger_fingerprint", "__ledger_rejected_by")


def _with_sql_events(pending_sql: str, built: SqlEvents) -> str:
    """The pending rows with what DuckDB judged and built of each: `__key`, `__python`
    (rows left to the Python methods), `__reason` and `__event` (the JSON as UTF-8
    bytes: encode(), not a cast, which would read backslashes as escapes and refuse
    any non-ASCII character)."""
    return f"""
        select
            *,
            cast(delivery_key as varchar) as __key,
            coalesce({built.python_rows}, false) as __python,
            {built.reason} as __reason,
            encode({built.event}) as __event
        from ({pending_sql}) as pending_rows
    """


def _skip(ledger_status: str | None, current: str | None, old_fingerprint: str | None,
          rejected_by: str | None, resend_when_changed: bool) -> bool:
    """The ledger already has this row's outcome, and nothing calls for sending it again."""
    same_content_done = (
        ledger_status is not None and current is not None and current == old_fingerprint
        and (ledger_status == "delivered"
             or (ledger_status == "rejected" and rejected_by == "platform"))
    )
    if same_content_done:
        return True
    return ledger_status == "delivered" and not resend_when_changed


def _prepare(destination: Destination, row: dict[str, Any], counts: RunCounts,
             rejected: Outcomes) -> tuple[str, Any, str, int] | None:
    """(key, event, fingerprint, size) of a sendable row; None when it is skipped or
    rejected (a rejection is appended to `rejected`)."""
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
    except (TypeError, ValueError, KeyError, RecursionError) as exc:
        event, current = None, None
        wire_problem: str | None = f"row cannot become an event ({type(exc).__name__})"
    else:
        wire_problem = None

    if _skip(ledger_status, current, old_fingerprint, rejected_by,
             destination.resend_when_changed):
        counts.skipped += 1
        return None

    reason = destination.validate(row) or wire_problem
    if reason is not None:
        counts.count_rejection(reason)
        rejected.append(key, "rejected", current, "validation", 0, reason)
        return None
    assert event is not None and current is not None
    # The event's bytes in the body, plus the comma between events.
    size = len(encode_body(event)) + 1 if destination.request_byte_limit() else 0
    return key, event, current, size


def _per_row(batch: Batch, rows: Sequence[RowOutcome], attempts: int) -> Outcomes:
    """The ledger outcomes of a batch the platform answered row by row."""
    count = len(batch)
    if all(row is ACCEPTED for row in rows):
        return Outcomes(batch.keys, ["delivered"] * count, batch.fingerprints,
                        [None] * count, [attempts] * count, [None] * count)
    outcomes = Outcomes()
    # Platform messages are stored and printed; one could echo a credential back.
    scrubbed: dict[str, str] = {}
    for key, print_, row in zip(batch.keys, batch.fingerprints, rows, strict=True):
        reason = row.reason
        if reason:
            if reason not in scrubbed:
                scrubbed[reason] = scrub(reason)
            reason = scrubbed[reason]
        if row.status == "accepted":
            # A delivered row's `error` holds the platform's request or job id when it
            # gives one.
            outcomes.append(key, "delivered", print_, None, attempts, reason)
        elif row.status == "rejected":
            outcomes.append(key, "rejected", print_, "platform", attempts,
                            reason or "rejected by the platform")
        else:
            outcomes.append(key, "failed", print_, None, attempts,
                            reason or "the platform asked to retry this event")
    return outcomes


def _all(batch: Batch, status: str, reason: str | None, attempts: int) -> Outcomes:
    """Every row of the batch rejected by the platform, or failed, for one reason."""
    count = len(batch)
    reason = scrub(reason) if reason else None
    if status == "rejected":
        return Outcomes(list(batch.keys), ["rejected"] * count, list(batch.fingerprints),
                        ["platform"] * count, [attempts] * count,
                        [reason or "rejected by the platform"] * count)
    return Outcomes(list(batch.keys), ["failed"] * count, list(batch.fingerprints),
                    [None] * count, [attempts] * count,
                    [reason or "the platform asked to retry this event"] * count)


def _merge(first: BatchResult, second: BatchResult, parent_attempts: int) -> BatchResult:
    # Rows of a split batch also travelled in the parent request(s).
    outcomes = Outcomes()
    outcomes.extend(first.outcomes)
    outcomes.extend(second.outcomes)
    outcomes.attempts = [attempts + parent_attempts for attempts in outcomes.attempts]
    return BatchResult(outcomes, first.fatal or second.fatal)
