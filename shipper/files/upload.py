"""Where each closed part goes: the outbox in a dry run; in a live run the journal,
then the transport (retried), then the ledger. Also what a killed run left mid-way
(`EarlierRuns`), settled before a run decides what is pending."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from shipper.files.csvfile import FinishedPart
from shipper.files.journal import FileJournal, FileRecord
from shipper.files.report import FileOutcome, FileReport
from shipper.files.transports import Transport, TransportError, with_retries
from shipper.hooks import Hooks
from shipper.ledger import Ledger
from shipper.redact import get_logger, scrub
from shipper.retry import RetryPolicy

log = get_logger("shipper.files.delivery")

T = TypeVar("T")


class Stop(Exception):
    """The destination cannot go on in this run (the reason is in the report)."""


class Retrying:
    """Calls on a transport, retried under the destination's policy (`with_retries`)."""

    def __init__(self, name: str, transport: Transport, policy: RetryPolicy,
                 hooks: Hooks) -> None:
        self.name = name
        self.transport = transport
        self.policy = policy
        self.hooks = hooks
        self.rng = hooks.rng or random.Random()

    def __call__(self, what: str, action: Callable[[], T]) -> T:
        return with_retries(self.transport, what, action, policy=self.policy,
                            clock=self.hooks.clock, sleep=self.hooks.sleep, rng=self.rng,
                            name=self.name)


def write_to_outbox(transport: Transport, report: FileReport, part: FinishedPart,
                    name: str) -> None:
    """A dry run's part: written into the outbox (a directory transport), nothing recorded."""
    location = transport.put(part.path, name)
    report.counts.sent += part.rows
    report.outbox_files += 1
    report.files.append(FileOutcome(name, part.rows, part.size, part.sha256, "written",
                                    location))


@dataclass
class Uploader:
    """A live run's parts: journaled, uploaded, their rows recorded in the ledger."""

    ledger: Ledger
    journal: FileJournal
    retrying: Retrying
    report: FileReport
    run_id: str
    force: bool

    def upload(self, part: FinishedPart, name: str, file_id: str) -> None:
        if not self.force and self._already_delivered(part, name, file_id):
            return
        journal, transport, counts = self.journal, self.retrying.transport, self.report.counts
        journal.file_written(file_id, name, transport.describe(name), part.rows,
                             part.size, part.sha256)
        counts.sent += part.rows
        attempts = 0

        def put() -> str:
            nonlocal attempts
            attempts += 1
            return transport.put(part.path, name)

        try:
            location = self.retrying(f"uploading {name}", put)
        except TransportError as exc:
            self._failed(part, name, file_id, scrub(str(exc)), attempts)
            raise Stop() from None
        journal.mark_uploaded(file_id, location, attempts)
        counts.accepted += part.rows
        journal.mark_delivered(file_id, self.run_id, attempts, counts)
        self.ledger.note_delivered(self.report.name)
        log.info("%s: delivered %s (%d rows, %d bytes) to %s", self.report.name, name,
                 part.rows, part.size, location)
        self._outcome(part, name, "delivered", location)

    def _already_delivered(self, part: FinishedPart, name: str, file_id: str) -> bool:
        """Same bytes as a delivered file: its rows are on the server already."""
        earlier = self.journal.delivered_with_checksum(part.sha256)
        if earlier is None:
            return False
        counts = self.report.counts
        self.journal.mark_duplicate(file_id, self.run_id, name, part.sha256, part.rows,
                                    earlier["file_name"], counts)
        counts.skipped += part.rows
        log.info("%s: %s has the same content as %s, delivered %s; not uploaded again "
                 "(use --force to upload it anyway)", self.report.name, name,
                 earlier["file_name"], earlier["finished_at"])
        self._outcome(part, name, "duplicate", earlier["location"] or "")
        return True

    def _failed(self, part: FinishedPart, name: str, file_id: str, reason: str,
                attempts: int) -> None:
        """The upload gave up: its rows failed (sent again next run), the run stops."""
        counts = self.report.counts
        counts.failed += part.rows
        self.journal.mark_failed(file_id, self.run_id, reason, attempts, counts)
        self._outcome(part, name, "failed", self.retrying.transport.describe(name))
        self.report.problem = reason
        log.error("%s: %s was not delivered: %s", self.report.name, name, reason)
        transport = self.retrying.transport
        try:
            transport.reset()
            transport.discard_temporary(name)
        except TransportError:
            return  # the next run tries again (temporary_removed stays false)
        self.journal.temporary_removed(file_id)

    def _outcome(self, part: FinishedPart, name: str, status: str, location: str) -> None:
        self.report.files.append(FileOutcome(name, part.rows, part.size, part.sha256, status,
                                             location))


@dataclass
class EarlierRuns:
    """The files a killed run left mid-way (see `shipper.files.journal`), settled before
    this run decides what is pending."""

    name: str
    journal: FileJournal
    retrying: Retrying

    def settle(self) -> None:
        for record in self.journal.unfinished():
            self._settle(record)
        for record in self.journal.temporaries_left():
            self._remove_temporary(record)

    def _settle(self, record: FileRecord) -> None:
        journal, transport = self.journal, self.retrying.transport
        file_id, status, name = record["file_id"], record["status"], record["file_name"]
        if status == "writing":  # nothing left this machine
            journal.mark_abandoned(file_id, "the run stopped while writing the file")
            return
        if status == "uploading":
            size = self.retrying(f"checking {name}", partial(transport.size, name))
            if size is None or size != record["bytes"]:
                self.retrying(f"removing the temporary file of {name}",
                              partial(transport.discard_temporary, name))
                journal.mark_abandoned(file_id, "the run stopped before the upload finished")
                journal.temporary_removed(file_id)
                log.info("%s: %s from run %s never reached the server whole; its rows go "
                         "in this run's file", self.name, name, record["run_id"])
                return
            log.info("%s: %s from run %s is complete on the server; recording its "
                     "rows as delivered", self.name, name, record["run_id"])
            journal.mark_uploaded(file_id, transport.describe(name), 0)
        rows = journal.mark_delivered(file_id, record["run_id"], 1, None)
        log.info("%s: recorded the %d rows of %s as delivered", self.name, rows, name)

    def _remove_temporary(self, record: FileRecord) -> None:
        name = record["file_name"]
        try:
            self.retrying(f"removing the temporary file of {name}",
                          partial(self.retrying.transport.discard_temporary, name))
        except TransportError as exc:
            log.warning("%s: could not remove the temporary file of %s (%s)", self.name,
                        name, exc)
            return
        self.journal.temporary_removed(record["file_id"])
