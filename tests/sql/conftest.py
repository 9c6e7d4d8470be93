"""Fixtures that build the dbt project in-process (one dbtRunner, many invocations)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest
from dbt.cli.main import dbtRunner

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE_RAW = PROJECT_DIR / "tests" / "fixtures" / "raw"
AS_OF = "2026-11-28"


def release_duckdb_file() -> None:
    """dbt-duckdb keeps its database open in the process after a run; close it
    so this process (read-only) and other processes (the shipper) can open it."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


class DbtProject:
    """The project, built into one DuckDB file by one in-process dbt runner."""

    def __init__(self, workdir: Path, raw_path: Path = FIXTURE_RAW, as_of: str = AS_OF):
        self.workdir = workdir
        self.duckdb_path = workdir / "warehouse.duckdb"
        self.vars = {"raw_path": str(raw_path), "as_of": as_of}
        self.runner = dbtRunner()

    def invoke(self, *args: str, vars: dict | None = None):
        os.environ["DUCKDB_PATH"] = str(self.duckdb_path)
        try:
            return self._invoke(args, vars)
        finally:
            release_duckdb_file()

    def _invoke(self, args, vars):
        return self.runner.invoke(
            [
                *args,
                "--project-dir", str(PROJECT_DIR),
                "--profiles-dir", str(PROJECT_DIR),
                "--target-path", str(self.workdir / "target"),
                "--log-path", str(self.workdir / "logs"),
                "--vars", json.dumps({**self.vars, **(vars or {})}),
                "--quiet",
            ]
        )

    def compile_inline(self, sql: str) -> str:
        result = self.invoke("compile", "--inline", sql)
        assert result.success, result.exception
        return result.result.results[0].node.compiled_code

    def query(self, sql: str, params=None) -> list[tuple]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            return connection.execute(sql, params or []).fetchall()


@pytest.fixture(scope="session")
def dbt_project(tmp_path_factory) -> DbtProject:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    previous = os.environ.get("DUCKDB_PATH")
    project = DbtProject(tmp_path_factory.mktemp("dbt"))
    yield project
    if previous is None:
        os.environ.pop("DUCKDB_PATH", None)
    else:
        os.environ["DUCKDB_PATH"] = previous


@pytest.fixture(scope="session")
def built_fixture(dbt_project: DbtProject):
    """`dbt build` (seeds, models, unit tests, data tests) on the fixture data."""
    result = dbt_project.invoke("build")
    failures = [
        f"{r.node.unique_id}: {r.status} {r.message or ''}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "no-op")
    ]
    return result, failures
