"""The `ship` command: its arguments, logging and exit codes; each subcommand is a
module of `shipper.commands` (run, status, validate).

Exit codes: 0 every row delivered (or nothing to do); 1 some rows were
rejected, by the platform or by validation; 2 the run could not complete
(bad configuration, unreadable mart or ledger, rows that failed after every
retry, credentials the platform refused).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence
from typing import TypeAlias

import duckdb

from shipper import __version__, destinations
from shipper.commands.run import cmd_run
from shipper.commands.status import cmd_status
from shipper.commands.validate import cmd_validate
from shipper.config import ConfigError, load_config
from shipper.hooks import Hooks
from shipper.ledger import LedgerError, storage_problem
from shipper.reader import MartError
from shipper.redact import ScrubFilter, get_logger, guard_third_party_loggers, scrub

log = get_logger("shipper")

# The distribution `ship` is installed from (pyproject.toml's project.name).
DISTRIBUTION = "offline-conversions"

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
        config = load_config(args.config, None, catalog=destinations.catalog())
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
    parser = argparse.ArgumentParser(
        prog="ship",
        description="Send the dbt marts to ad platforms and record every delivery in a ledger.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ship {package_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE",
                        help="settings file (default: $SHIP_CONFIG, else ./shipper.toml)")
    common.add_argument("-v", "--verbose", action="store_true", help="log every retry and split")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    _add_run(commands, common)
    _add_status(commands, common)
    _add_validate(commands, common)
    return parser


def package_version() -> str:
    """The installed package's version, else the source tree's."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return __version__


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

AS_OF_HELP = ("judge event age as of this UTC date or time (YYYY-MM-DD[THH:MM:SS]) "
              "instead of now, to check or rehearse a build made for that as_of; "
              "only with a dry run, since platforms judge by the real clock")


def _add_run(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    names = ", ".join(destinations.known_names())
    run = commands.add_parser(
        "run", parents=[common], help="ship marts to their destinations",
        description="Ship each destination's mart; rows already delivered are skipped. "
                    "A live run needs every named (or enabled) destination's credentials "
                    "in the environment; --dry-run sends nothing. With --build, dbt build "
                    "runs first and nothing is shipped unless it succeeded.",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("destinations", nargs="*", metavar="DESTINATION",
                     help=f"destinations to ship (default: every enabled one); one of {names}")
    run.add_argument("--dry-run", action="store_true",
                     help="write request bodies to the outbox instead of sending them")
    run.add_argument("--outbox", metavar="DIR",
                     help="where --dry-run writes bodies (default: outbox_dir in the config)")
    run.add_argument("--as-of", metavar="WHEN", type=_as_of, help=AS_OF_HELP)
    run.add_argument("--allow-shrink", action="store_true",
                     help="ship a mart even when it is empty or much smaller than what the "
                          "destination's last live run read (see max_shrink)")
    run.add_argument("--first-run", action="store_true",
                     help="send live even though the ledger has no record of a destination "
                          "that delivered before (after losing the ledger on purpose)")
    run.add_argument("--force", action="store_true",
                     help="file destinations: write and upload every mart row again, "
                          "even rows and files already delivered")
    run.add_argument("--build", action="store_true",
                     help="run dbt build first (the venv's dbt, this project, DUCKDB_PATH) "
                          "and ship only if it succeeded")
    run.add_argument("--vars", metavar="YAML",
                     help="with --build: passed to dbt build as --vars (e.g. "
                          "'{as_of: 2026-11-28}')")
    run.set_defaults(command=cmd_run)


def _add_status(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status", parents=[common], help="recent runs and rejected rows, from the ledger",
        description="Print the recent runs per destination with their counts, the "
                    "rejected rows with their order id (from the mart) and reasons, and "
                    "the requests a platform processes after answering (Google Data "
                    "Manager) with their status.",
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
    status.add_argument("--json", action="store_true",
                        help="print the same information as one JSON document on stdout")
    status.set_defaults(command=cmd_status)


def _add_validate(commands: Subcommands, common: argparse.ArgumentParser) -> None:
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
    validate.add_argument("--as-of", metavar="WHEN", type=_as_of,
                          help=AS_OF_HELP.split("; only")[0])
    validate.set_defaults(command=cmd_validate)


def _as_of(text: str) -> float:
    """argparse type of --as-of: a UTC date or date-time, as unix seconds."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-28") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


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


if __name__ == "__main__":
    sys.exit(main())
