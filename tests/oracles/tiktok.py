"""TikTok Events API event (HEAD's shipper/destinations/tiktok.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.oracles._common import check_event, drop_none, money, parse_json_array, setting

USER_KEYS = ("email", "phone", "external_id")
MAX_EVENT_AGE_DAYS = 28


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    return check_event(row, required=("event", "event_id"), now=now,
                       max_age_days=setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS),
                       identifier_keys=USER_KEYS, purchase=("event", "CompletePayment"),
                       json_array="contents")


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    properties = drop_none({
        "value": money(row.get("value")),
        "currency": row.get("currency"),
        "order_id": row.get("order_id"),
        "shop_id": row.get("shop_id"),
        "content_type": row.get("content_type"),
        "contents": parse_json_array(row.get("contents")) or None,
    })
    return drop_none({
        "event": row["event"],
        "event_time": row["event_time"],
        "event_id": row["event_id"],
        "user": {key: row[key] for key in USER_KEYS if row.get(key) is not None},
        "properties": properties or None,
    })
