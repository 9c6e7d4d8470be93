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
files, file_rows        the files of file destinations and the rows each carried
             (`shipper.files.journal` describes them).

The package, by concern:

schema.py      every table above and the files journal's, under one SCHEMA_VERSION;
               older ledgers (versions 1 and 2) migrated on open
connection.py  the one writer connection, its lock and transactions, LedgerError
store.py       OutcomeStore: runs and their counts, outcome writes (`record`)
requests.py    RequestLog: platform requests whose processing status comes later
queries.py     StatusQueries: reading back for `ship status`, the guards, tests
core.py        Ledger: all three on one connection; opening, closing, scratch files
               beside the ledger, the `.delivered` marker

Which mart rows are still pending is `shipper.pending`'s (SQL over `deliveries`),
and the mart is streamed from a DuckDB of its own (`shipper.reader.open_reader`).
"""

from shipper.ledger.connection import (
    STORAGE_ERRORS,
    LedgerError,
    set_memory_limit,
    storage_problem,
    utcnow,
)
from shipper.ledger.core import Ledger
from shipper.ledger.requests import FINAL_REQUEST_STATUSES
from shipper.ledger.schema import SCHEMA_VERSION
from shipper.outcomes import DeliveryRecord, Outcomes, RunCounts, fingerprint

__all__ = ["FINAL_REQUEST_STATUSES", "SCHEMA_VERSION", "STORAGE_ERRORS", "DeliveryRecord",
           "Ledger", "LedgerError", "Outcomes", "RunCounts", "fingerprint", "set_memory_limit",
           "storage_problem", "utcnow"]
