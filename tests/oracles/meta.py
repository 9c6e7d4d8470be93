"""Meta Conversions API event (HEAD's shipper/destinations/meta.py).

Since then each content item also carries the order line's `brand` and
`category` (members of the official SDK's Content): `to_wire` rebuilds every
item from Meta's content members only, in the SDK's order, a NULL one left
out, so a payload item with an unknown member, a null, or members out of
order differs from it.

And the age limit is Meta's per event, no longer one setting: 62 days for an
event whose action_source is physical_store, 7 for any other (Meta's "Using
the API" page, "Upload Time versus Event Transaction Time"). `validate` holds
each row to the limit of its action_source, and the row's own
`max_event_age_days` (what the shipper expires it by) must be that limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.oracles._common import check_event, drop_none, money, parse_json_array, setting

USER_DATA_KEYS = ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")
# facebook_business.adobjects.serverside.content.Content.normalize(), in its order
# (title, description and delivery_category are members the marts do not fill).
CONTENT_KEYS = ("id", "quantity", "item_price", "brand", "category")
MAX_EVENT_AGE_DAYS = 7
PHYSICAL_STORE_MAX_EVENT_AGE_DAYS = 62


def max_age_days(action_source: object, settings: Mapping[str, Any] | None = None) -> int:
    """Meta's age limit of an event of `action_source`, in days."""
    if action_source == "physical_store":
        return setting(settings, "physical_store_max_event_age_days",
                       PHYSICAL_STORE_MAX_EVENT_AGE_DAYS)
    return setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS)


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    limit = max_age_days(row.get("action_source"), settings)
    reason = check_event(row, required=("event_name", "event_id", "action_source"), now=now,
                         max_age_days=limit, identifier_keys=USER_DATA_KEYS,
                         purchase=("event_name", "Purchase"), json_array="contents")
    if reason is None and "max_event_age_days" in row and row["max_event_age_days"] != limit:
        reason = (f"max_event_age_days is {row['max_event_age_days']}, not Meta's {limit} "
                  f"for {row.get('action_source')}")
    return reason


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    user_data = {key: [row[key]] for key in USER_DATA_KEYS if row.get(key) is not None}
    custom_data = drop_none({
        "value": money(row.get("value")),
        "currency": row.get("currency"),
        "order_id": row.get("order_id"),
        "contents": contents(row.get("contents")) or None,
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


def contents(text: object) -> list[object] | None:
    """The content items of the mart's `contents`, each with Meta's members only."""
    items = parse_json_array(text)
    if items is None:
        return None
    return [drop_none({key: item.get(key) for key in CONTENT_KEYS}) if isinstance(item, dict) else item
            for item in items]
