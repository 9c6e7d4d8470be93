"""`ship validate`: count each destination's invalid mart rows by reason, send nothing."""

from __future__ import annotations

import argparse
import sys

import duckdb

from shipper import loops
from shipper.commands.common import destination_class, event_clock, select_destinations
from shipper.commands.output import table
from shipper.config import Config
from shipper.hooks import Hooks
from shipper.ledger import RunCounts, set_memory_limit
from shipper.reader import MartError, MartSource, check_columns, source_from_settings


def cmd_validate(args: argparse.Namespace, config: Config, hooks: Hooks) -> int:
    names = select_destinations(args.destinations, config)
    source = source_from_settings(config.ship)
    results: list[tuple[str, RunCounts]] = []
    problems: list[str] = []
    con = duckdb.connect()
    try:
        if config.ship.duckdb_memory_limit:
            set_memory_limit(con, config.ship.duckdb_memory_limit)
        for name in names:
            try:
                results.append((name, _check(con, source, name, args, config, hooks)))
            except MartError as exc:
                problems.append(f"{name}: {exc}")
    finally:
        con.close()
    invalid = _print_results(results)
    for problem in problems:
        print(f"ship: {problem}", file=sys.stderr)
    if problems:
        return 2
    return 1 if invalid else 0


def _check(con: duckdb.DuckDBPyConnection, source: MartSource, name: str,
           args: argparse.Namespace, config: Config, hooks: Hooks) -> RunCounts:
    """One destination's mart, counted by its delivery loop; MartError when it cannot
    be shipped at all."""
    cls = destination_class(name)
    destination = cls(config.settings_for(name), None,
                      now=event_clock(args.as_of, hooks.wallclock))
    relation = source.relation(con, destination.settings.mart)
    check_columns(con, relation, destination.settings.mart, destination.columns)
    return loops.count_invalid(destination, con, relation)


def _print_results(results: list[tuple[str, RunCounts]]) -> bool:
    """Print the counts; whether any row is invalid."""
    print(table(("destination", "rows", "valid", "invalid", "expired now"),
                [(name, f"{counts.read:,}", f"{counts.read - counts.rejected:,}",
                  f"{counts.rejected:,}", f"{counts.expired:,}")
                 for name, counts in results]))
    invalid = [(name, reason, count) for name, counts in results
               for reason, count in sorted(counts.rejected_by_reason.items(),
                                           key=lambda pair: -pair[1])]
    if invalid:
        print("invalid rows, by reason:")
        print(table(("destination", "reason", "rows"),
                    [(name, reason, f"{count:,}") for name, reason, count in invalid]))
    return bool(invalid)
