"""Braze /users/track attribute object (HEAD's shipper/destinations/braze.py), with each
date attribute as a full ISO 8601 timestamp at midnight UTC of its date (issue #14: an
explicit ISO 8601 time with its zone, which Braze stores as a time attribute)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.oracles._common import setting

ATTRIBUTE_COLUMNS = (
    "last_offline_purchase_date", "offline_orders_365d", "offline_revenue_365d",
    "offline_revenue_currency", "last_store_id", "favourite_category",
)
# Date columns (`YYYY-MM-DD` in the mart) the payload sends as Braze time attributes.
TIME_COLUMNS = ("last_offline_purchase_date",)


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    if not row.get("external_id"):
        return "external_id is missing"
    currency = row.get("offline_revenue_currency")
    if row.get("offline_revenue_365d") is not None and not currency:
        return "offline_revenue_currency is missing"
    return None


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"external_id": str(row["external_id"])}
    for column in ATTRIBUTE_COLUMNS:
        value = row.get(column)
        if column in TIME_COLUMNS and value is not None:
            value = time_attribute(value)
        attributes[column] = float(value) if isinstance(value, Decimal) else value
    if setting(settings, "update_existing_only", False):
        attributes["_update_existing_only"] = True
    return attributes


def time_attribute(value: Any) -> str:
    """A date (`YYYY-MM-DD` text or a date) as the ISO 8601 time Braze stores as a time:
    midnight UTC of that date, `YYYY-MM-DDT00:00:00Z`."""
    if isinstance(value, dt.datetime):
        value = value.date()
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return f"{day.isoformat()}T00:00:00Z"
