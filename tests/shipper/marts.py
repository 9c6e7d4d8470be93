"""Mart tables built to docs/marts.md, and rows for them, for the shipper tests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from tests import oracles

META_USER_KEYS = ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")

# Column types of the marts, as docs/marts.md defines them.
META_CONVERSIONS = {
    "delivery_key": "varchar",
    "event_name": "varchar",
    "event_time": "bigint",
    "event_id": "varchar",
    "action_source": "varchar",
    **{key: "varchar" for key in META_USER_KEYS},
    "value": "decimal(18, 2)",
    "currency": "varchar",
    "order_id": "varchar",
    "contents": "varchar",
    "num_items": "integer",
    "window_days": "integer",
    "max_event_age_days": "integer",
    "payload": "varchar",
}
TIKTOK_CONVERSIONS = {
    "delivery_key": "varchar",
    "event": "varchar",
    "event_time": "bigint",
    "event_id": "varchar",
    "email": "varchar",
    "phone": "varchar",
    "external_id": "varchar",
    "value": "decimal(18, 2)",
    "currency": "varchar",
    "order_id": "varchar",
    "shop_id": "varchar",
    "content_type": "varchar",
    "contents": "varchar",
    "payload": "varchar",
}

META_TOKEN = "meta-test-token-0123456789"
TIKTOK_TOKEN = "tiktok-test-token-0123456789"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def meta_limits(action_source: str) -> tuple[int, int]:
    """(window_days, max_event_age_days) the mart gives an event of `action_source`:
    Meta takes physical_store events up to 62 days old, any other up to 7."""
    return (60, 62) if action_source == "physical_store" else (5, 7)


def meta_row(index: int, *, age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    """A meta_conversions row; its window_days and max_event_age_days follow its
    action_source (physical_store by default) unless given."""
    row: dict[str, Any] = {key: None for key in META_CONVERSIONS}
    row.update({
        "delivery_key": f"order-{index}",
        "event_name": "Purchase",
        "event_time": int(time.time()) - age_seconds - index % 600,
        "event_id": f"evt-{index}",
        "action_source": "physical_store",
        "em": sha(f"customer{index}@example.com"),
        "ph": sha(f"1650555{index:04d}"),
        "country": sha("us"),
        "value": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "order_id": f"SO-{index}",
        "contents": json.dumps([{"id": f"sku-{index % 7}", "quantity": 1,
                                 "item_price": 10.5}]),
        "num_items": 1,
    })
    row.update(overrides)
    window_days, max_event_age_days = meta_limits(row["action_source"])
    if "window_days" not in overrides:
        row["window_days"] = window_days
    if "max_event_age_days" not in overrides:
        row["max_event_age_days"] = max_event_age_days
    return row


def tiktok_row(index: int, *, age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {key: None for key in TIKTOK_CONVERSIONS}
    row.update({
        "delivery_key": f"order-{index}",
        "event": "CompletePayment",
        "event_time": int(time.time()) - age_seconds - index % 600,
        "event_id": f"evt-{index}",
        "email": sha(f"customer{index}@example.com"),
        "phone": sha(f"+1650555{index:04d}"),
        "value": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "order_id": f"SO-{index}",
        "shop_id": "store-1",
        "content_type": "product",
        "contents": json.dumps([{"content_id": f"sku-{index % 7}", "content_name": "Mug",
                                 "content_category": "kitchen", "brand": "Acme",
                                 "price": 10.5, "quantity": 1}]),
    })
    row.update(overrides)
    return row


# What builds a REST mart's payload in these tests: the oracle (the Python event
# builder the shipper had before the mart built it), as the mart's SQL does.
PAYLOAD_BUILDERS = {
    f"{name}_conversions": module.to_wire
    for name, module in oracles.BY_DESTINATION.items()
}
PAYLOAD_BUILDERS["klaviyo_profiles"] = oracles.klaviyo.to_wire
PAYLOAD_BUILDERS["braze_attributes"] = oracles.braze.to_wire


def payload_of(table: str, row: Mapping[str, Any]) -> str:
    """The payload the mart would hold for `row`, as compact JSON text."""
    event = PAYLOAD_BUILDERS[table](row)
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def write_mart(path: Path, table: str, columns: Mapping[str, str],
               rows: Iterable[Mapping[str, Any]]) -> None:
    """(Re)create `table` in the DuckDB file at `path` with exactly the contract's types.

    A row without `payload` gets the one its typed columns give (`payload_of`); a
    test that wants another (broken) payload passes it."""
    rows = list(rows)
    if "payload" in columns:
        rows = [row if row.get("payload") is not None else {**row, "payload": payload_of(table, row)}
                for row in rows]
    source = pa.table({
        name: pa.array([None if row.get(name) is None else str(row[name]) for row in rows],
                       pa.string())
        for name in columns
    })
    con = duckdb.connect(str(path))
    try:
        definition = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
        con.execute(f'create or replace table "{table}" ({definition})')
        con.register("source_rows", source)
        con.execute(f'insert into "{table}" by name select * from source_rows')
    finally:
        con.close()
