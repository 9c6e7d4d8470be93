"""The Trade Desk offline conversion item (HEAD's shipper/destinations/the_trade_desk.py).

`to_wire` puts in `TrackingTagId` (a shipper setting) and `UID2` (row["uid2"],
which the shipper's identity-map step adds); the mart's payload leaves both
out, and SHIPPER_MEMBERS names them for tests that compare the two.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from tests.oracles._common import check_money, drop_none, parse_json_array, setting

IDENTIFIER_TYPES = ("email", "phone")
LINE_ITEM_KEYS = ("item_code", "name", "qty", "price", "cat")
MAX_ORDER_ID_LENGTH = 64
MAX_EVENT_AGE_DAYS = 25
SHIPPER_MEMBERS = ("TrackingTagId", "UID2")
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_UID2_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")
_SECONDS_PER_DAY = 86_400


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    reason = check_row(row, now, settings)
    if reason:
        return reason
    # `uid2` is set by the shipper's prepare step; rows checked before mapping lack it.
    if "uid2" in row and not row.get("uid2"):
        return f"uid2 unmapped: {row.get('uid2_unmapped') or 'no UID2'}"
    return None


def check_row(row: Mapping[str, Any], now: float,
              settings: Mapping[str, Any] | None = None) -> str | None:
    order_id = row.get("order_id")
    if not order_id:
        return "order_id is missing"
    if len(str(order_id)) > MAX_ORDER_ID_LENGTH:
        return f"order_id is longer than {MAX_ORDER_ID_LENGTH} characters"
    if row.get("identifier_type") not in IDENTIFIER_TYPES:
        return "identifier_type is not 'email' or 'phone'"
    uid2_hash = row.get("uid2_hash")
    if not uid2_hash:
        return "uid2_hash is missing"
    if not isinstance(uid2_hash, str) or not _UID2_HASH.fullmatch(uid2_hash):
        return "uid2_hash is not a base64 SHA-256 (44 characters)"
    if row.get("country") != "USA":
        return "country is not USA (The Trade Desk takes US sales only)"
    reason = check_time(row.get("timestamp_utc"), now,
                        setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS))
    if reason:
        return reason
    reason = check_money(row.get("value"), row.get("value_currency"))
    if reason:
        return reason.replace("currency", "value_currency")
    line_items = parse_json_array(row.get("line_items"))
    if line_items is None or not all(isinstance(item, Mapping) for item in line_items):
        return "line_items is not a JSON array of objects"
    return None


def check_time(value: Any, now: float, days: int) -> str | None:
    if not value:
        return "timestamp_utc is missing"
    if not isinstance(value, str) or not _ISO_UTC.fullmatch(value):
        return "timestamp_utc is not YYYY-MM-DDTHH:MM:SSZ"
    try:
        moment = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "timestamp_utc is not a valid date and time"
    seconds = moment.timestamp()
    if seconds > now:
        return "timestamp_utc is in the future"
    if seconds < now - days * _SECONDS_PER_DAY:
        return f"timestamp_utc is older than {days} days"
    return None


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    line_items = [
        {key: str(item[key]) for key in LINE_ITEM_KEYS if item.get(key) is not None}
        for item in parse_json_array(row.get("line_items")) or []
    ]
    return drop_none({
        "TrackingTagId": setting(settings, "tracking_tag_id", None),
        "TimestampUtc": row["timestamp_utc"],
        "UID2": row.get("uid2"),
        "OrderId": row["order_id"],
        "Value": None if row.get("value") is None else str(row["value"]),
        "ValueCurrency": row.get("value_currency"),
        "EventName": row.get("event_name"),
        "Country": row.get("country"),
        "Region": row.get("region"),
        "City": row.get("city"),
        "MerchantId": row.get("merchant_id"),
        "LineItems": line_items or None,
    })
