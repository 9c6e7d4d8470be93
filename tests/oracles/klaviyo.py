"""Klaviyo bulk-import profile (HEAD's shipper/destinations/klaviyo.py), with the names
and the `location` of issue #13."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.oracles._common import encode_body

PROPERTY_COLUMNS = (
    "last_offline_purchase_date", "offline_orders_365d", "offline_revenue_365d",
    "offline_revenue_currency", "last_store_id", "favourite_category",
)
# Mart column -> member of Klaviyo's profile `location` (ProfileLocation in klaviyo-api).
LOCATION_COLUMNS = (("address1", "address1"), ("city", "city"), ("region", "region"),
                    ("zip", "zip"), ("country", "country"))
MAX_PROFILE_BYTES = 100_000  # Klaviyo: at most 100 KB per profile
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    if not row.get("external_id"):
        return "external_id is missing"
    email, phone = row.get("email"), row.get("phone_number")
    if not email and not phone:
        return "no email and no phone_number"
    if email and (not isinstance(email, str) or "@" not in email or email != email.strip()):
        return "email is not a normalised address"
    if phone and (not isinstance(phone, str) or not _E164.fullmatch(phone)):
        return "phone_number is not E.164"
    for column in ("first_name", "last_name", *(column for column, _ in LOCATION_COLUMNS)):
        value = row.get(column)
        if value is not None and (not isinstance(value, str) or not value
                                  or value != value.strip()):
            return f"{column} is not trimmed text"
    if len(encode_body(to_wire(row))) > MAX_PROFILE_BYTES:
        return "profile is larger than Klaviyo's 100 KB per profile"
    return None


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"external_id": str(row["external_id"])}
    if row.get("email"):
        attributes["email"] = row["email"]
    if row.get("phone_number"):
        attributes["phone_number"] = row["phone_number"]
    for name in ("first_name", "last_name"):
        if row.get(name) is not None:
            attributes[name] = row[name]
    location = {member: row[column] for column, member in LOCATION_COLUMNS
                if row.get(column) is not None}
    if location:
        attributes["location"] = location
    attributes["properties"] = {
        column: float(value) if isinstance(value, Decimal) else value
        for column in PROPERTY_COLUMNS
        for value in (row.get(column),)
    }
    return {"type": "profile", "attributes": attributes}
