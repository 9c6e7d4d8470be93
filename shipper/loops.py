"""Which delivery loop ships a destination, and checks its mart: one per way rows travel.

A REST destination's rows go through `shipper.delivery` (batched requests), a file
destination's through `shipper.files.delivery` (CSV files). Both are `Loop`s with the
same two operations, so the CLI ships and validates any destination without knowing
which kind it is. A destination's loop is the one registered for the nearest of its
base classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from shipper.delivery import DestinationReport, RunContext, ship_destination
from shipper.destinations.base import EVENTS, Destination, RestDestination
from shipper.files.delivery import ship_files
from shipper.files.destination import FileDestination
from shipper.ledger import RunCounts
from shipper.pending import expired_condition
from shipper.reader import fetch_one

__all__ = ["Loop", "loop_for"]


@dataclass(frozen=True)
class Loop:
    """How one kind of destination is shipped, and how its mart is checked."""

    # Ship the destination's pending rows; the report says what happened.
    ship: Callable[[Destination, RunContext], DestinationReport]
    # Count the mart's rows the loop could not send, by reason (`ship validate`);
    # raises MartError when the mart cannot be shipped at all.
    count_invalid: Callable[[duckdb.DuckDBPyConnection, str, Destination], RunCounts]


def loop_for(cls: type[Destination]) -> Loop:
    """The loop of a destination class: that of the nearest base class that has one."""
    for base in cls.__mro__:
        loop = _LOOPS.get(base)
        if loop is not None:
            return loop
    raise TypeError(f"{cls.__name__} is neither a RestDestination nor a FileDestination")


def _ship_rest(destination: Destination, context: RunContext) -> DestinationReport:
    assert isinstance(destination, RestDestination)  # loop_for chose this loop by its class
    return ship_destination(destination, context)


def _ship_files(destination: Destination, context: RunContext) -> DestinationReport:
    assert isinstance(destination, FileDestination)  # loop_for chose this loop by its class
    return ship_files(
        destination, ledger=context.ledger, source=context.source, run_id=context.run_id,
        dry_run=context.dry_run, outbox_dir=context.outbox_dir,
        read_batch_rows=context.read_batch_rows, hooks=context.hooks,
        progress=context.progress, force=context.force, config=context.config,
    )


def _payload_problems(con: duckdb.DuckDBPyConnection, relation: str,
                      destination: Destination) -> RunCounts:
    """What the shipper relies on in a REST mart, counted in one pass (the mart's dbt
    tests prove the same; this checks the table as it is now)."""
    assert isinstance(destination, RestDestination)  # loop_for chose this loop by its class
    # The expiry of a run (each event's own limit where the mart names one).
    expired = (f"count(*) filter (where {expired_condition(destination, destination.now(), '')})"
               if destination.kind == EVENTS else "0")
    total, missing_key, repeated, not_object, old = fetch_one(con, f"""
        select
            count(*),
            count(*) filter (where delivery_key is null),
            count(delivery_key) - count(distinct delivery_key),
            count(*) filter (
                where coalesce(case when json_valid(payload) then json_type(payload) end,
                               '') <> 'OBJECT'),
            {expired}
        from {relation}
    """) or (0, 0, 0, 0, 0)
    return _invalid(RunCounts(read=int(total), expired=int(old)),
                    {"delivery_key is missing": missing_key,
                     "delivery_key is repeated": repeated,
                     "payload is not a JSON object": not_object})


def _file_row_problems(con: duckdb.DuckDBPyConnection, relation: str,
                       destination: Destination) -> RunCounts:
    """What the file loop relies on in a file mart, counted in one pass: delivery_key
    plus at least one file column of a type a file can hold (MartError otherwise),
    and every key present and unique. The mart's dbt tests prove what the cells hold."""
    assert isinstance(destination, FileDestination)  # loop_for chose this loop by its class
    destination.file_columns(con, relation)
    total, missing_key, repeated = fetch_one(con, f"""
        select
            count(*),
            count(*) filter (where delivery_key is null or cast(delivery_key as varchar) = ''),
            count(delivery_key) - count(distinct delivery_key)
        from {relation}
    """) or (0, 0, 0)
    return _invalid(RunCounts(read=int(total)),
                    {"delivery_key is missing": missing_key, "delivery_key is repeated": repeated})


def _invalid(counts: RunCounts, by_reason: dict[str, int]) -> RunCounts:
    """`counts` with the invalid rows of each reason (those with any) added."""
    for reason, count in by_reason.items():
        if count:
            counts.rejected += int(count)
            counts.rejected_by_reason[reason] = int(count)
    return counts


_LOOPS: dict[type[Destination], Loop] = {
    RestDestination: Loop(_ship_rest, _payload_problems),
    FileDestination: Loop(_ship_files, _file_row_problems),
}
