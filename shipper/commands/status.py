"""`ship status`: the recent runs, the rejected rows (with the order each one is,
looked up in the marts), and the requests a platform processes after answering;
as tables, or with --json as one JSON document on stdout."""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import duckdb

from shipper import destinations
from shipper.commands.common import check_known
from shipper.commands.output import table, time_cell
from shipper.config import Config, ConfigError
from shipper.hooks import Hooks
from shipper.jsontypes import JsonValue
from shipper.ledger import Ledger, set_memory_limit
from shipper.ledger.connection import Row
from shipper.reader import MartError, source_from_settings
from shipper.redact import scrub

# The mart column that names the order a row is (every event mart but The Trade
# Desk's per-identifier keys has it; profile marts have none). Not PII: it is the
# retailer's own order number, and it is read from the mart, never kept in the ledger.
ORDER_ID = "order_id"


@dataclass
class StatusReport:
    """What `ship status` shows, read from the ledger (and the marts, for order ids)."""

    ledger: str
    runs: list[Row] = field(default_factory=list)
    rejection_counts: list[Row] = field(default_factory=list)
    rejections: list[Row] = field(default_factory=list)
    request_counts: list[Row] = field(default_factory=list)
    request_problems: list[Row] = field(default_factory=list)
    refresh_problems: list[str] = field(default_factory=list)


def cmd_status(args: argparse.Namespace, config: Config, hooks: Hooks) -> int:
    check_known(args.destinations)
    if not Path(config.ship.ledger_path).is_file():
        return _nothing_shipped(config, args.json)
    # With --json, stdout holds the document only.
    out = sys.stderr if args.json else sys.stdout
    refresh_problems = (_refresh_request_statuses(args.destinations, config, hooks, out)
                        if args.refresh else [])
    ledger = Ledger.open_read_only(config.ship.ledger_path)
    if ledger is None:
        return _nothing_shipped(config, args.json)
    with ledger:
        report = _read(ledger, args)
    report.refresh_problems = refresh_problems
    _add_order_ids(report.rejections, config)
    if args.json:
        print(scrub(json.dumps(_as_json(report), default=_json_value, indent=2)))
    else:
        _print_tables(report)
    for problem in refresh_problems:
        print(scrub(f"ship: {problem}"), file=sys.stderr)
    return 2 if refresh_problems else 0


def _nothing_shipped(config: Config, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ledger": config.ship.ledger_path, "shipped": False}))
    else:
        print(f"no ledger at {config.ship.ledger_path} yet: nothing has been shipped.")
    return 0


def _read(ledger: Ledger, args: argparse.Namespace) -> StatusReport:
    names = args.destinations
    return StatusReport(
        ledger=str(ledger.path),
        runs=ledger.recent_runs(names, per_destination=args.runs),
        rejection_counts=ledger.rejection_counts(names),
        rejections=ledger.rejections(names, limit=args.rejections),
        request_counts=ledger.request_counts(names),
        request_problems=ledger.request_problems(names, limit=args.rejections),
    )


def _add_order_ids(rejections: list[Row], config: Config) -> None:
    """Set each rejected row's `order_id` from its destination's mart, where the mart has
    one and still holds the row; None otherwise."""
    by_destination: dict[str, list[str]] = {}
    for row in rejections:
        row[ORDER_ID] = None
        by_destination.setdefault(row["destination"], []).append(str(row["delivery_key"]))
    found: dict[tuple[str, str], str] = {}
    con = duckdb.connect()
    try:
        if config.ship.duckdb_memory_limit:
            set_memory_limit(con, config.ship.duckdb_memory_limit)
        for name, keys in by_destination.items():
            settings = config.destinations.get(name)
            if settings is not None:
                for key, order_id in _order_ids(con, config, settings.mart, keys).items():
                    found[(name, key)] = order_id
    finally:
        con.close()
    for row in rejections:
        row[ORDER_ID] = found.get((row["destination"], str(row["delivery_key"])))


def _order_ids(con: duckdb.DuckDBPyConnection, config: Config, mart: str,
               keys: Sequence[str]) -> dict[str, str]:
    """delivery_key -> order_id of `keys` in `mart`; empty when the mart cannot be read or
    has no order_id column (the status is still worth printing)."""
    try:
        relation = source_from_settings(config.ship).relation(con, mart)
        columns = {row[0] for row in con.execute(f"describe select * from {relation}")
                   .fetchall()}
        if ORDER_ID not in columns:
            return {}
        rows = con.execute(
            f"select cast(delivery_key as varchar), cast({ORDER_ID} as varchar) "
            f"from {relation} where cast(delivery_key as varchar) in "
            f"(select unnest($keys::varchar[]))", {"keys": list(keys)}).fetchall()
    except (MartError, duckdb.Error):
        return {}
    return {key: order_id for key, order_id in rows if order_id is not None}


def _print_tables(report: StatusReport) -> None:
    print(f"ledger: {report.ledger}")
    print("recent runs:")
    print(table(
        ("destination", "run_id", "mode", "status", "started_at", "finished_at", "read",
         "skipped", "sent", "accepted", "rejected", "failed"),
        [(run["destination"], run["run_id"], run["mode"], _run_status(run["status"]),
          time_cell(run["started_at"]), time_cell(run["finished_at"]),
          *(f"{run[key]:,}" for key in _RUN_COUNTS)) for run in report.runs],
    ) if report.runs else "  (none)")
    if report.rejection_counts:
        print("rejected rows, by reason:")
        print(table(("destination", "rejected_by", "reason", "rows"),
                    [(row["destination"], row["rejected_by"], row["reason"],
                      f"{row['rows']:,}") for row in report.rejection_counts]))
        print(f"rejected rows (latest {len(report.rejections)}):")
        print(table(("destination", "order_id", "delivery_key", "rejected_by", "reason"),
                    [(row["destination"], row[ORDER_ID] or "-", row["delivery_key"],
                      row["rejected_by"], row["reason"]) for row in report.rejections]))
    else:
        print("rejected rows: none")
    _print_requests(report)


def _print_requests(report: StatusReport) -> None:
    if report.request_counts:
        print("requests processed after the answer (Google Data Manager), by status:")
        print(table(("destination", "status", "requests", "events"),
                    [(row["destination"], row["status"], f"{row['requests']:,}",
                      f"{int(row['events'] or 0):,}") for row in report.request_counts]))
    if report.request_problems:
        print(f"requests not processed without error (latest "
              f"{len(report.request_problems)}):")
        print(scrub(table(
            ("destination", "request_id", "sent_at", "status", "checked_at", "reason"),
            [(row["destination"], row["request_id"], time_cell(row["sent_at"]), row["status"],
              time_cell(row["checked_at"]), row["reason"] or "-")
             for row in report.request_problems])))


_RUN_COUNTS = ("rows_read", "rows_skipped", "rows_sent", "rows_accepted", "rows_rejected",
               "rows_failed")


def _as_json(report: StatusReport) -> dict[str, object]:
    """The tables' information as one document (times in ISO 8601, UTC)."""
    runs = [{**run, "status": _run_status(run["status"])} for run in report.runs]
    return {
        "ledger": report.ledger,
        "shipped": True,
        "runs": runs,
        "rejections_by_reason": report.rejection_counts,
        "rejections": report.rejections,
        "requests_by_status": report.request_counts,
        "request_problems": report.request_problems,
        "refresh_problems": report.refresh_problems,
    }


def _json_value(value: object) -> JsonValue:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _run_status(status: str) -> str:
    # A live run holds the ledger's write lock, so status could not have opened it:
    # a run still marked running is one whose process died.
    return "interrupted" if status == "running" else status


def _refresh_request_statuses(names: Sequence[str], config: Config, hooks: Hooks,
                              out: TextIO) -> list[str]:
    """`ship status --refresh`: each named (or enabled) destination that has requests a
    platform processes later asks about them now. Returns what could not be asked."""
    chosen = list(names) or [name for name in destinations.implemented()
                             if config.settings_for(name).enabled]
    refreshable = [name for name in chosen
                   if (cls := destinations.get(name)) is not None and cls.follows_requests]
    if not refreshable:
        if names:
            raise ConfigError(f"{', '.join(names)} has no requests processed after the answer: "
                              "--refresh applies to google_ads.")
        return []
    problems = []
    with Ledger.open(config.ship.ledger_path, config.ship.duckdb_memory_limit) as ledger:
        for name in refreshable:
            problem = _refresh_one(name, config, hooks, ledger, out)
            if problem:
                problems.append(problem)
    return problems


def _refresh_one(name: str, config: Config, hooks: Hooks, ledger: Ledger,
                 out: TextIO) -> str | None:
    cls = destinations.get(name)
    assert cls is not None  # _refresh_request_statuses keeps implemented ones only
    credentials = config.credentials_for(name)
    if credentials is None:
        raise ConfigError(f"{name} cannot be asked about its requests without "
                          f"{cls.credential_hint()}: set it in the environment, or "
                          "run ship status without --refresh.")
    destination = cls(config.settings_for(name), credentials, now=hooks.wallclock)
    try:
        check = destination.refresh_request_status(ledger, hooks)
    finally:
        destination.close()
    print(scrub(check.describe(name)), file=out)
    if check.problem:
        return f"{name}: could not ask about every request: {check.problem}"
    return None
