"""Snap Conversions API v3 event, read from snapchat_conversions' typed columns.

Unlike the other oracles this one was written with the mart (issue #14): there
was no Python builder before. It is the event Snap's pages describe
(developers.snap.com, Conversions API: "Using the API", "Offline Events",
"Parameters") built independently of the SQL: user_data hashes as one-element
lists (em, ph, fn, ln; NULL ones left out), custom_data with value as a
number, num_items an integer and content_ids a list of strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.oracles._common import (
    check_event_time,
    check_hashes,
    check_money,
    drop_none,
    is_sha256_hex,
    money,
    parse_json_array,
    setting,
)

# user_data member <- mart column
USER_DATA = (("em", "hashed_email"), ("ph", "hashed_phone"), ("fn", "hashed_first_name"),
             ("ln", "hashed_last_name"))
MAX_EVENT_AGE_DAYS = 37
ACTION_SOURCE = "OFFLINE"


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    for key in ("event_type", "action_source", "event_id"):
        if not row.get(key):
            return f"{key} is missing"
    if row["action_source"] != ACTION_SOURCE:
        return f"action_source is {row['action_source']!r}, not {ACTION_SOURCE!r}"
    reason = check_event_time(row.get("event_time"), now,
                              setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS))
    if reason:
        return reason
    if row.get("event_type") == "PURCHASE":
        reason = check_money(row.get("price"), row.get("currency"))
        if reason:
            return reason
    if not (is_sha256_hex(row.get("hashed_email")) or is_sha256_hex(row.get("hashed_phone"))):
        return "neither hashed_email nor hashed_phone is a SHA-256 (Snap needs one)"
    reason = check_hashes(row, [column for _, column in USER_DATA])
    if reason:
        return reason
    content_ids = parse_json_array(row.get("content_ids"))
    if content_ids is None or not all(isinstance(item, str) for item in content_ids):
        return "content_ids is not a JSON array of strings"
    number_items = row.get("number_items")
    if number_items is not None and (isinstance(number_items, bool)
                                     or not isinstance(number_items, int)):
        return "number_items is not an integer"
    return None


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    user_data = {member: [row[column]] for member, column in USER_DATA
                 if row.get(column) is not None}
    custom_data = drop_none({
        "currency": row.get("currency"),
        "value": money(row.get("price")),
        "order_id": row.get("transaction_id"),
        "num_items": _integer(row.get("number_items")),
        "content_ids": parse_json_array(row.get("content_ids")) or None,
    })
    return drop_none({
        "event_name": row["event_type"],
        "action_source": row["action_source"],
        "event_time": _integer(row["event_time"]),
        "event_id": row["event_id"],
        "user_data": user_data,
        "custom_data": custom_data or None,
    })


def _integer(value: Any) -> int | None:
    """An integer column's value (a test mart may hold it as text)."""
    return None if value is None else int(value)
