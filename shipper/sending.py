"""Sending one batch, and what its answer means for each of its rows.

`HttpSender` sends a batch (retried in `shipper.http`), follows an asynchronous
job to its end, and splits a batch the platform refused as a whole until the bad
events are alone; `OutboxWriter` is the dry run's sender. Both run in whatever
thread calls them: the threads are `shipper.sender_pool`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING

from shipper.destinations.base import ACCEPTED, RowOutcome, Rows, Verdict
from shipper.http import RetryingSession, SendResult
from shipper.jsontypes import JsonValue
from shipper.ledger import Outcomes
from shipper.redact import get_logger, scrub

if TYPE_CHECKING:
    from shipper.destinations.rest import RestDestination

__all__ = ["BatchResult", "HttpSender", "OutboxWriter", "all_rows", "fingerprints"]

log = get_logger("shipper.delivery")


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
        first = self.session.send(request, _parser(destination, rows))
        result = self._follow(first, rows)
        attempts = first.attempts
        verdict: Verdict | None = result.verdict
        if verdict is None:
            reason = result.failure_reason or "no answer"
            fatal = reason if result.failure == "fatal" else None
            return BatchResult(all_rows(rows, "failed", reason, attempts), fatal)
        if verdict.kind == "rows":
            if len(verdict.rows) != len(rows):
                reason = (f"{destination.title} returned {len(verdict.rows)} outcomes for "
                          f"{len(rows)} events")
                return BatchResult(all_rows(rows, "failed", reason, attempts))
            return BatchResult(_per_row(rows, verdict.rows, attempts))
        if verdict.kind in ("reject_batch", "too_large"):
            return self._split(rows, verdict, attempts)
        reason = scrub(verdict.reason or "refused")
        if verdict.kind == "fatal":
            return BatchResult(all_rows(rows, "failed", reason, attempts), reason)
        # "retry" cannot reach here (the session retries it); treat anything else as failed.
        return BatchResult(all_rows(rows, "failed", reason, attempts))

    def _follow(self, result: SendResult[Verdict], rows: Rows) -> SendResult[Verdict]:
        """An asynchronous job (Klaviyo's import): ask about it until it is settled; the
        last answer. The follow-up requests carry no rows, so they do not count as
        attempts (the caller keeps the first answer's)."""
        destination = self.destination
        follow_ups = 0
        while result.verdict is not None and result.verdict.kind == "pending":
            verdict: Verdict = result.verdict
            follow_ups += 1
            if follow_ups > self.MAX_FOLLOW_UPS:
                # Not a kind parse_* returns: recorded as failed, sent again next run.
                return replace(result, verdict=Verdict(
                    "failed", f"{destination.title} job never settled"))
            if verdict.wait > 0:
                self.sleep(verdict.wait)
            handle = verdict.follow_up
            result = self.session.send(destination.follow_up_request(handle, rows),
                                       _follow_up_parser(destination, handle, rows))
        return result

    def _split(self, rows: Rows, verdict: Verdict, attempts: int) -> BatchResult:
        reason = verdict.reason
        if len(rows) == 1:
            # Only the platform's own refusal rejects an event for good; a single event
            # still too large for whatever answered 413 is kept for the next run.
            status = "rejected" if verdict.kind == "reject_batch" else "failed"
            return BatchResult(all_rows(rows, status, reason, attempts))
        log.info("%s: a batch of %d events was refused as a whole (%s); splitting it",
                 self.destination.name, len(rows), reason)
        middle = len(rows) // 2
        first = self.deliver(rows.part(0, middle))
        if first.fatal:
            rest = all_rows(rows.part(middle, len(rows)), "failed", first.fatal, 0)
            return _merge(first, BatchResult(rest), attempts)
        second = self.deliver(rows.part(middle, len(rows)))
        return _merge(first, second, attempts)


def _parser(destination: RestDestination, rows: Rows) -> Callable[[int, JsonValue], Verdict]:
    def parse(status: int, body: JsonValue) -> Verdict:
        return destination.parse_response(status, body, rows)
    return parse


def _follow_up_parser(destination: RestDestination, handle: object,
                      rows: Rows) -> Callable[[int, JsonValue], Verdict]:
    def parse(status: int, body: JsonValue) -> Verdict:
        return destination.parse_follow_up(status, body, handle, rows)
    return parse


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


def _per_row(rows: Rows, verdicts: Sequence[RowOutcome], attempts: int) -> Outcomes:
    """The ledger outcomes of a batch the platform answered row by row."""
    count = len(rows)
    if all(verdict is ACCEPTED for verdict in verdicts):
        return Outcomes(list(rows.keys), ["delivered"] * count, list(rows.fingerprints),
                        [None] * count, [attempts] * count, [None] * count)
    outcomes = Outcomes()
    # Platform messages are stored and printed; one could echo a credential back.
    scrubbed: dict[str, str] = {}
    prints = fingerprints(rows, [verdict.status == "rejected" for verdict in verdicts])
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


def all_rows(rows: Rows, status: str, reason: str | None, attempts: int) -> Outcomes:
    """Every row of the batch with one status (rejected by the platform, failed,
    expired) for one reason."""
    count = len(rows)
    reason = scrub(reason) if reason else None
    default = {"rejected": "rejected by the platform",
               "failed": "the platform asked to retry this event"}.get(status)
    rejected_by = "platform" if status == "rejected" else None
    prints = fingerprints(rows, [status == "rejected"] * count)
    return Outcomes(list(rows.keys), [status] * count, prints,
                    [rejected_by] * count, [attempts] * count, [reason or default] * count)


def fingerprints(rows: Rows, needed: Sequence[bool]) -> list[str | None]:
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
