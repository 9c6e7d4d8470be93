"""Every payload the marts carry is what the shipper's former Python built.

For each REST mart, every row of the fixture build (`built_fixture`) and of
the demo data must pass the destination's former row check
(`tests.oracles.<name>.validate`), and its `payload` must parse to exactly
the former event (`to_wire`), keys in the same order; The Trade Desk's
payload leaves out TrackingTagId and UID2, which the shipper adds. Profile
marts also carry payload_sha256, the SHA-256 of the payload text.

The rows are checked at as_of (midnight UTC, when a daily build's window
ends) and two days later (a build made during that day, shipped up to a day
after): the windows are short enough that nothing has aged past a
platform's limit by then.

Last, a property test of the JSON macros: any text through json_string and
json_object, as DuckDB runs them, parses back to the same value.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import oracles
from tests.sql.conftest import AS_OF, PROJECT_DIR, DbtProject

MARTS = {
    "meta": "meta_conversions",
    "tiktok": "tiktok_conversions",
    "google_ads": "google_ads_conversions",
    "pinterest": "pinterest_conversions",
    "snapchat": "snapchat_conversions",
    "the_trade_desk": "the_trade_desk_conversions",
    "braze": "braze_attributes",
    "klaviyo": "klaviyo_profiles",
}
PROFILE_MARTS = {"braze_attributes", "klaviyo_profiles"}
DEMO_RAW = PROJECT_DIR / "data" / "demo"
TWO_DAYS = 2 * 86_400


def midnight_utc(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def mart_rows(duckdb_path: Path, mart: str) -> list[dict]:
    with duckdb.connect(str(duckdb_path), read_only=True) as connection:
        cursor = connection.execute(f"select * from main.{mart} order by delivery_key")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def problems_of(destination: str, rows: list[dict], as_of: str) -> list[str]:
    """Every difference between the mart's rows and the oracle, as text."""
    oracle = oracles.BY_DESTINATION[destination]
    mart = MARTS[destination]
    now = midnight_utc(as_of)
    problems = []
    for row in rows:
        key = row["delivery_key"]
        for moment in (now, now + TWO_DAYS):
            reason = oracle.validate(row, moment)
            if reason is not None:
                problems.append(f"{mart} {key}: not sendable {moment - now:+.0f} s after as_of: {reason}")
        sent = json.loads(row["payload"])
        expected = oracle.to_wire(row)
        # Same values, and the same members in the same order at every level.
        if sent != expected or json.dumps(sent) != json.dumps(expected):
            problems.append(f"{mart} {key}: payload {row['payload']} is not {json.dumps(expected)}")
        if mart in PROFILE_MARTS:
            digest = hashlib.sha256(row["payload"].encode()).hexdigest()
            if row["payload_sha256"] != digest:
                problems.append(f"{mart} {key}: payload_sha256 is not the payload's SHA-256")
    return problems


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory):
    """The demo data built at its own as_of (models and seeds only: the data
    tests run on the fixture build)."""
    as_of = (DEMO_RAW / "as_of.txt").read_text(encoding="utf-8").strip()
    project = DbtProject(tmp_path_factory.mktemp("demo"), raw_path=DEMO_RAW, as_of=as_of)
    for command in ("seed", "run"):
        result = project.invoke(command)
        assert result.success, result.exception
    return project, as_of


@pytest.mark.parametrize("destination", list(MARTS))
def test_fixture_payloads_are_the_oracles_events(built_fixture, dbt_project, destination):
    _, failures = built_fixture
    assert failures == []
    rows = mart_rows(dbt_project.duckdb_path, MARTS[destination])
    assert rows, f"{MARTS[destination]} is empty on the fixture: nothing was compared"
    assert problems_of(destination, rows, AS_OF) == []


@pytest.mark.parametrize("destination", list(MARTS))
def test_demo_payloads_are_the_oracles_events(demo_build, destination):
    project, as_of = demo_build
    rows = mart_rows(project.duckdb_path, MARTS[destination])
    assert len(rows) > 10, f"{MARTS[destination]} has {len(rows)} rows on the demo data"
    problems = problems_of(destination, rows, as_of)
    assert problems == [], f"{len(problems)} of {len(rows)} rows differ:\n" + "\n".join(problems[:10])


def test_the_trade_desk_payload_leaves_shipper_members_out(built_fixture, dbt_project):
    for row in mart_rows(dbt_project.duckdb_path, "the_trade_desk_conversions"):
        assert not set(json.loads(row["payload"])) & set(oracles.the_trade_desk.SHIPPER_MEMBERS)


# ---------------------------------------------------------------------------
# The JSON macros, property-tested in DuckDB.

# DuckDB's VARCHAR cannot hold NUL, and surrogates are not text.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
AWKWARD = st.text(st.sampled_from(['"', "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x01", "\x1f", "\x7f",
                                   "\u2028", "\u2029", "é", "😀", "'", "{", "}", "[", "]", ":", ",", " "]),
                  max_size=20)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def json_macros(dbt_project):
    values = "(select ?::varchar as text, ?::varchar as other, ?::decimal(18, 2) as amount) as cases"
    sql = dbt_project.compile_inline(
        "select {{ offline_conversions.json_string('text') }} as encoded, "
        "{{ offline_conversions.json_object(["
        "('text', offline_conversions.json_string('text')), "
        "('list', offline_conversions.json_string_list('other')), "
        "('amount', offline_conversions.json_number('amount')), "
        "('inner', offline_conversions.json_object([('other', offline_conversions.json_string('other'))],"
        " empty_as_null=true)), "
        "('flag', offline_conversions.json_boolean('amount > 0'))]) }} as document "
        f"from {values}"
    )
    connection = duckdb.connect()

    def run(text, other, amount):
        return connection.execute(sql, [text, other, amount]).fetchone()

    yield run
    connection.close()


@SETTINGS
@given(text=st.one_of(TEXT, AWKWARD), other=st.one_of(st.none(), TEXT, AWKWARD),
       amount=st.one_of(st.none(), st.decimals(min_value=-10**6, max_value=10**6, places=2,
                                               allow_nan=False, allow_infinity=False)))
def test_json_macros_round_trip_any_text(json_macros, text, other, amount):
    encoded, document = json_macros(text, other, amount)
    assert json.loads(encoded) == text
    expected = {"text": text}
    if other is not None:
        expected["list"] = [other]
    if amount is not None:
        expected["amount"] = amount
    if other is not None:
        expected["inner"] = {"other": other}
    if amount is not None:
        expected["flag"] = amount > 0
    parsed = json.loads(document, parse_float=Decimal)
    assert parsed == expected
    assert list(parsed) == list(expected)


def test_json_macros_leave_null_and_empty_out(json_macros):
    encoded, document = json_macros(None, None, None)
    assert encoded is None
    assert json.loads(document) == {}
