"""Which rows of a mart are still to handle, decided in SQL: for both loops.

The ledger knows what each key became; the mart knows what each key is now.
Joining the two inside DuckDB decides, for every row, whether it is done
(skipped), sent now, or expired, without a Python object per row. A `Rule`
says when a key is done:

events    done when delivered or expired, or rejected by the platform with the
          same payload (sending it again would be refused again);
profiles  done when delivered or rejected by the platform with the same
          `payload_sha256` (a changed profile is sent again);
files     done when delivered (a row a file could not hold is tried again);
          with --force nothing is done: every row goes in the file.

An event whose `event_time` is older than the platform's hard age limit at
send time is streamed with `__expired` set: recorded as expired, not sent. The
limit is the destination's `max_event_age_days`, or, for a platform whose limit
differs by event (Meta: 62 days for physical_store, 7 for the others), the
limit the mart decided for the row (`age_limit_column`): `expired_condition`.

The run streams what this module returns from the reader's DuckDB
(`shipper.reader.open_reader`): on a first run (the ledger knows none of the
mart's keys) the mart itself, otherwise a Parquet file of the pending rows
written here, so the long stream never holds a transaction in the ledger's
database (which would keep DuckDB from checkpointing it while outcomes are
written).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from shipper.destinations.base import EVENTS, SECONDS_PER_DAY
from shipper.reader import fetch_one, quote_identifier, quote_literal

if TYPE_CHECKING:
    from shipper.destinations.rest import RestDestination

# DuckDB's memory limit while a rerun stages its pending rows: a one-off query,
# which a small limit fails with millions of delivered keys.
STAGING_MEMORY_LIMIT = "1GB"

# Columns of every row a REST destination streams, before the module's extra columns.
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


@dataclass(frozen=True)
class Rule:
    """When a key's row needs nothing more, by the ledger's state of the key (`state`)."""

    # Statuses after which a key is done whatever its row holds now.
    settled: tuple[str, ...]
    # SQL of the row's fingerprint, when the state's is compared with it: a row the
    # platform rejected is done when unchanged, and (nothing `settled`) a delivered one.
    fingerprint: str | None = None

    @property
    def skips_nothing(self) -> bool:
        return not self.settled and self.fingerprint is None


@dataclass(frozen=True)
class Staging:
    """Where and how a destination's pending rows are staged."""

    ledger: duckdb.DuckDBPyConnection  # a cursor of the ledger, the mart attached
    name: str  # the destination
    relation: str  # the mart, as attached in the ledger and in the reader
    scratch: Path  # the Parquet file of a rerun's pending rows
    memory_limit: str | None  # the run's DuckDB memory limit, restored after staging


def stage(ledger: duckdb.DuckDBPyConnection, destination: RestDestination, relation: str,
          now: float, scratch: Path, memory_limit: str | None) -> PendingRows:
    """Count a REST destination's mart against the ledger and stage what is pending.

    `ledger` is a cursor of the ledger's database with the mart attached as
    `relation`; the returned SQL reads `relation` (attached the same way in the
    reader) or `scratch`, and streams KEY, PAYLOAD, FINGERPRINT, EXPIRED, PROBLEM
    and the module's extra columns.
    """
    events = destination.kind == EVENTS
    fingerprint = "sha256(mart.payload)" if events else "mart.payload_sha256"
    rule = Rule(("delivered", "expired") if events else (), fingerprint)
    columns = _streamed_columns(destination, fingerprint, now)
    names = (KEY, PAYLOAD, FINGERPRINT, EXPIRED, PROBLEM, *destination.extra_columns)
    return stage_rows(Staging(ledger, destination.name, relation, scratch, memory_limit),
                      rule, columns, names)


def stage_file_rows(staging: Staging, columns: Sequence[str], force: bool) -> PendingRows:
    """Count a file destination's mart against the ledger and stage what is pending:
    the rows not delivered yet (every row with `force`), with the mart's `columns`."""
    rule = Rule(() if force else ("delivered",))
    selected = ", ".join(f"mart.{quote_identifier(column)}" for column in columns)
    return stage_rows(staging, rule, selected, columns)


def stage_rows(staging: Staging, rule: Rule, columns: str,
               names: Sequence[str]) -> PendingRows:
    """The rows of the mart `rule` does not call done, as SQL for the reader.

    `columns` is the SELECT list over `mart` (and `state`, the key's ledger row),
    `names` the names it gives the columns.
    """
    ledger, relation = staging.ledger, staging.relation
    # Counting statuses only joins keys and statuses, and spills within the run's memory
    # limit (a rerun with nothing new then stays as small as a run); comparing every
    # key's fingerprint (profiles) needs the staging limit.
    compares = not rule.settled and rule.fingerprint is not None
    with _one_off_limits(ledger, staging.memory_limit) if compares else nullcontext():
        total, known, skipped, missing_key = _count(ledger, staging.name, relation, rule)
    counted = {"total": total, "skipped": skipped, "missing_key": missing_key}
    if skipped + missing_key == total:
        return PendingRows(f"select {columns} from {relation} as mart where false", **counted)
    if known == 0 or rule.skips_nothing:
        # A first run, or nothing to skip: the mart is streamed as it is.
        return PendingRows(f"select {columns} from {relation} as mart "
                           "where mart.delivery_key is not null", **counted)
    with _one_off_limits(ledger, staging.memory_limit):
        _write_pending(staging, rule, columns)
    streamed = ", ".join(quote_identifier(name) for name in names)
    scratch = quote_literal(str(staging.scratch))
    return PendingRows(f"select {streamed} from read_parquet({scratch})", **counted)


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


def _count(ledger: duckdb.DuckDBPyConnection, name: str, relation: str,
           rule: Rule) -> tuple[int, int, int, int]:
    """(rows, rows the ledger knows, rows done, rows without a key).

    Where statuses settle most keys (events, files) the big join carries the keys'
    status only; the few keys the platform rejected are compared by fingerprint in a
    join of their own.
    """
    destination = quote_literal(name)
    if rule.settled or rule.fingerprint is None:
        state, done = "delivery_key, status", _settled(rule)
    else:
        state = "delivery_key, status, fingerprint, rejected_by"
        done = _done_condition(rule)
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
    if rule.settled and rule.fingerprint is not None:
        rejected_unchanged = fetch_one(ledger, f"""
            select count(*)
            from {relation} as mart
            inner join (
                select delivery_key, fingerprint from deliveries
                where destination = {destination} and status = 'rejected'
                    and rejected_by = 'platform'
            ) as state
                on state.delivery_key = cast(mart.delivery_key as varchar)
            where state.fingerprint = {rule.fingerprint}
        """)
        done_rows += rejected_unchanged[0] if rejected_unchanged else 0
    return int(total), int(known), int(done_rows), int(missing_key)


def _write_pending(staging: Staging, rule: Rule, columns: str) -> None:
    """The pending rows, as streamed, to a Parquet file only the owner can read.

    Settled keys only leave rows out, so they go in an anti-join of bare keys, and
    the join carrying a state (for the fingerprint comparison) holds just the few
    keys not settled. One join holding every key with its 64-character fingerprint
    needs several times the memory. Profiles need every key's fingerprint.
    """
    destination = quote_literal(staging.name)
    settled = ", ".join(quote_literal(status) for status in rule.settled)
    skip_settled = state_join = condition = ""
    if rule.settled:
        skip_settled = f"""
            anti join (
                select delivery_key from deliveries
                where destination = {destination} and status in ({settled})
            ) as settled
                on settled.delivery_key = cast(mart.delivery_key as varchar)"""
    if rule.fingerprint is not None:
        state_filter = f"and status not in ({settled})" if rule.settled else ""
        state_join = f"""
            left join (
                select delivery_key, status, fingerprint, rejected_by
                from deliveries
                where destination = {destination} {state_filter}
            ) as state
                on state.delivery_key = cast(mart.delivery_key as varchar)"""
        condition = f"and not ({_done_condition(rule)})"
    _write_private(staging.scratch)
    staging.ledger.execute(f"""
        copy (
            select {columns}
            from {staging.relation} as mart
            {skip_settled}
            {state_join}
            where mart.delivery_key is not null {condition}
        ) to {quote_literal(str(staging.scratch))} (format parquet, row_group_size 8192)
    """)


def _settled(rule: Rule) -> str:
    """SQL over `state`: true when the key's status settles it."""
    if not rule.settled:
        return "false"
    return f"state.status in ({', '.join(quote_literal(status) for status in rule.settled)})"


def _done_condition(rule: Rule) -> str:
    """SQL over `state` (the ledger's row of the key, NULLs when none) and `mart`:
    true when the row needs nothing more. The fingerprint is computed only for keys
    the platform rejected (CASE evaluates its branches only where they apply)."""
    done = [_settled(rule)] if rule.settled else []
    fingerprint = rule.fingerprint
    if fingerprint is not None:
        if not rule.settled:
            done.append(f"case when state.status = 'delivered' then state.fingerprint = "
                        f"{fingerprint} else false end")
        done.append(f"case when state.status = 'rejected' and state.rejected_by = "
                    f"'platform' then state.fingerprint = {fingerprint} else false end")
    # A key the ledger does not know has NULL state: not done.
    return f"coalesce({' or '.join(done) or 'false'}, false)"


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
