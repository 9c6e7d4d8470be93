"""Requests a platform answers at once and processes later (Google Data Manager's
requestId): `platform_requests` and which keys each carried, `platform_request_rows`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa

from shipper.ledger.connection import LedgerConnection, Row, fetch_one, transaction, utcnow
from shipper.reader import quote_literal
from shipper.redact import scrub

# platform_requests.status values that are final: the platform will say nothing more.
FINAL_REQUEST_STATUSES = ("SUCCESS", "PARTIAL_SUCCESS", "FAILED", "NOT_FOUND", "NO_STATUS")
_FINAL = ", ".join(quote_literal(status) for status in FINAL_REQUEST_STATUSES)

# The rows a request delivered (those still delivered by that request's run) take the
# platform's later verdict.
_SETTLE_ROWS = """
    update deliveries
    set status = $rows_status,
        rejected_by = case when $rows_status = 'rejected' then 'platform' end,
        error = $rows_reason,
        last_attempt_at = $now
    where destination = $destination
        and status = 'delivered'
        and run_id = (
            select run_id from platform_requests
            where destination = $destination and request_id = $request_id)
        and delivery_key in (
            select delivery_key from platform_request_rows
            where destination = $destination and request_id = $request_id)
"""


class RequestLog(LedgerConnection):
    """Platform requests whose processing status is asked for later."""

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
                with transaction(self._con):
                    self._con.execute(
                        "insert into platform_requests (destination, request_id, run_id, "
                        "sent_at, events, status) values ($destination, $request_id, "
                        "$run_id, $now, $events, 'sent') on conflict do nothing", params)
                    self._con.execute(
                        "insert into platform_request_rows select $destination, $request_id, "
                        "delivery_key from request_keys",
                        {"destination": destination, "request_id": request_id})
            finally:
                self._con.unregister("request_keys")

    def requests_to_check(self, destination: str, *, sent_before: dt.datetime | None = None,
                          limit: int = 1000) -> list[Row]:
        """The destination's requests whose processing status is not final yet, oldest
        first (those sent before `sent_before`, when given)."""
        when = "and sent_at <= $sent_before" if sent_before is not None else ""
        params: dict[str, object] = {"destination": destination}
        if sent_before is not None:
            params["sent_before"] = sent_before
        return self._dicts(
            f"select request_id, run_id, events, status, sent_at, checks "
            f"from platform_requests where destination = $destination "
            f"and status not in ({_FINAL}) {when} "
            f"order by sent_at, request_id limit {int(limit)}", params)

    def give_up_requests(self, destination: str, sent_before: dt.datetime,
                         reason: str) -> int:
        """Stop asking about requests sent before `sent_before` that never got a final
        status: they become NO_STATUS with `reason`. Returns how many."""
        with self._lock:
            row = fetch_one(self._con, f"""
                update platform_requests
                set status = 'NO_STATUS', reason = $reason, checked_at = $now
                where destination = $destination and status not in ({_FINAL})
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
        changed = 0
        with self._lock, transaction(self._con):
            self._con.execute(
                "update platform_requests set status = $status, reason = $reason, "
                "checked_at = $now, checks = checks + 1 "
                "where destination = $destination and request_id = $request_id",
                {**params, "status": status, "now": now,
                 "reason": scrub(reason)[:2000] if reason else None})
            if rows_status is not None:
                row = fetch_one(self._con, _SETTLE_ROWS, {
                    **params, "rows_status": rows_status, "now": now,
                    "rows_reason": scrub(rows_reason)[:2000] if rows_reason else None})
                changed = int(row[0]) if row else 0
        return changed
