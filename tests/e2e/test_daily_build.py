"""End to end, as a scheduler runs it: raw data of today, `dbt build` with the default
as_of, then `ship run` live against every REST destination's loopback fake almost a day
later; and the README's example of adding a field with one SQL edit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dbt.cli.main import dbtRunner

from tests.shipper.test_ship_braze import braze
from tests.shipper.test_ship_google_ads import google
from tests.shipper.test_ship_klaviyo import klaviyo
from tests.shipper.test_ship_pinterest import pinterest
from tests.sql.conftest import PROJECT_DIR, release_duckdb_file

REST_DESTINATIONS = ("meta", "tiktok", "google_ads", "pinterest", "the_trade_desk", "braze",
                     "klaviyo")
# Shipped this long after the build started: "within a day of the build".
HOURS_LATER = 23.5


def dbt(project_dir: Path, workdir: Path, duckdb_path: Path, *args: str,
        dbt_vars: dict[str, str]) -> None:
    import os

    os.environ["DUCKDB_PATH"] = str(duckdb_path)
    try:
        result = dbtRunner().invoke([
            *args, "--project-dir", str(project_dir), "--profiles-dir", str(PROJECT_DIR),
            "--target-path", str(workdir / "target"), "--log-path", str(workdir / "logs"),
            "--vars", json.dumps(dbt_vars), "--quiet",
        ])
    finally:
        release_duckdb_file()
    assert result.success, f"dbt {' '.join(args)} failed: {result.exception}"


@pytest.fixture(scope="module")
def todays_build(tmp_path_factory) -> Path:
    """Generated raw data whose last orders are from today, built with as_of unset
    (today, midnight UTC): what a scheduler's nightly build sees."""
    workdir = tmp_path_factory.mktemp("daily")
    raw = workdir / "raw"
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "generate_raw_data.py"),
                    "--out", str(raw), "--customers", "400", "--as-of", tomorrow,
                    "--seed", "11"], check=True, capture_output=True)
    duckdb_path = workdir / "warehouse.duckdb"
    dbt(PROJECT_DIR, workdir, duckdb_path, "build", dbt_vars={"raw_path": str(raw)})
    return duckdb_path


def test_a_daily_build_shipped_a_day_later_expires_and_rejects_nothing(todays_build, workspace):
    shutil.copy(todays_build, workspace.mart_path)
    workspace.meta()
    workspace.tiktok()
    google(workspace)
    pinterest(workspace)
    braze(workspace)
    klaviyo(workspace)
    later = time.time() + HOURS_LATER * 3600
    _the_trade_desk(workspace, now=lambda: later)
    workspace.hooks = dataclasses.replace(workspace.hooks, wallclock=lambda: later)

    assert workspace.ship("run", *REST_DESTINATIONS) == 0

    with workspace.ledger() as ledger:
        runs = {run["destination"]: run for run in ledger.recent_runs(list(REST_DESTINATIONS))}
    for name in REST_DESTINATIONS:
        run = runs[name]
        assert run["status"] == "ok", (name, run)
        assert run["rows_read"] > 0, name
        assert (run["rows_sent"], run["rows_expired"], run["rows_rejected"]) == (
            run["rows_read"], 0, 0), (name, run)

    # A rerun with nothing new sends nothing and exits 0.
    assert workspace.ship("run", *REST_DESTINATIONS) == 0


def _the_trade_desk(workspace, now) -> None:
    from tests.fakes.the_trade_desk import FakeTheTradeDesk
    from tests.fakes.uid2_operator import FakeUid2Operator

    # The operator checks each request's timestamp against its own clock: the same
    # "a day later" as the shipper's.
    operator = FakeUid2Operator(api_key="uid2-e2e-api-key-0123456789", now=now)
    fake = FakeTheTradeDesk(token="ttd-e2e-token-0123456789", valid_uid2=operator.issued)
    workspace.env(
        UID2_BASE_URL=workspace.servers(operator).url, UID2_API_KEY=operator.api_key,
        UID2_SECRET_KEY=operator.secret_b64, TTD_BASE_URL=workspace.servers(fake).url,
        TTD_AUTH_TOKEN=fake.token, TTD_DATA_PROVIDER_ID=fake.data_provider_id,
        TTD_TRACKING_TAG_ID=fake.tracking_tag_id,
    )


def _copy_of_the_project(tmp_path: Path) -> Path:
    """The dbt project as an analyst's checkout would have it, to edit."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, project, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "target", "logs", "outbox", "bench", "tests", "*.duckdb*", "data"))
    shutil.copytree(PROJECT_DIR / "tests" / "dbt", project / "tests" / "dbt")
    return project


STORE_NAME_COLUMN = "        orders_in_window.order_id,\n"
CUSTOM_DATA_MEMBER = "                ('num_items', offline_conversions.json_number('num_items')),\n"


def test_adding_store_name_to_meta_is_one_sql_edit(todays_build, workspace, tmp_path):
    """The README's example, done as an analyst would: the mart's SQL and yml change,
    the shipper does not, and the next dry run sends the field."""
    project = _copy_of_the_project(tmp_path)
    model = project / "models" / "marts" / "meta_conversions.sql"
    sql = model.read_text()
    assert STORE_NAME_COLUMN in sql and CUSTOM_DATA_MEMBER in sql
    sql = sql.replace(STORE_NAME_COLUMN, STORE_NAME_COLUMN + "        orders_in_window.store_name,\n")
    sql = sql.replace(CUSTOM_DATA_MEMBER, CUSTOM_DATA_MEMBER
                      + "                ('store_name', offline_conversions.json_string('store_name')),\n")
    model.write_text(sql)
    yml = project / "models" / "marts" / "meta_conversions.yml"
    yml.write_text(yml.read_text().replace(
        "      - name: contents\n",
        "      - name: store_name\n        description: Where the sale happened.\n"
        "        data_type: varchar\n      - name: contents\n", 1))

    shutil.copy(todays_build, workspace.mart_path)
    dbt(project, tmp_path, workspace.mart_path, "build", "--select", "meta_conversions",
        dbt_vars={"raw_path": str(tmp_path)})

    assert workspace.ship("run", "meta", "--dry-run") == 0

    events = [event for path in sorted((workspace.outbox / "meta").glob("*.json"))
              for event in json.loads(path.read_text())["data"]]
    assert events
    named = [event for event in events if "store_name" in event.get("custom_data", {})]
    assert named, "no event carries store_name"
    assert all(isinstance(event["custom_data"]["store_name"], str) for event in named)


def test_a_mart_whose_latest_build_failed_is_not_shipped(todays_build, workspace, tmp_path,
                                                          capsys):
    """A build whose unit test fails skips the mart and leaves yesterday's table in the
    file: the shipper reads the build log and refuses it, naming the failed node."""
    project = _copy_of_the_project(tmp_path)
    yml = project / "models" / "marts" / "meta_conversions.yml"
    text = yml.read_text()
    assert "value: 55.00" in text
    yml.write_text(text.replace("value: 55.00", "value: 56.00", 1))
    shutil.copy(todays_build, workspace.mart_path)
    workspace.meta()
    workspace.tiktok()

    import os

    os.environ["DUCKDB_PATH"] = str(workspace.mart_path)
    try:
        failed = dbtRunner().invoke([
            "build", "--select", "meta_conversions", "--project-dir", str(project),
            "--profiles-dir", str(PROJECT_DIR), "--target-path", str(tmp_path / "target"),
            "--log-path", str(tmp_path / "logs"), "--vars", json.dumps({"raw_path": "x"}),
            "--quiet"])
    finally:
        release_duckdb_file()
    assert not failed.success
    capsys.readouterr()

    assert workspace.ship("run", "meta", "tiktok") == 2

    err = capsys.readouterr().err
    assert "meta_conversions did not succeed in its latest build" in err
    assert "meta_conversions_returns_netted_in_value_and_contents" in err
    assert workspace.fakes["meta"].requests == []
    # The other destination's mart is as the good build left it, and ships.
    assert len(workspace.fakes["tiktok"].accepted_ids) > 0
