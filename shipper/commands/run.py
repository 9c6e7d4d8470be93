"""`ship run`: check the configuration, optionally build the marts, ship each
destination through its delivery loop, print the summary."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from shipper import loops
from shipper.commands import dbt_build
from shipper.commands.common import destination_class, event_clock, select_destinations
from shipper.commands.output import table
from shipper.config import Config, ConfigError, require
from shipper.destinations.base import Destination
from shipper.guards import build_problem, shrink_problem
from shipper.hooks import Hooks
from shipper.ledger import Ledger, LedgerError
from shipper.progress import Progress
from shipper.reader import DuckDBSource, MartError, MartSource, source_from_settings
from shipper.redact import get_logger, scrub
from shipper.report import DestinationReport, RunContext

log = get_logger("shipper")

# Destinations that deliver the same mart to one platform by two paths; sending
# both live would count every sale twice there.
ALTERNATIVE_PATHS = (("pinterest", "pinterest_file"), ("snapchat", "snapchat_file"))


@dataclass(frozen=True)
class RunPlan:
    """What `ship run` was asked to do, checked before anything is built or sent."""

    classes: dict[str, type[Destination]]
    # None for a destination whose credentials are not all set (a dry run needs none).
    credentials: dict[str, dict[str, str] | None]
    dry_run: bool
    outbox_dir: Path


def cmd_run(args: argparse.Namespace, config: Config, hooks: Hooks) -> int:
    names = select_destinations(args.destinations, config)
    if not names:
        print("nothing to ship: no destination is enabled in the config.")
        return 0
    plan = _plan(names, args, config)
    if args.build:
        dbt_build.build(config, args.vars)
    run_id = new_run_id(hooks.wallclock)
    source = source_from_settings(config.ship)
    if isinstance(source, DuckDBSource) and not source.path.is_file():
        raise MartError(
            f"there is no DuckDB file at {source.path}: build the marts with dbt or point "
            "DUCKDB_PATH at the database that holds them."
        )
    reports = _ship_all(plan, args, config, hooks, run_id, source)
    print_summary(reports, run_id)
    print(f"ledger: {config.ship.ledger_path}")
    if plan.dry_run:
        print(f"dry run: request bodies are in {plan.outbox_dir}; nothing was sent.")
    return max((report.exit_code for report in reports), default=0)


def _plan(names: Sequence[str], args: argparse.Namespace, config: Config) -> RunPlan:
    classes = {name: destination_class(name) for name in names}
    plan = RunPlan(classes, {name: config.credentials_for(name) for name in names},
                   bool(args.dry_run), Path(args.outbox or config.ship.outbox_dir))
    if plan.dry_run and plan.outbox_dir.exists() and not plan.outbox_dir.is_dir():
        raise ConfigError(f"the outbox {plan.outbox_dir} is a file, not a folder: name a "
                          "folder with --outbox (or outbox_dir under [ship]).")
    if not plan.dry_run:
        _check_live(plan, config)
    _check_ledger_is_not_the_mart(config)
    if args.as_of is not None and not plan.dry_run:
        raise ConfigError("--as-of only goes with a dry run: platforms judge event age by the "
                          "real clock, so drop --as-of to send.")
    _check_one_path_per_platform(plan)
    return plan


def _check_live(plan: RunPlan, config: Config) -> None:
    """A live run never turns into a dry run, nor skips a destination: a scheduler
    whose secrets did not arrive must hear about it."""
    where = config.path.name if config.path else "shipper.toml"
    missing = [name for name in plan.classes if plan.credentials[name] is None]
    if missing:
        name = missing[0]
        others = f" (and {len(missing) - 1} more destination(s))" if len(missing) > 1 else ""
        raise ConfigError(
            f"{name} cannot be sent without {plan.classes[name].credential_hint()}{others}: "
            f"set it in the environment, disable {name} in {where}, or use --dry-run.")
    for name, cls in plan.classes.items():
        require(name, config.settings_for(name), cls.required_settings, where)


def _ship_all(plan: RunPlan, args: argparse.Namespace, config: Config, hooks: Hooks,
              run_id: str, source: MartSource) -> list[DestinationReport]:
    clock = event_clock(args.as_of, hooks.wallclock)
    reports: list[DestinationReport] = []
    with (Ledger.open(config.ship.ledger_path, config.ship.duckdb_memory_limit) as ledger,
          _rare_cycle_collection()):
        if not plan.dry_run and not args.first_run:
            _check_the_ledger_remembers(ledger, list(plan.classes))
        context = RunContext(
            ledger=ledger, source=source, run_id=run_id, dry_run=plan.dry_run,
            outbox_dir=plan.outbox_dir, read_batch_rows=config.ship.read_batch_rows,
            hooks=hooks, progress=Progress(interval=config.ship.progress_interval_seconds),
            force=bool(args.force), config=config)
        for name, cls in plan.classes.items():
            settings = config.settings_for(name)
            if plan.dry_run:
                unset = [key for key in cls.required_settings if not getattr(settings, key)]
                if unset:
                    log.info("%s: %s is not set; the dry-run bodies are written anyway", name,
                             ", ".join(unset))
            destination = cls(settings, None if plan.dry_run else plan.credentials[name],
                              now=clock)
            report = _ship_one(destination, context, config,
                               check_size=not (plan.dry_run or args.allow_shrink))
            reports.append(report)
            if not plan.dry_run and report.counts.accepted:
                ledger.note_delivered(name)
    return reports


def _ship_one(destination: Destination, context: RunContext, config: Config,
              check_size: bool) -> DestinationReport:
    """One destination: refused before anything is sent when its mart is not the one to
    send, else shipped by its delivery loop."""
    problem = _mart_problem(context.ledger, context.source, destination, config, check_size)
    if problem is None:
        return loops.ship(destination, context)
    name = destination.name
    log.error("%s: %s", name, problem)
    report = DestinationReport(name, "dry_run" if context.dry_run else "live", problem=problem)
    context.ledger.start_run(context.run_id, name, report.mode)
    context.ledger.finish_run(context.run_id, name, report.counts, report.status, problem)
    return report


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


def _check_ledger_is_not_the_mart(config: Config) -> None:
    if config.ship.source != "duckdb":
        return
    if Path(config.ship.ledger_path).resolve() == Path(config.ship.duckdb_path).resolve():
        raise ConfigError(
            "ledger_path points at the mart database: give the ledger its own file "
            "(SHIP_LEDGER_PATH or ledger_path under [ship])."
        )


def _check_one_path_per_platform(plan: RunPlan) -> None:
    if plan.dry_run:
        return
    for first, second in ALTERNATIVE_PATHS:
        if all(name in plan.classes and plan.credentials.get(name) is not None
               for name in (first, second)):
            raise ConfigError(
                f"{first} and {second} would both send the same conversions and count every "
                f"sale twice: disable one of them in shipper.toml "
                f"({second.upper()}_ENABLED=false or {first.upper()}_ENABLED=false).")


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


def new_run_id(wallclock: Callable[[], float]) -> str:
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
    print(scrub(table(headers, rows)))
    reasons = [(report.name, reason, count) for report in reports
               for reason, count in sorted(report.counts.rejected_by_reason.items(),
                                           key=lambda pair: (-pair[1], pair[0]))]
    if reasons:
        print("rejected, by reason:")
        print(scrub(table(("destination", "reason", "rows"),
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
