"""The Spark parity test's fixtures: the project built on the fixture data by
dbt-spark (session method, local pyspark) in this process and by dbt-duckdb
in a child process, at the same time.

Spark runs in a temporary working directory with an in-memory catalog and
its warehouse there, so nothing (spark-warehouse/, metastore_db/, derby.log)
lands in the work tree. The test starts the Spark session itself, tuned for
tiny data (no code generation, no adaptive execution, two local cores), and
dbt-spark's session method picks that session up; profiles.yml's `spark`
output supplies the rest (UTC, the schema, Parquet tables).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE_RAW = PROJECT_DIR / "tests" / "fixtures" / "raw"
AS_OF = "2026-11-28"
DBT_VARS = {"raw_path": str(FIXTURE_RAW), "as_of": AS_OF}
SPARK_SCHEMA = "parity"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "spark: builds the project on Apache Spark (make test-spark; needs pyspark and Java)"
    )


def require_spark() -> None:
    """Fail under CI, skip elsewhere, when pyspark, dbt-spark or Java is missing."""
    missing = [
        name for name in ("pyspark", "dbt.adapters.spark", "dbt.adapters.duckdb")
        if importlib.util.find_spec(name) is None
    ]
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        missing.append("java")
    if missing:
        message = (
            f"the Spark parity test needs {', '.join(missing)}: run it with `make test-spark`, "
            "which installs .venv-spark from requirements-spark.lock (Java 17 comes from the system)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


# The rules compared one value at a time, each applied as the models apply
# it (timestamps, dates and numbers are trimmed first, as in staging).
MACROS = {
    "trim": "offline_conversions.trim_whitespace('value')",
    "strip": "offline_conversions.strip_whitespace('value')",
    "nfc": "offline_conversions.unicode_nfc('value')",
    "email": "offline_conversions.normalize_email('value')",
    "email_google": "offline_conversions.normalize_email_google(offline_conversions.normalize_email('value'))",
    "email_uid2": "offline_conversions.normalize_email_uid2('value')",
    # The phone rule's pieces (int_customer_countries puts them together; the
    # marts compared below carry its result): the number as written, and the
    # libphonenumber patterns, constants of up to thousands of characters.
    "phone_written": "offline_conversions.phone_as_written('value')",
    "phone_matches_region": "offline_conversions.phone_matches_region("
                            "\"upper(coalesce(country_code, 'us'))\", offline_conversions.phone_digits_of("
                            "offline_conversions.phone_as_written('value')))",
    "phone_is_valid": "offline_conversions.phone_is_valid_number('calling_code', "
                      "offline_conversions.phone_digits_of(offline_conversions.phone_as_written('value')))",
    "name": "offline_conversions.normalize_name('value')",
    "name_google": "offline_conversions.normalize_name_google('value')",
    "postal_code_google": "offline_conversions.normalize_postal_code_google('value', 'country_code')",
    "city": "offline_conversions.normalize_city('value')",
    "state": "offline_conversions.normalize_state('value')",
    "zip": "offline_conversions.normalize_zip('value', 'country_code')",
    "gender": "offline_conversions.normalize_gender('value')",
    "birth_date": "offline_conversions.normalize_birth_date('value')",
    "external_id": "offline_conversions.normalize_external_id('value')",
    "country_key": "offline_conversions.country_lookup_key('value')",
    "hash": "offline_conversions.hash_identifier('value')",
    "hash_base64": "offline_conversions.hash_identifier_base64('value')",
    "timestamp": "offline_conversions.format_timestamp(offline_conversions.parse_timestamp_utc("
                 "offline_conversions.trim_whitespace('value')), '%Y-%m-%dT%H:%M:%SZ')",
    "epoch": "offline_conversions.epoch_seconds(offline_conversions.parse_timestamp_utc("
             "offline_conversions.trim_whitespace('value')))",
    "date": "offline_conversions.format_timestamp(offline_conversions.parse_date_flexible("
            "offline_conversions.trim_whitespace('value')), '%Y-%m-%d')",
    "integer": "offline_conversions.safe_cast(offline_conversions.trim_whitespace('value'), 'integer')",
    "decimal": "offline_conversions.safe_cast(offline_conversions.trim_whitespace('value'), 'decimal(18, 2)')",
    # The payload encoders (compared parsed: the JSON texts may escape differently).
    "json_string": "offline_conversions.json_string('value')",
    "json_object": "offline_conversions.json_object([('text', offline_conversions.json_string('value')), "
                   "('list', offline_conversions.json_string_list('value')), "
                   "('id', offline_conversions.json_number('case_id'))], empty_as_null=true)",
}


@pytest.fixture(scope="session")
def macro_sql() -> str:
    columns = ",\n    ".join(f"{{{{ {macro} }}}} as {name}" for name, macro in MACROS.items())
    return f"select\n    case_id,\n    {columns}\nfrom cases"


@dataclass
class Builds:
    workdir: Path
    spark: object  # pyspark.sql.SparkSession
    duckdb_path: Path
    spark_compiled_macros: str
    duckdb_compiled_macros: str

    def compile_on_spark(self, sql: str, dbt_vars: dict | None = None) -> str:
        """dbt's compiled SQL for an inline query on Spark (introspective
        queries, such as raw_table's, run at compile time)."""
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(
            ["compile", "--inline", sql, *spark_args(self.workdir, {**DBT_VARS, **(dbt_vars or {})})]
        )
        assert result.success, f"dbt compile on Spark failed: {result.exception}"
        return result.result.results[0].node.compiled_code


def spark_args(workdir: Path, dbt_vars: dict) -> list[str]:
    return [
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(PROJECT_DIR),
        "--target", "spark",
        "--target-path", str(workdir / "target-spark"),
        "--log-path", str(workdir / "logs-spark"),
        "--vars", json.dumps(dbt_vars),
        "--quiet",
    ]


def dbt_failures(result) -> list[str]:
    return [
        f"{r.node.unique_id}: {r.status} {r.message or ''}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass", "no-op")
    ]


def start_spark(workdir: Path):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["SPARK_CATALOG"] = "in-memory"
    os.environ["SPARK_WAREHOUSE_DIR"] = str(workdir / "spark-warehouse")
    os.environ["SPARK_SCHEMA"] = SPARK_SCHEMA
    os.environ.setdefault("SPARK_THREADS", "2")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("offline_conversions_parity")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(workdir / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={workdir}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        # Tiny data: compiling generated code costs more than it saves.
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.adaptive.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@pytest.fixture(scope="session")
def builds(tmp_path_factory, macro_sql) -> Builds:
    require_spark()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    workdir = tmp_path_factory.mktemp("spark_parity")
    (workdir / "macros.sql").write_text(macro_sql, encoding="utf-8")

    # DuckDB in a child process, while Spark builds here.
    duckdb_side = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("duckdb_side.py")), str(workdir),
         str(workdir / "macros.sql"), json.dumps(DBT_VARS)],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    previous_dir = Path.cwd()
    os.chdir(workdir)
    try:
        from dbt.cli.main import dbtRunner

        spark = start_spark(workdir)
        common = spark_args(workdir, DBT_VARS)
        runner = dbtRunner()
        build = runner.invoke(["build", *common])
        failures = dbt_failures(build)
        assert build.success and not failures, (
            f"dbt build on Spark failed: {build.exception}\n" + "\n".join(failures)
        )
        compiled = runner.invoke(["compile", "--inline", macro_sql, *common])
        assert compiled.success, f"dbt compile on Spark failed: {compiled.exception}"
        spark_macros = compiled.result.results[0].node.compiled_code
    except BaseException:
        duckdb_side.kill()
        raise
    finally:
        os.chdir(previous_dir)
    output, _ = duckdb_side.communicate(timeout=600)
    assert duckdb_side.returncode == 0, f"the DuckDB build failed:\n{output}"
    return Builds(
        workdir=workdir,
        spark=spark,
        duckdb_path=workdir / "warehouse.duckdb",
        spark_compiled_macros=spark_macros,
        duckdb_compiled_macros=(workdir / "macros.duckdb.sql").read_text(encoding="utf-8"),
    )
