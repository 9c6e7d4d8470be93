"""Meta Conversions API event (HEAD's shipper/destinations/meta.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.oracles._common import check_event, drop_none, money, parse_json_array, setting

USER_DATA_KEYS = ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")
MAX_EVENT_AGE_DAYS = 7


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    return check_event(row, required=("event_name", "event_id", "action_source"), now=now,
                       max_age_days=setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS),
                       identifier_keys=USER_DATA_KEYS, purchase=("event_name", "Purchase"),
                       json_array="contents")


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    user_data = {key: [row[key]] for key in USER_DATA_KEYS if row.get(key) is not None}
    custom_data = drop_none({
        "value": money(row.get("value")),
        "currency": row.get("currency"),
        "order_id": row.get("order_id"),
        "contents": parse_json_array(row.get("contents")) or None,
        "num_items": row.get("num_items"),
    })
    return drop_none({
        "event_name": row["event_name"],
        "event_time": row["event_time"],
        "event_id": row["event_id"],
        "action_source": row["action_source"],
        "user_data": user_data,
        "custom_data": custom_data or None,
    })
