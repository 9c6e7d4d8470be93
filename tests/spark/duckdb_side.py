"""The DuckDB half of the Spark parity test, run in its own process (so the
two adapters never share one) while Spark builds in the test's process:
`python tests/spark/duckdb_side.py WORKDIR MACRO_SQL_FILE`.

Builds the fixture data into WORKDIR/warehouse.duckdb with `dbt build`,
compiles MACRO_SQL_FILE (a select using the project's macros) for DuckDB into
WORKDIR/macros.duckdb.sql, and exits non-zero with dbt's messages when either
fails.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from dbt.cli.main import dbtRunner

PROJECT_DIR = Path(__file__).resolve().parents[2]


def main(workdir: Path, macro_sql: str, dbt_vars: dict) -> int:
    os.environ["DUCKDB_PATH"] = str(workdir / "warehouse.duckdb")
    common = [
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(PROJECT_DIR),
        "--target", "duckdb",
        "--target-path", str(workdir / "target-duckdb"),
        "--log-path", str(workdir / "logs-duckdb"),
        "--vars", json.dumps(dbt_vars),
        "--quiet",
    ]
    runner = dbtRunner()
    build = runner.invoke(["build", *common])
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message or ''}"
        for r in (build.result or [])
        if str(r.status) not in ("success", "pass", "no-op")
    ]
    if not build.success or failures:
        print("dbt build on DuckDB failed:", build.exception, *failures, sep="\n", file=sys.stderr)
        return 1
    compiled = runner.invoke(["compile", "--inline", macro_sql, *common])
    if not compiled.success:
        print("dbt compile on DuckDB failed:", compiled.exception, file=sys.stderr)
        return 1
    (workdir / "macros.duckdb.sql").write_text(
        compiled.result.results[0].node.compiled_code, encoding="utf-8"
    )
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None
    return 0


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    sys.exit(
        main(
            workdir,
            Path(sys.argv[2]).read_text(encoding="utf-8"),
            json.loads(sys.argv[3]),
        )
    )
