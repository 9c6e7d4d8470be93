"""Braze /users/track attribute object (HEAD's shipper/destinations/braze.py)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.oracles._common import setting

ATTRIBUTE_COLUMNS = (
    "last_offline_purchase_date", "offline_orders_365d", "offline_revenue_365d",
    "offline_revenue_currency", "last_store_id", "favourite_category",
)


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
        attributes[column] = float(value) if isinstance(value, Decimal) else value
    if setting(settings, "update_existing_only", False):
        attributes["_update_existing_only"] = True
    return attributes
