"""The builds the vendor tests read: the fixture raw data and the demo data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dbt.cli.main import dbtRunner

from tests.sql.conftest import FIXTURE_RAW, PROJECT_DIR, DbtProject

DEMO_RAW = PROJECT_DIR / "data" / "demo"
DEMO_AS_OF = (DEMO_RAW / "as_of.txt").read_text(encoding="utf-8").strip()


def build_fixture_and_demo(workdir: Path, models: tuple[str, ...],
                           fixture_raw: Path = FIXTURE_RAW) -> tuple[Path, Path]:
    """`models` built on the fixture raw data, then on the demo data from a copy of
    the fixture's database (the seeds are the same), the project parsed once; the
    two DuckDB files."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    previous = os.environ.get("DUCKDB_PATH")
    fixture = DbtProject(workdir, raw_path=fixture_raw)
    demo_dir = workdir / "demo"
    demo_dir.mkdir()
    demo = DbtProject(demo_dir, raw_path=DEMO_RAW, as_of=DEMO_AS_OF)
    try:
        parsed = fixture.invoke("parse")
        assert parsed.success, parsed.exception
        # One parse for the three invocations: the vars only matter when models run.
        fixture.runner = demo.runner = dbtRunner(manifest=parsed.result)
        for args in (("seed", "--select", *models), ("run", "--select", *models)):
            result = fixture.invoke(*args)
            assert result.success, result.exception
        shutil.copy(fixture.duckdb_path, demo.duckdb_path)
        result = demo.invoke("run", "--select", *models)
        assert result.success, result.exception
    finally:
        if previous is None:
            os.environ.pop("DUCKDB_PATH", None)
        else:
            os.environ["DUCKDB_PATH"] = previous
    return fixture.duckdb_path, demo.duckdb_path
