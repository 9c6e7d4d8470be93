"""The three file destinations on the marts dbt builds from tests/fixtures/raw: the file is
the mart (its columns but delivery_key, in order, as the header; every row, cell for cell),
and a rerun writes nothing."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import duckdb
import pytest

from shipper import cli
from shipper.delivery import Hooks
from tests.files.conftest import AS_OF, MARTS, FileTests, read_rows

# Six in the morning of as_of (UTC): the marts' windows end at as_of.
RUN_AT = dt.datetime.fromisoformat(AS_OF).replace(tzinfo=dt.UTC).timestamp() + 6 * 3600

# The file's header names, in file order, and the order of its rows.
EXPECTED = {
    "criteo": (
        ["event_id", "event_timestamp", "user_email", "event_item_id", "event_item_price",
         "event_item_quantity", "event_currency", "store_id"],
        "event_id, delivery_key",
    ),
    "pinterest_file": (
        ["email", "event_time", "event_type", "value", "currency", "order_id", "quantity"],
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
    files.env(DUCKDB_PATH=str(file_marts.duckdb_path),
              **{f"{destination.upper()}_AS_OF": AS_OF})
    target = files.directory(destination)
    hooks = Hooks(clock=files.ws.clock.monotonic, sleep=files.ws.clock.sleep,
                  wallclock=lambda: RUN_AT, rng=random.Random(7))

    assert cli.main(["run", destination], hooks=hooks) == 0

    (name,) = files.listing(target)
    assert name.startswith(f"{destination}_{AS_OF}_")
    header, *rows = read_rows(target / name)
    assert header == headers
    assert rows == expected
    assert files.statuses(destination) == {"delivered": len(expected)}

    assert cli.main(["run", destination], hooks=hooks) == 0
    assert files.listing(target) == [name]
