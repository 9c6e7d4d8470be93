"""What keeps a failed or wrong build from passing as a good one: the build
log dbt_builds (the on-run-end hook) that the shipper checks before sending,
a required input column missing failing the build with one sentence, and
destination_exclusions counting every order a destination did not get."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb

from tests.sql.conftest import AS_OF, FIXTURE_RAW, DbtProject

# The query docs/marts.md gives the shipper: per mart, its latest build.
LATEST_BUILD_PER_MART = """
with model_builds as (
    select
        invocation_id,
        node_name as mart,
        as_of,
        finished_at,
        status,
        row_number() over (partition by node_name order by finished_at desc, invocation_id desc) as recency
    from main.dbt_builds
    where resource_type = 'model'
),
latest as (
    select * from model_builds where recency = 1
),
failed_checks as (
    select
        invocation_id,
        tested_model,
        string_agg(node_name || ' (' || status || ')', ', ' order by node_name) as failed_nodes
    from main.dbt_builds
    where resource_type in ('test', 'unit_test')
        and status not in ('pass', 'success', 'warn')
    group by invocation_id, tested_model
)
select
    latest.mart,
    latest.invocation_id,
    latest.as_of,
    latest.finished_at,
    latest.status as model_status,
    latest.status = 'success' and failed_checks.failed_nodes is null as succeeded,
    failed_checks.failed_nodes
from latest
left join failed_checks
    on failed_checks.invocation_id = latest.invocation_id
    and failed_checks.tested_model = latest.mart
"""


def latest_builds(project: DbtProject) -> dict[str, tuple]:
    rows = project.query(LATEST_BUILD_PER_MART)
    return {row[0]: row[1:] for row in rows}


def messages_of(result) -> str:
    return " ".join(str(r.message) for r in (result.result or [])) + str(result.exception or "")


def copy_fixture_with_orders_header(raw: Path, header: list[str]) -> None:
    raw.mkdir()
    for table in ("customers", "order_items", "stores"):
        shutil.copy(FIXTURE_RAW / f"{table}.csv", raw / f"{table}.csv")
    with open(FIXTURE_RAW / "orders.csv", newline="", encoding="utf-8") as source:
        rows = list(csv.reader(source))
    with open(raw / "orders.csv", "w", newline="", encoding="utf-8") as target:
        writer = csv.writer(target)
        writer.writerow(header)
        writer.writerows(rows[1:])


def test_every_node_of_a_build_is_recorded_with_its_status_and_as_of(built_fixture, dbt_project):
    result, failures = built_fixture
    assert failures == []
    # Other tests run more commands on this project later: the build is the first.
    rows = dbt_project.query(
        "select invocation_id, as_of, command, resource_type, status, node_name, tested_model from main.dbt_builds"
        " where invocation_id = (select invocation_id from main.dbt_builds order by finished_at limit 1)"
    )
    assert {(row[1], row[2]) for row in rows} == {(AS_OF, "build")}
    recorded = {(row[3], row[5]) for row in rows}
    expected = {
        (r.node.resource_type, r.node.name)
        for r in result.result
        if r.node.resource_type in ("model", "seed", "snapshot", "test", "unit_test")
    }
    assert recorded == expected
    assert {row[4] for row in rows} <= {"success", "pass"}
    tested = {(row[5], row[6]) for row in rows if row[3] in ("test", "unit_test")}
    assert ("meta_conversions_payload", "meta_conversions") in tested
    latest = latest_builds(dbt_project)
    assert "meta_conversions" in latest
    assert all(build[4] for build in latest.values()), latest


def test_a_failed_build_is_recorded_so_its_stale_marts_are_refused(tmp_path):
    """The second build fails (a required column is missing): the previous
    build's mart tables stay in the file, but dbt_builds says the latest
    build of each did not succeed, and which node failed."""
    good = tmp_path / "good"
    shutil.copytree(FIXTURE_RAW, good)
    bad = tmp_path / "bad"
    copy_fixture_with_orders_header(
        bad, ["orderid", "customer_id", "ordered_at", "store_id", "channel", "currency", "status"]
    )
    project = DbtProject(tmp_path, raw_path=good)
    selection = ["--select", "+meta_conversions", "--exclude", "test_type:data"]
    first = project.invoke("build", *selection)
    assert first.success, first.exception
    assert latest_builds(project)["meta_conversions"][4] is True

    second = project.invoke("build", *selection, vars={"raw_path": str(bad), "as_of": "2026-11-29"})
    assert not second.success
    assert project.query("select count(*) from main.meta_conversions") != [(0,)]  # stale, still there
    latest = latest_builds(project)
    invocation_id, as_of, _, model_status, succeeded, _ = latest["meta_conversions"]
    assert (as_of, model_status, succeeded) == ("2026-11-29", "skipped", False)
    statuses = dict(project.query(
        "select node_name, status from main.dbt_builds where invocation_id = ?", [invocation_id]
    ))
    assert statuses["stg_raw__orders"] == "error"
    assert project.query("select count(distinct invocation_id) from main.dbt_builds") == [(2,)]


def test_a_missing_required_column_fails_the_build_with_one_sentence(tmp_path):
    raw = tmp_path / "raw"
    copy_fixture_with_orders_header(
        raw, ["orderid", "customer_id", "ordered_at", "store_id", "channel", "currency", "status"]
    )
    project = DbtProject(tmp_path, raw_path=raw)
    result = project.invoke("build", "--select", "stg_raw__orders")
    assert not result.success
    assert "orders has no column order_id: fix the raw file" in messages_of(result)


def test_a_missing_required_column_of_a_source_table_fails_too(tmp_path):
    """raw_path null: the tables are dbt sources (schema raw). A missing
    optional column reads as NULL; a missing required one fails."""
    project = DbtProject(tmp_path)
    with duckdb.connect(str(project.duckdb_path)) as connection:
        connection.execute("create schema raw")
        for table in ("customers", "orders", "order_items", "stores"):
            connection.execute(
                f"create table raw.{table} as select * from read_csv('{FIXTURE_RAW}/{table}.csv', all_varchar = true)"
            )
        connection.execute("alter table raw.customers drop column gender")
        connection.execute("alter table raw.order_items drop column unit_price")
        connection.execute("alter table raw.order_items drop column line_total")
    result = project.invoke("run", "--select", "stg_raw__customers", vars={"raw_path": None})
    assert result.success, messages_of(result)
    assert project.query("select count(*) > 0, count(gender) from main.stg_raw__customers") == [(True, 0)]
    result = project.invoke("run", "--select", "stg_raw__order_items", vars={"raw_path": None})
    assert not result.success
    assert "order_items has no column unit_price or line_total: fix the source table" in messages_of(result)


def test_every_order_a_destination_did_not_get_has_one_reason(built_fixture, dbt_project):
    raw_orders = dbt_project.query(
        "select count(distinct order_id) + count(*) filter (where order_id is null) from main.stg_raw__orders"
    )[0][0]
    coverage = dbt_project.query(
        "select destination, orders_sent, orders_not_sent from main.destination_coverage"
        " where destination not in ('braze', 'klaviyo')"
    )
    for destination, orders_sent, orders_not_sent in coverage:
        assert orders_sent + orders_not_sent == raw_orders, destination
    reasons = {
        (destination, reason): orders
        for destination, reason, orders in dbt_project.query(
            "select destination, reason, orders from main.destination_exclusions"
        )
    }
    # o3 opted out, o9 empty consent (opt-in by default), o4 returned.
    assert reasons[("meta", "opted_out")] == 1
    assert reasons[("meta", "consent_empty")] == 1
    assert reasons[("meta", "returned")] == 1
    assert ("the_trade_desk", "excluded_country") in reasons
