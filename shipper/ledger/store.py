"""The outcome store: runs and their counts, and every row's outcome (`deliveries`).

Every batch is written in one transaction by the thread that sent it, as soon as
the platform answered and before that thread takes another batch, so a `kill -9`
at any point loses nothing: what was committed is known, and only the batches on
the wire at that moment (at most `concurrency`) are sent again by the next run.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from shipper.ledger.connection import LedgerConnection, transaction, utcnow
from shipper.outcomes import DeliveryRecord, Outcomes, RunCounts
from shipper.redact import scrub

_RECORD_SCHEMA = pa.schema([
    ("delivery_key", pa.string()),
    ("fingerprint", pa.string()),
    ("status", pa.string()),
    ("rejected_by", pa.string()),
    ("attempts", pa.int32()),
    ("error", pa.string()),
])

# Writing one batch's outcomes (OutcomeStore.record): new keys, then keys seen before.
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


class OutcomeStore(LedgerConnection):
    """Runs (`runs`) and outcomes (`deliveries`): what the loops write."""

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
        with self._lock, transaction(self._con):
            self._update_run(run_id, destination, counts)
            self._con.execute(
                "update runs set status = ?, finished_at = ?, message = ? "
                "where run_id = ? and destination = ?",
                [status, utcnow(), scrub(message) if message else None, run_id, destination],
            )

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
        table = _record_table(outcomes)
        params = {"destination": destination, "now": utcnow(), "run_id": run_id}
        with self._lock:
            # Most batches hold keys the ledger has never seen: a plain INSERT writes them.
            # DuckDB keeps memory per INSERT ... ON CONFLICT statement, conflict or not,
            # and never frees it (compare duckdb/duckdb#25162; bench/HISTORY.md), so the
            # upsert is only for a batch whose plain insert meets a key the ledger has.
            try:
                self._write_records(table, _INSERT, params, counts)
            except duckdb.ConstraintException:
                self._write_records(table, _UPSERT, params, counts)

    def _write_records(self, table: pa.Table, sql: str, params: dict[str, object],
                       counts: RunCounts | None) -> None:
        # Registered outside the transaction: a failed statement aborts the transaction,
        # and nothing, not even unregistering, runs in it until the rollback.
        self._con.register("batch_records", table)
        try:
            with transaction(self._con):
                if table.num_rows:
                    self._con.execute(sql, params)
                if counts is not None:
                    self._update_run(str(params["run_id"]), str(params["destination"]),
                                     counts)
        finally:
            self._con.unregister("batch_records")


def _record_table(outcomes: Outcomes) -> pa.Table:
    """The batch as an Arrow table of `deliveries` columns, one row per key."""
    if len(set(outcomes.keys)) != len(outcomes):
        # The last outcome of a key wins should a mart repeat a key inside one batch.
        last = {key: index for index, key in enumerate(outcomes.keys)}
        outcomes = Outcomes.of(outcomes.records()[index] for index in sorted(last.values()))
    # A failed batch gives its thousand rows one reason: scrub each reason once.
    errors = {error: scrub(error)[:2000] for error in set(outcomes.errors) if error}
    error_column = ([errors.get(error) if error else None for error in outcomes.errors]
                    if errors else outcomes.errors)
    return pa.Table.from_arrays(
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
