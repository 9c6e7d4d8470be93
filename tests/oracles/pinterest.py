"""Pinterest API for Conversions event (HEAD's shipper/destinations/pinterest.py), with
the birth date and gender hashes and `custom_data.contents` of issue #13."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.oracles._common import (
    check_event_time,
    check_hashes,
    drop_none,
    is_sha256_hex,
    parse_json_array,
    setting,
)

USER_DATA_KEYS = ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country",
                  "external_id")
MAX_EVENT_AGE_DAYS = 7
_VALUE = re.compile(r"-?\d+(\.\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    for key in ("event_name", "action_source", "event_id"):
        if not row.get(key):
            return f"{key} is missing"
    reason = check_event_time(row.get("event_time"), now,
                              setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS))
    if reason:
        return reason
    if not is_sha256_hex(row.get("em")):
        return "em is not a 64-character lower-case hex SHA-256"
    reason = check_hashes(row, USER_DATA_KEYS)
    if reason:
        return reason
    value = row.get("value")
    if value is not None:
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            return "value is not a decimal string"
        currency = row.get("currency")
        if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            return "currency is not a 3-letter upper-case ISO 4217 code"
    content_ids = parse_json_array(row.get("content_ids"))
    if content_ids is None or not all(isinstance(item, str) for item in content_ids):
        return "content_ids is not a JSON array of strings"
    contents = parse_json_array(row.get("contents"))
    if contents is None or not all(_is_content(item) for item in contents):
        return ("contents is not a JSON array of {id, item_price (a decimal string), "
                "quantity (an integer)}")
    return None


def _is_content(item: Any) -> bool:
    if not isinstance(item, Mapping) or set(item) != {"id", "item_price", "quantity"}:
        return False
    price, quantity = item["item_price"], item["quantity"]
    return (isinstance(item["id"], str) and isinstance(price, str)
            and _VALUE.fullmatch(price) is not None
            and isinstance(quantity, int) and not isinstance(quantity, bool))


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    user_data = {key: [row[key]] for key in USER_DATA_KEYS if row.get(key) is not None}
    custom_data = drop_none({
        "currency": row.get("currency"),
        "value": row.get("value"),
        "order_id": row.get("order_id"),
        "num_items": row.get("num_items"),
        "content_ids": parse_json_array(row.get("content_ids")) or None,
        "contents": parse_json_array(row.get("contents")) or None,
    })
    return drop_none({
        "event_name": row["event_name"],
        "action_source": row["action_source"],
        "event_time": row["event_time"],
        "event_id": row["event_id"],
        "user_data": user_data,
        "custom_data": custom_data or None,
    })
