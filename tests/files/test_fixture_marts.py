"""The three file destinations on the marts dbt builds from tests/fixtures/raw: the file is
the mart (its columns but delivery_key, in order, as the header; every row, cell for cell),
its name carries the build's as_of whatever day it is shipped, and a rerun writes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from decimal import Decimal

import duckdb
import pytest

from shipper import cli
from shipper.delivery import Hooks
from tests.files.conftest import AS_OF, MARTS, FileTests, read_rows

# Shipped on another day than the build's as_of (five days and six hours after it, UTC):
# the file names still carry the build's as_of, read from the build log (dbt_builds).
RUN_AT = dt.datetime.fromisoformat(AS_OF).replace(tzinfo=dt.UTC).timestamp() + (5 * 24 + 6) * 3600
RUN_DAY = dt.datetime.fromtimestamp(RUN_AT, dt.UTC).strftime("%Y-%m-%d")

# The file's header names, in file order, and the order of its rows.
EXPECTED = {
    "criteo": (
        ["event_id", "event_timestamp", "user_email", "event_item_id", "event_item_price",
         "event_item_quantity", "event_currency", "store_id"],
        "event_id, delivery_key",
    ),
    "pinterest_file": (
        ["email", "event_time", "event_type", "source_type", "value", "currency", "order_id",
         "quantity"],
        "delivery_key",
    ),
    "snapchat_file": (
        ["hashed_email", "hashed_phone_number", "event_type", "timestamp", "price", "currency",
         "transaction_id", "item_ids", "number_items"],
        "delivery_key",
    ),
}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    return str(value)


@pytest.mark.slow
@pytest.mark.parametrize("destination", sorted(EXPECTED))
def test_fixture_marts_become_files_cell_for_cell(file_marts, files: FileTests, destination):
    mart = MARTS[destination][0]
    headers, order = EXPECTED[destination]
    with duckdb.connect(str(file_marts.duckdb_path), read_only=True) as con:
        result = con.execute(f"select * exclude (delivery_key) from {mart} order by {order}")
        columns = [column[0] for column in result.description]
        expected = [[_text(value) for value in row] for row in result.fetchall()]
    assert columns == headers, f"{mart} is not the file: its columns are {columns}"
    assert expected, f"the fixture build left {mart} empty"
    files.env(DUCKDB_PATH=str(file_marts.duckdb_path))  # no <NAME>_AS_OF: the build log says
    target = files.directory(destination)
    hooks = Hooks(clock=files.ws.clock.monotonic, sleep=files.ws.clock.sleep,
                  wallclock=lambda: RUN_AT, rng=random.Random(7))

    assert cli.main(["run", destination], hooks=hooks) == 0

    (name,) = files.listing(target)
    assert RUN_DAY != AS_OF
    assert name.startswith(f"{destination}_{AS_OF}_"), name
    (record,) = files.files_table(destination)
    assert record["as_of"] == AS_OF
    header, *rows = read_rows(target / name)
    assert header == headers
    assert rows == expected
    assert files.statuses(destination) == {"delivered": len(expected)}

    assert cli.main(["run", destination], hooks=hooks) == 0
    assert files.listing(target) == [name]


@pytest.mark.slow
def test_criteo_user_email_is_sha256_of_the_md5_as_criteo_asks(file_marts):
    """Criteo's flat file takes the email "as SHA256 of an MD5": SHA-256 of the lower-case hex
    MD5 of the normalised email. Checked here in Python, on every row of the fixture build."""
    with duckdb.connect(str(file_marts.duckdb_path), read_only=True) as con:
        sent = {row[0] for row in con.execute("select user_email from criteo_sales").fetchall()}
        emails = [row[0] for row in con.execute(
            "select email_normalized from int_customers_normalized "
            "where email_normalized is not null").fetchall()]
    assert sent, "the fixture build left criteo_sales empty"
    criteo_form = {hashlib.sha256(hashlib.md5(email.encode()).hexdigest().encode()).hexdigest()
                   for email in emails}
    plain = {hashlib.sha256(email.encode()).hexdigest() for email in emails}
    assert sent <= criteo_form
    assert not sent & plain
    # Criteo's own example (its SDK's "Email Hashing Format"), through the same formula.
    md5 = hashlib.md5(b"john.doe@gmail.com").hexdigest()
    assert md5 == "e13743a7f1db7f4246badd6fd6ff54ff"
    assert hashlib.sha256(md5.encode()).hexdigest() == (
        "000e3171a5110c35c69d060112bd0ba55d9631c7c2ec93f1840e4570095b263a")
