"""`make demo`: build every model on the bundled demo data, print what each
mart holds and what was set aside, then ship in dry-run into outbox/."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import duckdb
from dbt.cli.main import dbtRunner

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEMO_DIR = PROJECT_DIR / "data" / "demo"
# DEMO_OUTBOX moves the dry run's outbox (default outbox/ in the project).
OUTBOX = Path(os.environ.get("DEMO_OUTBOX", PROJECT_DIR / "outbox")).resolve()

MARTS = [
    "meta_conversions",
    "tiktok_conversions",
    "the_trade_desk_conversions",
    "google_ads_conversions",
    "pinterest_conversions",
    "pinterest_conversions_csv",
    "snapchat_conversions",
    "snapchat_conversions_csv",
    "criteo_sales",
    "braze_attributes",
    "klaviyo_profiles",
]


class DbtOutput:
    """What the demo prints of dbt's ~300 log lines: its closing summary and, when the
    build fails, its errors. The whole log is in logs/dbt.log, as always."""

    SUMMARY_EVENTS = ("FinishedRunningStats", "StatsLine")

    def __init__(self) -> None:
        self.summary: list[str] = []
        self.errors: list[str] = []

    def collect(self, event: Any) -> None:
        name, level, message = event.info.name, event.info.level, event.info.msg
        if name in self.SUMMARY_EVENTS:
            self.summary.append(message.strip())
        elif level == "error" and message.strip():
            self.errors.append(message.rstrip())


def build(duckdb_path: Path, as_of: str) -> bool:
    os.environ["DUCKDB_PATH"] = str(duckdb_path)
    dbt_vars = json.dumps({"raw_path": str(DEMO_DIR), "as_of": as_of})
    print(f"dbt build on the demo data (as_of {as_of}) into {duckdb_path}", flush=True)
    output = DbtOutput()
    result = dbtRunner(callbacks=[output.collect]).invoke(
        ["--log-level", "none", "build", "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), "--vars", dbt_vars]
    )
    _release_duckdb_file()
    for line in output.summary:
        print(f"  {line}")
    if not result.success:
        for message in output.errors or [str(result.exception)]:
            print(message, file=sys.stderr)
    return result.success


def _release_duckdb_file() -> None:
    # dbt-duckdb keeps the file open in this process; the shipper opens it next.
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def print_table(title: str, columns: list[str], rows: list[tuple]) -> None:
    cells = [[("" if value is None else str(value)) for value in row] for row in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def summarize(duckdb_path: Path) -> None:
    with duckdb.connect(str(duckdb_path), read_only=True) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "select table_name from information_schema.tables where table_schema = 'main'"
            ).fetchall()
        }
        print_table(
            "What each mart holds",
            ["mart", "rows"],
            [
                (mart, connection.execute(f"select count(*) from main.{mart}").fetchone()[0])
                if mart in tables
                else (mart, "(not built)")
                for mart in MARTS
            ],
        )
        if "destination_coverage" in tables:
            result = connection.execute("select * from main.destination_coverage order by 1")
            # The reasons are long texts: destination_exclusions holds them as rows.
            hidden = {"set_aside_reasons", "not_sent_reasons"}
            columns = [d[0] for d in result.description if d[0] not in hidden]
            rows = [
                tuple(
                    f"{value:.0%}" if isinstance(value, float) else value
                    for name, value in zip([d[0] for d in result.description], row)
                    if name not in hidden
                )
                for row in result.fetchall()
            ]
            print_table(
                "Coverage per destination (share = rows with that identifier;"
                " why orders were not sent: main.destination_exclusions)",
                columns,
                rows,
            )
        print_table(
            "Rows set aside (query main.int_rows_set_aside for each one)",
            ["source_table", "reason", "rows"],
            connection.execute(
                "select source_table, reason, count(*) from main.int_rows_set_aside group by 1, 2 order by 1, 3 desc"
            ).fetchall(),
        )


def ship_dry_run(duckdb_path: Path, as_of: str) -> int:
    sys.path.insert(0, str(PROJECT_DIR))
    from shipper import cli

    # dbt left a root log handler behind in this process; `ship` prints its own lines.
    logging.getLogger().handlers.clear()

    outbox = OUTBOX.relative_to(PROJECT_DIR) if OUTBOX.is_relative_to(PROJECT_DIR) else OUTBOX
    print(f"\nship run --dry-run --outbox {outbox} --as-of {as_of}")
    os.environ["DUCKDB_PATH"] = str(duckdb_path)
    # Judge event age as of the demo's as_of, so the bundled data stays valid as it ages.
    return cli.main(["run", "--dry-run", "--outbox", str(OUTBOX), "--as-of", as_of])


def main() -> int:
    duckdb_path = Path(os.environ.get("DUCKDB_PATH", PROJECT_DIR / "offline_conversions.duckdb")).resolve()
    as_of = (DEMO_DIR / "as_of.txt").read_text().strip()
    if not build(duckdb_path, as_of):
        print("\ndbt build failed: see the errors above (the whole log: logs/dbt.log).",
              file=sys.stderr)
        return 2
    summarize(duckdb_path)
    shipped = ship_dry_run(duckdb_path, as_of)
    # In a dry run, exit 1 only means a file destination's check set rows aside
    # (listed in the summary above); the demo itself succeeded.
    return 0 if shipped in (0, 1) else shipped


if __name__ == "__main__":
    sys.exit(main())
