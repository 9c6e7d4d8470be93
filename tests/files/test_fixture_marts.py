"""The three file destinations on the marts dbt builds from tests/fixtures/raw: every mart
row lands in its file, cell for cell, and a rerun writes nothing."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import duckdb
import pytest

from shipper import cli
from shipper.delivery import Hooks
from tests.files.conftest import AS_OF, FileTests, read_rows

# Six in the morning of as_of (UTC): the marts' windows end at as_of, and the age
# checks (Pinterest 30 days, Snapchat 37) count from this "now".
RUN_AT = dt.datetime.fromisoformat(AS_OF).replace(tzinfo=dt.UTC).timestamp() + 6 * 3600

EXPECTED = {
    "criteo": (
        "criteo_sales",
        ["event_id", "event_timestamp", "user_email", "event_item_id", "event_item_price",
         "event_item_quantity", "event_currency", "store_id"],
        "event_id, delivery_key",
    ),
    "pinterest_file": (
        "pinterest_conversions",
        ["em", "event_time", "event_name", "value", "currency", "order_id", "num_items"],
        "delivery_key",
    ),
    "snapchat_file": (
        "snapchat_conversions",
        ["hashed_email", "hashed_phone", "event_type", "timestamp_utc", "price", "currency",
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
    mart, columns, order = EXPECTED[destination]
    with duckdb.connect(str(file_marts.duckdb_path), read_only=True) as con:
        expected = [[_text(value) for value in row] for row in con.execute(
            f"select {', '.join(columns)} from {mart} order by {order}").fetchall()]
    assert expected, f"the fixture build left {mart} empty"
    files.env(DUCKDB_PATH=str(file_marts.duckdb_path),
              **{f"{destination.upper()}_AS_OF": AS_OF})
    target = files.directory(destination)
    hooks = Hooks(clock=files.ws.clock.monotonic, sleep=files.ws.clock.sleep,
                  wallclock=lambda: RUN_AT, rng=random.Random(7))

    assert cli.main(["run", destination], hooks=hooks) == 0

    (name,) = files.listing(target)
    assert name.startswith(f"{destination}_{AS_OF}_")
    header, *rows = read_rows(target / name)
    assert len(header) == len(columns)
    assert rows == expected
    assert files.statuses(destination) == {"delivered": len(expected)}

    assert cli.main(["run", destination], hooks=hooks) == 0
    assert files.listing(target) == [name]
