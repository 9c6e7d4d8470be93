"""Which rows of a REST destination's mart are still to handle, decided in SQL.

The ledger knows what each key became; the mart knows what each key is now.
Joining the two inside DuckDB decides, for every row, whether it is done
(skipped), sent now, or expired, without a Python object per row:

events    done when delivered or expired, or rejected by the platform with the
          same payload (sending it again would be refused again);
profiles  done when delivered or rejected by the platform with the same
          `payload_sha256` (a changed profile is sent again).

An event whose `event_time` is older than the platform's hard age limit at
send time is streamed with `__expired` set: recorded as expired, not sent. The
limit is the destination's `max_event_age_days`, or, for a platform whose limit
differs by event (Meta: 62 days for physical_store, 7 for the others), the
limit the mart decided for the row (`age_limit_column`): `expired_condition`.

The run streams what this module returns from the reader's DuckDB
(`Ledger.reader()`): on a first run (the ledger knows none of the mart's keys)
the mart itself, otherwise a Parquet file of the pending rows written here, so
the long stream never holds a transaction in the ledger's database (which
would keep DuckDB from checkpointing it while outcomes are written).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import duckdb

from shipper.destinations.base import EVENTS, SECONDS_PER_DAY, RestDestination
from shipper.reader import fetch_one, quote_identifier, quote_literal

# DuckDB's memory limit while a rerun stages its pending rows: a one-off query,
# which a small limit fails with millions of delivered keys.
STAGING_MEMORY_LIMIT = "1GB"

# Columns of every streamed row, before the module's extra columns.
KEY, PAYLOAD, FINGERPRINT, EXPIRED, PROBLEM = (
    "__key", "__payload", "__fingerprint", "__expired", "__problem")
NOT_AN_OBJECT = "payload is not a JSON object"


@dataclass(frozen=True)
class PendingRows:
    """SQL streaming the rows to handle (in the reader), and what was counted."""

    sql: str
    total: int  # rows in the mart
    skipped: int  # rows the ledger says are done
    missing_key: int  # rows without a delivery_key (the mart's not_null test failed)


def stage(ledger: duckdb.DuckDBPyConnection, destination: RestDestination, relation: str,
          now: float, scratch: Path, memory_limit: str | None) -> PendingRows:
    """Count the mart against the ledger and stage what is pending.

    `ledger` is a cursor of the ledger's database with the mart attached as
    `relation`; the returned SQL reads `relation` (attached the same way in the
    reader) or `scratch`.
    """
    events = destination.kind == EVENTS
    fingerprint = "sha256(mart.payload)" if events else "mart.payload_sha256"
    columns = _streamed_columns(destination, fingerprint, now)
    # An event count joins keys and statuses only, and spills within the run's memory
    # limit (a rerun with nothing new then stays as small as a run); profiles compare
    # fingerprints, which needs the staging limit.
    with nullcontext() if events else _one_off_limits(ledger, memory_limit):
        total, known, skipped, missing_key = _count(ledger, destination.name, relation, events,
                                                    fingerprint)
    counted = {"total": total, "skipped": skipped, "missing_key": missing_key}
    if skipped + missing_key == total:
        return PendingRows(f"select {columns} from {relation} as mart where false", **counted)
    if known == 0:
        # A first run: nothing to join, the mart is streamed as it is.
        return PendingRows(f"select {columns} from {relation} as mart "
                           "where mart.delivery_key is not null", **counted)
    with _one_off_limits(ledger, memory_limit):
        _write_pending(ledger, destination.name, relation, events, fingerprint, columns,
                       scratch)
    streamed = ", ".join(quote_identifier(column) for column in
                         (KEY, PAYLOAD, FINGERPRINT, EXPIRED, PROBLEM,
                          *destination.extra_columns))
    return PendingRows(f"select {streamed} from read_parquet({quote_literal(str(scratch))})",
                       **counted)


@contextmanager
def _one_off_limits(ledger: duckdb.DuckDBPyConnection, memory_limit: str | None,
                    ) -> Iterator[None]:
    """One thread and STAGING_MEMORY_LIMIT for the staging queries, then the run's own
    settings again: with millions of keys they need more than the run's small limit."""
    ledger.execute("set threads = 1")
    ledger.execute(f"set memory_limit = '{STAGING_MEMORY_LIMIT}'")
    try:
        yield
    finally:
        ledger.execute("reset threads")
        if memory_limit:
            ledger.execute(f"set memory_limit = {quote_literal(memory_limit)}")
        else:
            ledger.execute("reset memory_limit")


def _count(ledger: duckdb.DuckDBPyConnection, name: str, relation: str, events: bool,
           fingerprint: str) -> tuple[int, int, int, int]:
    """(rows, rows the ledger knows, rows done, rows without a key).

    For events the big join carries the keys' status only; the few keys the platform
    rejected are compared by fingerprint in a join of their own.
    """
    destination = quote_literal(name)
    state = "delivery_key, status" if events else "delivery_key, status, fingerprint, rejected_by"
    done = ("state.status in ('delivered', 'expired')" if events
            else _done_condition(events, fingerprint))
    total, known, done_rows, missing_key = fetch_one(ledger, f"""
        select
            count(*),
            count(state.delivery_key),
            count(*) filter (where {done}),
            count(*) filter (where mart.delivery_key is null)
        from {relation} as mart
        left join (select {state} from deliveries where destination = {destination}) as state
            on state.delivery_key = cast(mart.delivery_key as varchar)
    """) or (0, 0, 0, 0)
    if events:
        rejected_unchanged = fetch_one(ledger, f"""
            select count(*)
            from {relation} as mart
            inner join (
                select delivery_key, fingerprint from deliveries
                where destination = {destination} and status = 'rejected'
                    and rejected_by = 'platform'
            ) as state
                on state.delivery_key = cast(mart.delivery_key as varchar)
            where state.fingerprint = {fingerprint}
        """)
        done_rows += rejected_unchanged[0] if rejected_unchanged else 0
    return int(total), int(known), int(done_rows), int(missing_key)


def _write_pending(ledger: duckdb.DuckDBPyConnection, name: str, relation: str, events: bool,
                   fingerprint: str, columns: str, scratch: Path) -> None:
    """The pending rows, as streamed, to a Parquet file only the owner can read.

    Events: delivered keys only leave rows out, so they go in an anti-join of bare
    keys, and the join carrying a state holds just the few keys not delivered. One
    join holding every key with its 64-character fingerprint needs several times the
    memory. Profiles need every key's fingerprint.
    """
    destination = quote_literal(name)
    delivered = ""
    state_filter = ""
    if events:
        delivered = f"""
            anti join (
                select delivery_key from deliveries
                where destination = {destination} and status in ('delivered', 'expired')
            ) as delivered
                on delivered.delivery_key = cast(mart.delivery_key as varchar)"""
        state_filter = "and status not in ('delivered', 'expired')"
    _write_private(scratch)
    ledger.execute(f"""
        copy (
            select {columns}
            from {relation} as mart
            {delivered}
            left join (
                select delivery_key, status, fingerprint, rejected_by
                from deliveries
                where destination = {destination} {state_filter}
            ) as state
                on state.delivery_key = cast(mart.delivery_key as varchar)
            where mart.delivery_key is not null
                and not ({_done_condition(events, fingerprint)})
        ) to {quote_literal(str(scratch))} (format parquet, row_group_size 8192)
    """)


def _done_condition(events: bool, fingerprint: str) -> str:
    """SQL over `state` (the ledger's row of the key, NULLs when none) and `mart`:
    true when the row needs nothing more. The fingerprint is computed only for keys
    the platform rejected (CASE evaluates its branches only where they apply)."""
    rejected_unchanged = (f"case when state.status = 'rejected' and state.rejected_by = "
                          f"'platform' then state.fingerprint = {fingerprint} else false end")
    if events:
        done = f"state.status in ('delivered', 'expired') or {rejected_unchanged}"
    else:
        done = (f"case when state.status = 'delivered' then state.fingerprint = {fingerprint} "
                f"else false end or {rejected_unchanged}")
    # A key the ledger does not know has NULL state: not done.
    return f"coalesce({done}, false)"


def expired_condition(destination: RestDestination, now: float, table: str = "mart") -> str:
    """SQL over the mart's row (`table`, or bare columns when empty): true when the event
    is older than the platform's hard age limit at `now`, unix seconds.

    Whether a row is too old is the only thing about it decided at send time; its limit
    is the `max_event_age_days` setting, or the row's own `age_limit_column` (decided in
    SQL) where the module names one, the setting then holding a row whose limit is NULL.
    Profiles never expire."""
    age = destination.max_age_seconds
    if age is None:
        return "false"
    prefix = f"{table}." if table else ""
    if destination.age_limit_column is None:
        return f"coalesce({prefix}event_time < {int(now) - age}, false)"
    limit_days = (f"coalesce(cast({prefix}{quote_identifier(destination.age_limit_column)} "
                  f"as bigint), {age // SECONDS_PER_DAY})")
    return (f"coalesce({prefix}event_time < {int(now)} - {limit_days} * {SECONDS_PER_DAY}, "
            "false)")


def _streamed_columns(destination: RestDestination, fingerprint: str, now: float) -> str:
    expired = expired_condition(destination, now)
    # A payload that is not shaped as a JSON object would make its whole request invalid:
    # it is rejected alone. Only its shape is checked here, `{` first and `}` last, byte
    # for byte (parsing or trimming every payload would cost more than the rest of the
    # read); the mart's is_json_object test proves the rest at build time, and a
    # platform that refuses a batch for one bad event has it split out.
    problem = (f"case when not coalesce(prefix(mart.payload, '{{') "
               f"and suffix(mart.payload, '}}'), false) then '{NOT_AN_OBJECT}' end")
    # Profiles carry their fingerprint; an event's is only needed should the platform
    # reject it, and is computed then (delivery.py).
    fingerprint_column = "cast(null as varchar)" if destination.kind == EVENTS else fingerprint
    columns = [
        f"cast(mart.delivery_key as varchar) as {KEY}",
        # As text: Python reads each one as a view into the Arrow buffer, no copy.
        f"cast(mart.payload as varchar) as {PAYLOAD}",
        f"{fingerprint_column} as {FINGERPRINT}",
        f"{expired} as {EXPIRED}",
        f"{problem} as {PROBLEM}",
        *(f"mart.{quote_identifier(column)}" for column in destination.extra_columns),
    ]
    return ", ".join(columns)


def _write_private(path: Path) -> None:
    """Create `path` readable by its owner only before DuckDB writes into it: the
    pending rows are hashed identifiers, and for some platforms more."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(descriptor)
