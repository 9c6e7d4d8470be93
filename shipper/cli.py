"""The `ship` command: run, status, validate.

Exit codes: 0 every row delivered (or nothing to do); 1 some rows were
rejected, by the platform or by validation; 2 the run could not complete
(bad configuration, unreadable mart or ledger, rows that failed after every
retry, credentials the platform refused).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import logging
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from shipper import destinations
from shipper.config import Config, ConfigError, load_config, require
from shipper.delivery import DestinationReport, Progress, RunContext, ship_destination
from shipper.destinations.base import EVENTS, Destination, RestDestination
from shipper.files.delivery import ship_files
from shipper.files.destination import FileDestination
from shipper.guards import build_problem, shrink_problem
from shipper.hooks import Hooks
from shipper.ledger import Ledger, LedgerError, RunCounts, set_memory_limit, storage_problem
from shipper.pending import expired_condition
from shipper.reader import (
    DuckDBSource,
    MartError,
    MartSource,
    check_columns,
    fetch_one,
    source_from_settings,
)
from shipper.redact import ScrubFilter, get_logger, guard_third_party_loggers, scrub

log = get_logger("shipper")

EXIT_CODES = """\
exit codes:
  0  every row delivered (or nothing left to deliver)
  1  some rows were rejected, by the platform or by validation
  2  the run could not complete (configuration, mart, ledger, failed batches)
"""


def main(argv: Sequence[str] | None = None, *, hooks: Hooks | None = None) -> int:
    """Entry point of `ship`; `hooks` lets tests inject the clock, sleep and randomness."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already explained
        return exc.code if isinstance(exc.code, int) else 2
    handler = _setup_logging(args.verbose)
    # Everything ship writes (ledger, scratch files, outbox, staged CSVs) holds customer
    # identifiers: readable by the owner only.
    previous_umask = os.umask(0o077)
    try:
        config = load_config(args.config)
        return int(args.command(args, config, hooks or Hooks()))
    except (ConfigError, MartError, LedgerError) as exc:
        print(scrub(f"ship: {exc}"), file=sys.stderr)
        return 2
    except (duckdb.Error, OSError) as exc:
        # Outside any one destination (opening, recording a run): nothing more can be
        # recorded, so nothing more is sent.
        print(scrub(f"ship: stopped: {storage_problem(exc)}, then run again."),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ship: interrupted; run it again to continue where it stopped.", file=sys.stderr)
        return 2
    finally:
        os.umask(previous_umask)
        logging.getLogger("shipper").removeHandler(handler)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="settings file (default: $SHIP_CONFIG, else ./shipper.toml)")
    common.add_argument("-v", "--verbose", action="store_true", help="log every retry and split")
    names = ", ".join(destinations.known_names())

    as_of_help = ("judge event age as of this UTC date or time (YYYY-MM-DD[THH:MM:SS]) "
                  "instead of now, to check or rehearse a build made for that as_of; "
                  "only with a dry run, since platforms judge by the real clock")

    parser = argparse.ArgumentParser(
        prog="ship",
        description="Send the dbt marts to ad platforms and record every delivery in a ledger.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[common], help="ship marts to their destinations",
        description="Ship each destination's mart; rows already delivered are skipped. "
                    "A live run needs every named (or enabled) destination's credentials "
                    "in the environment; --dry-run sends nothing.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("destinations", nargs="*", metavar="DESTINATION",
                     help=f"destinations to ship (default: every enabled one); one of {names}")
    run.add_argument("--dry-run", action="store_true",
                     help="write request bodies to the outbox instead of sending them")
    run.add_argument("--outbox", metavar="DIR",
                     help="where --dry-run writes bodies (default: outbox_dir in the config)")
    run.add_argument("--as-of", metavar="WHEN", type=_as_of, help=as_of_help)
    run.add_argument("--allow-shrink", action="store_true",
                     help="ship a mart even when it is empty or much smaller than what the "
                          "destination's last live run read (see max_shrink)")
    run.add_argument("--first-run", action="store_true",
                     help="send live even though the ledger has no record of a destination "
                          "that delivered before (after losing the ledger on purpose)")
    run.add_argument("--force", action="store_true",
                     help="file destinations: write and upload every mart row again, "
                          "even rows and files already delivered")
    run.set_defaults(command=cmd_run)

    status = commands.add_parser(
        "status", parents=[common], help="recent runs and rejected rows, from the ledger",
        description="Print the recent runs per destination with their counts, the "
                    "rejected rows with their reasons, and the requests a platform "
                    "processes after answering (Google Data Manager) with their status.",
    )
    status.add_argument("destinations", nargs="*", metavar="DESTINATION",
                        help="limit to these destinations")
    status.add_argument("--runs", type=int, default=5, metavar="N",
                        help="runs shown per destination (default 5)")
    status.add_argument("--rejections", type=int, default=20, metavar="N",
                        help="rejected rows listed (default 20)")
    status.add_argument("--refresh", action="store_true",
                        help="first ask the platforms how they processed the requests that "
                             "have no final status yet (Google Data Manager's "
                             "requestStatus.retrieve), and record it; needs their credentials")
    status.set_defaults(command=cmd_status)

    validate = commands.add_parser(
        "validate", parents=[common], help="check every mart row without sending",
        description="Check each destination's mart against what the shipper relies on "
                    "(the contract's columns; for REST destinations a unique delivery_key "
                    "and a payload that is a JSON object; for file destinations each "
                    "row's cells) and count the invalid rows by reason, and the events "
                    "that are past the platform's age limit now. Exit 1 if any row is "
                    "invalid.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("destinations", nargs="*", metavar="DESTINATION",
                          help="destinations to check (default: every enabled one)")
    validate.add_argument("--as-of", metavar="WHEN", type=_as_of, help=as_of_help.split("; only")[0])
    validate.set_defaults(command=cmd_validate)
    return parser


# -- ship run ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, config: Config, hooks: Hooks) -> int:
    names = select_destinations(args.destinations, config)
    if not names:
        print("nothing to ship: no destination is enabled in the config.")
        return 0
    classes = {name: destinations.get(name) for name in names}
    credentials = {name: _credentials(cls, name, config)
                   for name, cls in classes.items() if cls is not None}
    outbox_dir = Path(args.outbox or config.ship.outbox_dir)
    dry_run = bool(args.dry_run)
    if dry_run and outbox_dir.exists() and not outbox_dir.is_dir():
        raise ConfigError(f"the outbox {outbox_dir} is a file, not a folder: name a folder "
                          "with --outbox (or outbox_dir under [ship]).")
    where = config.path.name if config.path else "shipper.toml"
    if not dry_run:
        # A live run never turns into a dry run, nor skips a destination: a scheduler
        # whose secrets did not arrive must hear about it.
        missing = [(name, cls) for name, cls in classes.items()
                   if cls is not None and credentials[name] is None]
        if missing:
            name, cls = missing[0]
            others = f" (and {len(missing) - 1} more destination(s))" if len(missing) > 1 else ""
            raise ConfigError(
                f"{name} cannot be sent without {cls.credential_hint()}{others}: set it in the "
                f"environment, disable {name} in {where}, or use --dry-run.")
        for name, cls in classes.items():
            if cls is not None:
                require(name, config.settings_for(name), cls.required_settings, where)
    _check_ledger_is_not_the_mart(config)

    if args.as_of is not None and not dry_run:
        raise ConfigError("--as-of only goes with a dry run: platforms judge event age by the "
                          "real clock, so drop --as-of to send.")
    _check_one_path_per_platform(classes, credentials, dry_run)
    event_clock = hooks.wallclock if args.as_of is None else (lambda: args.as_of)
    run_id = new_run_id(hooks.wallclock)
    source = source_from_settings(config.ship)
    if isinstance(source, DuckDBSource) and not source.path.is_file():
        raise MartError(
            f"there is no DuckDB file at {source.path}: build the marts with dbt or point "
            "DUCKDB_PATH at the database that holds them."
        )
    progress = Progress(interval=config.ship.progress_interval_seconds)
    reports: list[DestinationReport] = []
    with (Ledger.open(config.ship.ledger_path, config.ship.duckdb_memory_limit) as ledger,
          _rare_cycle_collection()):
        if not dry_run and not args.first_run:
            _check_the_ledger_remembers(ledger, list(classes))
        for name, cls in classes.items():
            assert cls is not None
            settings = config.settings_for(name)
            if dry_run:
                missing = [key for key in cls.required_settings if not getattr(settings, key)]
                if missing:
                    log.info("%s: %s is not set; the dry-run bodies are written anyway", name,
                             ", ".join(missing))
            destination = cls(settings, None if dry_run else credentials[name],
                              now=event_clock)
            report: DestinationReport
            problem = _mart_problem(ledger, source, destination, config,
                                    check_size=not (dry_run or args.allow_shrink))
            if problem is not None:
                report = _refused(ledger, run_id, name, problem,
                                  "dry_run" if dry_run else "live")
            elif isinstance(destination, FileDestination):
                report = ship_files(
                    destination, ledger=ledger, source=source, run_id=run_id,
                    dry_run=dry_run, outbox_dir=outbox_dir,
                    read_batch_rows=config.ship.read_batch_rows, hooks=hooks,
                    progress=progress, force=bool(args.force), config=config,
                )
            else:
                assert isinstance(destination, RestDestination)
                report = ship_destination(destination, RunContext(
                    ledger=ledger, source=source, run_id=run_id, dry_run=dry_run,
                    outbox_dir=outbox_dir, read_batch_rows=config.ship.read_batch_rows,
                    hooks=hooks, progress=progress,
                ))
            reports.append(report)
            if not dry_run and report.counts.accepted:
                ledger.note_delivered(name)
    print_summary(reports, run_id)
    print(f"ledger: {config.ship.ledger_path}")
    if dry_run:
        print(f"dry run: request bodies are in {outbox_dir}; nothing was sent.")
    return max((report.exit_code for report in reports), default=0)


def _mart_problem(ledger: Ledger, source: MartSource, destination: Destination,
                  config: Config, check_size: bool) -> str | None:
    """Why the destination's mart is not the one to send (stale, empty, shrunk), or None."""
    cursor = ledger.cursor()
    try:
        mart = destination.settings.mart
        relation = source.relation(cursor, mart)
        builds = _build_log(cursor, source)
        problem = build_problem(cursor, builds, mart) if builds else None
        if problem is None and check_size:
            problem = shrink_problem(cursor, relation, mart, destination.name, ledger,
                                     config.ship.max_shrink)
        return problem
    except MartError as exc:
        return str(exc)
    finally:
        cursor.close()


def _build_log(cursor: duckdb.DuckDBPyConnection, source: MartSource) -> str | None:
    """The dbt build log beside the marts, or None where there is none (Parquet exports,
    marts written by something else than this project's dbt build)."""
    if not isinstance(source, DuckDBSource):
        return None
    try:
        return source.relation(cursor, "dbt_builds")
    except MartError:
        log.info("no dbt_builds table beside the marts: whether they come from the latest "
                 "build is not checked")
        return None


def _refused(ledger: Ledger, run_id: str, name: str, problem: str,
             mode: str) -> DestinationReport:
    """A destination stopped before sending anything, recorded as such."""
    log.error("%s: %s", name, problem)
    report = DestinationReport(name, mode, problem=problem)
    ledger.start_run(run_id, name, mode)
    ledger.finish_run(run_id, name, report.counts, report.status, problem)
    return report


def _check_the_ledger_remembers(ledger: Ledger, names: Sequence[str]) -> None:
    """Refuse a live run whose ledger has forgotten what a destination delivered (deleted,
    replaced, or a path that now points elsewhere): it would send everything again."""
    forgotten = [name for name in names
                 if name in ledger.delivered_before() and not ledger.has_deliveries(name)]
    if forgotten:
        raise LedgerError(
            f"the ledger {ledger.path} has no record of what {', '.join(forgotten)} delivered, "
            f"though {ledger.marker_path.name} beside it says it did: restore the ledger "
            "(with its .wal) or point SHIP_LEDGER_PATH at it; --first-run sends everything "
            "again.")


@contextlib.contextmanager
def _rare_cycle_collection() -> Iterator[None]:
    """Run the cycle collector far less often while shipping.

    A run allocates millions of short-lived rows, events and records, none of them in a
    reference cycle (reference counting frees them). At Python's default threshold the
    collector runs every 700 allocations, a few rows, and costs about a tenth of a run's
    CPU for nothing.
    """
    previous = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def select_destinations(requested: Sequence[str], config: Config) -> list[str]:
    """Named destinations (checked), or every enabled one that has a module."""
    known = destinations.known_names()
    for name in requested:
        if name not in known:
            raise ConfigError(f"unknown destination {name!r}: use one of {', '.join(known)}.")
    implemented = destinations.implemented()
    if requested:
        for name in requested:
            if name not in implemented:
                why = destinations.unavailable(name)
                if why:
                    raise ConfigError(f"{name} cannot be shipped: {why}; install it.")
                raise ConfigError(
                    f"{name} has no shipper module yet: the implemented destinations are "
                    f"{', '.join(implemented)}."
                )
        return list(dict.fromkeys(requested))
    return [name for name in implemented if config.settings_for(name).enabled]


def _credentials(cls: type[destinations.Destination], name: str,
                 config: Config) -> dict[str, str] | None:
    # File destinations log in with a password or a key, not with all of a fixed list.
    from_env = getattr(cls, "credentials_from_env", None)
    if from_env is not None:
        return from_env(config.settings_for(name), config.env)
    return config.secrets_for(cls.credential_env)


def _as_of(text: str) -> float:
    """argparse type of --as-of: a UTC date or date-time, as unix seconds."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-28") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


# Destinations that deliver the same mart to one platform by two paths; sending
# both live would count every sale twice there.
ALTERNATIVE_PATHS = (("pinterest", "pinterest_file"), ("snapchat", "snapchat_file"))


def _check_one_path_per_platform(classes: dict[str, Any], credentials: dict[str, Any],
                                 dry_run: bool) -> None:
    if dry_run:
        return
    for first, second in ALTERNATIVE_PATHS:
        if all(classes.get(n) is not None and credentials.get(n) is not None
               for n in (first, second)):
            raise ConfigError(
                f"{first} and {second} would both send the same conversions and count every "
                f"sale twice: disable one of them in shipper.toml "
                f"({second.upper()}_ENABLED=false or {first.upper()}_ENABLED=false).")


def new_run_id(wallclock: Any) -> str:
    stamp = dt.datetime.fromtimestamp(wallclock(), dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def print_summary(reports: Sequence[DestinationReport], run_id: str) -> None:
    headers = ("destination", "mode", "status", "read", "skipped", "sent", "accepted",
               "rejected", "failed", "expired")
    rows = []
    for report in reports:
        counts = report.counts
        rows.append((report.name, report.mode, report.status, *(
            f"{value:,}" for value in (counts.read, counts.skipped, counts.sent,
                                       counts.accepted, counts.rejected, counts.failed,
                                       counts.expired))))
    print(f"run {run_id}")
    print(scrub(_table(headers, rows)))
    reasons = [(report.name, reason, count) for report in reports
               for reason, count in sorted(report.counts.rejected_by_reason.items(),
                                           key=lambda pair: (-pair[1], pair[0]))]
    if reasons:
        print("rejected, by reason:")
        print(scrub(_table(("destination", "reason", "rows"),
                           [(name, reason, f"{count:,}") for name, reason, count in reasons])))
    for report in reports:
        for line in report.file_lines:
            print(scrub(line))
    for report in reports:
        if report.problem:
            print(scrub(f"{report.name}: could not complete: {report.problem}"))
        elif report.counts.failed:
            print(f"{report.name}: {report.counts.failed:,} rows failed after every retry; "
                  "they are sent again by the next run.")


# -- ship status -------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, config: Config, hooks: Hooks) -> int:
    known = destinations.known_names()
    for name in args.destinations:
        if name not in known:
            raise ConfigError(f"unknown destination {name!r}: use one of {', '.join(known)}.")
    if not Path(config.ship.ledger_path).is_file():
        print(f"no ledger at {config.ship.ledger_path} yet: nothing has been shipped.")
        return 0
    refresh_problems = (_refresh_request_statuses(args.destinations, config, hooks)
                        if args.refresh else [])
    ledger = Ledger.open_read_only(config.ship.ledger_path)
    if ledger is None:
        print(f"no ledger at {config.ship.ledger_path} yet: nothing has been shipped.")
        return 0
    with ledger:
        runs = ledger.recent_runs(args.destinations, per_destination=args.runs)
        counts = ledger.rejection_counts(args.destinations)
        rejected = ledger.rejections(args.destinations, limit=args.rejections)
        request_counts = ledger.request_counts(args.destinations)
        request_problems = ledger.request_problems(args.destinations, limit=args.rejections)
    print(f"ledger: {config.ship.ledger_path}")
    print("recent runs:")
    print(_table(
        ("destination", "run_id", "mode", "status", "started_at", "finished_at", "read",
         "skipped", "sent", "accepted", "rejected", "failed"),
        [(run["destination"], run["run_id"], run["mode"], _run_status(run["status"]),
          _time(run["started_at"]), _time(run["finished_at"]),
          *(f"{run[key]:,}" for key in ("rows_read", "rows_skipped", "rows_sent",
                                         "rows_accepted", "rows_rejected", "rows_failed")))
         for run in runs],
    ) if runs else "  (none)")
    if counts:
        print("rejected rows, by reason:")
        print(_table(("destination", "rejected_by", "reason", "rows"),
                     [(row["destination"], row["rejected_by"], row["reason"],
                       f"{row['rows']:,}") for row in counts]))
        print(f"rejected rows (latest {len(rejected)}):")
        print(_table(("destination", "delivery_key", "rejected_by", "reason"),
                     [(row["destination"], row["delivery_key"], row["rejected_by"],
                       row["reason"]) for row in rejected]))
    else:
        print("rejected rows: none")
    if request_counts:
        print("requests processed after the answer (Google Data Manager), by status:")
        print(_table(("destination", "status", "requests", "events"),
                     [(row["destination"], row["status"], f"{row['requests']:,}",
                       f"{int(row['events'] or 0):,}") for row in request_counts]))
    if request_problems:
        print(f"requests not processed without error (latest {len(request_problems)}):")
        print(scrub(_table(
            ("destination", "request_id", "sent_at", "status", "checked_at", "reason"),
            [(row["destination"], row["request_id"], _time(row["sent_at"]), row["status"],
              _time(row["checked_at"]), row["reason"] or "-") for row in request_problems])))
    for problem in refresh_problems:
        print(scrub(f"ship: {problem}"), file=sys.stderr)
    return 2 if refresh_problems else 0


def _refresh_request_statuses(names: Sequence[str], config: Config, hooks: Hooks) -> list[str]:
    """`ship status --refresh`: each named (or enabled) destination that has requests a
    platform processes later asks about them now. Returns what could not be asked."""
    chosen = list(names) or [name for name in destinations.implemented()
                             if config.settings_for(name).enabled]
    refreshable = [(name, cls) for name in chosen
                   if (cls := destinations.get(name)) is not None
                   and hasattr(cls, "refresh_request_status")]
    if not refreshable:
        if names:
            raise ConfigError(f"{', '.join(names)} has no requests processed after the answer: "
                              "--refresh applies to google_ads.")
        return []
    problems = []
    with Ledger.open(config.ship.ledger_path, config.ship.duckdb_memory_limit) as ledger:
        for name, cls in refreshable:
            credentials = _credentials(cls, name, config)
            if credentials is None:
                raise ConfigError(f"{name} cannot be asked about its requests without "
                                  f"{cls.credential_hint()}: set it in the environment, or "
                                  "run ship status without --refresh.")
            destination = cls(config.settings_for(name), credentials, now=hooks.wallclock)
            try:
                check = destination.refresh_request_status(ledger, hooks)  # type: ignore[attr-defined]
            finally:
                destination.close()  # type: ignore[attr-defined]
            print(scrub(check.describe(name)))
            if check.problem:
                problems.append(f"{name}: could not ask about every request: {check.problem}")
    return problems


# -- ship validate -----------------------------------------------------------------------------


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
            cls = destinations.get(name)
            assert cls is not None
            clock = hooks.wallclock if args.as_of is None else (lambda: args.as_of)
            destination = cls(config.settings_for(name), None, now=clock)
            try:
                relation = source.relation(con, destination.settings.mart)
                check_columns(con, relation, destination.settings.mart, destination.columns)
            except MartError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if isinstance(destination, FileDestination):
                try:
                    counts = _file_row_problems(con, relation, destination)
                except MartError as exc:
                    problems.append(f"{name}: {exc}")
                    continue
            else:
                assert isinstance(destination, RestDestination)
                counts = _payload_problems(con, relation, destination)
            results.append((name, counts))
    finally:
        con.close()
    print(_table(("destination", "rows", "valid", "invalid", "expired now"),
                 [(name, f"{counts.read:,}", f"{counts.read - counts.rejected:,}",
                   f"{counts.rejected:,}", f"{counts.expired:,}")
                  for name, counts in results]))
    invalid = [(name, reason, count) for name, counts in results
               for reason, count in sorted(counts.rejected_by_reason.items(),
                                           key=lambda pair: -pair[1])]
    if invalid:
        print("invalid rows, by reason:")
        print(_table(("destination", "reason", "rows"),
                     [(name, reason, f"{count:,}") for name, reason, count in invalid]))
    for problem in problems:
        print(f"ship: {problem}", file=sys.stderr)
    if problems:
        return 2
    return 1 if invalid else 0


def _payload_problems(con: duckdb.DuckDBPyConnection, relation: str,
                      destination: RestDestination) -> RunCounts:
    """What the shipper relies on in a REST mart, counted in one pass (the mart's dbt
    tests prove the same; this checks the table as it is now)."""
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
                       destination: FileDestination) -> RunCounts:
    """What the file loop relies on in a file mart, counted in one pass: delivery_key
    plus at least one file column of a type a file can hold (MartError otherwise),
    and every key present and unique. The mart's dbt tests prove what the cells hold."""
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


# -- helpers -----------------------------------------------------------------------------------


def _check_ledger_is_not_the_mart(config: Config) -> None:
    if config.ship.source != "duckdb":
        return
    if Path(config.ship.ledger_path).resolve() == Path(config.ship.duckdb_path).resolve():
        raise ConfigError(
            "ledger_path points at the mart database: give the ledger its own file "
            "(SHIP_LEDGER_PATH or ledger_path under [ship])."
        )


def _setup_logging(verbose: bool) -> logging.Handler:
    guard_third_party_loggers()
    logger = logging.getLogger("shipper")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(ScrubFilter())
    logger.addHandler(handler)
    # Retry lines are INFO; with --verbose the split/retry details show too.
    return handler


def _printable(value: Any) -> str:
    """A cell as text with control characters escaped: a platform's message or a mart
    value must not move the cursor or recolour the terminal."""
    text = str(value)
    if not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text):
        return text
    return "".join(char if not (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0)
                   else f"\\x{ord(char):02x}" for char in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = ([[_printable(value) for value in headers]]
             + [[_printable(value) for value in row] for row in rows])
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(
            value.rjust(width) if value.replace(",", "").isdigit() else value.ljust(width)
            for value, width in zip(row, widths, strict=True)
        ).rstrip())
    return "\n".join(lines)


def _run_status(status: str) -> str:
    # A live run holds the ledger's write lock, so status could not have opened it:
    # a run still marked running is one whose process died.
    return "interrupted" if status == "running" else status


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


if __name__ == "__main__":
    sys.exit(main())
