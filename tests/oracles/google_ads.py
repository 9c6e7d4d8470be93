"""Google Ads Data Manager event (HEAD's shipper/destinations/google_ads.py),
with the address identifier and cartData the mart added since (issue #13), and
store sales' eventLocation.storeId and cartData's Merchant Center ids (issue #14:
`settings` may hold merchant_id, merchant_feed_label, merchant_feed_language_code,
the dbt vars without their google_ads_ prefix; a row's store_sales column says
whether it was built for store sales)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tests.oracles._common import (
    SECONDS_PER_DAY,
    check_hashes,
    check_money,
    drop_none,
    money,
    parse_json_array,
    setting,
)

EVENT_SOURCES = frozenset({"IN_STORE", "PHONE", "WEB", "APP", "MESSAGE", "OTHER"})
CONSENT_STATUSES = frozenset({"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"})
HASH_COLUMNS = ("email_sha256", "phone_sha256")
ADDRESS_COLUMNS = {"givenName": "given_name_sha256", "familyName": "family_name_sha256",
                   "regionCode": "region_code", "postalCode": "postal_code"}
MAX_EVENT_AGE_DAYS = 90


def validate(row: Mapping[str, Any], now: float,
             settings: Mapping[str, Any] | None = None) -> str | None:
    if not row.get("transaction_id"):
        return "transaction_id is missing"
    reason = check_timestamp(row.get("event_timestamp"), now,
                             setting(settings, "max_event_age_days", MAX_EVENT_AGE_DAYS))
    if reason:
        return reason
    reason = check_money(row.get("conversion_value"), row.get("currency"))
    if reason:
        return reason
    if row.get("event_source") not in EVENT_SOURCES:
        return "event_source is not a Data Manager EventSource"
    if all(row.get(key) is None for key in HASH_COLUMNS):
        return "no user data (email_sha256 and phone_sha256 are NULL)"
    reason = check_hashes(row, (*HASH_COLUMNS, "given_name_sha256", "family_name_sha256"))
    if reason:
        return reason
    present = [row.get(column) is not None for column in ADDRESS_COLUMNS.values()]
    if any(present) and not all(present):
        return "address is incomplete (AddressInfo requires both names, region and postal code)"
    if parse_json_array(row.get("cart_items")) is None:
        return "cart_items is not a JSON array"
    if row.get("store_sales") and (not row.get("store_id") or row.get("event_source") != "IN_STORE"):
        return "a store sales event needs its store_id (eventLocation.storeId) and IN_STORE"
    for key in ("ad_user_data_consent", "ad_personalization_consent"):
        value = row.get(key)
        if value is not None and value not in CONSENT_STATUSES:
            return f"{key} is not a ConsentStatus"
    return None


def to_wire(row: Mapping[str, Any], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    identifiers = []
    if row.get("email_sha256") is not None:
        identifiers.append({"emailAddress": row["email_sha256"]})
    if row.get("phone_sha256") is not None:
        identifiers.append({"phoneNumber": row["phone_sha256"]})
    address = {key: row.get(column) for key, column in ADDRESS_COLUMNS.items()}
    if all(value is not None for value in address.values()):
        identifiers.append({"address": address})
    items = parse_json_array(row.get("cart_items"))
    consent = drop_none({
        "adUserData": row.get("ad_user_data_consent"),
        "adPersonalization": row.get("ad_personalization_consent"),
    })
    cart = drop_none({
        "merchantId": setting(settings, "merchant_id", None),
        "merchantFeedLabel": setting(settings, "merchant_feed_label", None),
        "merchantFeedLanguageCode": setting(settings, "merchant_feed_language_code", None),
        "items": items or None,
    })
    return drop_none({
        "transactionId": row["transaction_id"],
        "eventTimestamp": row["event_timestamp"],
        "eventSource": row.get("event_source"),
        "conversionValue": money(row.get("conversion_value")),
        "currency": row.get("currency"),
        "userData": {"userIdentifiers": identifiers},
        "consent": consent or None,
        "cartData": cart if items else None,
        "eventLocation": {"storeId": row["store_id"]} if row.get("store_sales") else None,
    })


def check_timestamp(value: Any, now: float, max_age_days: int) -> str | None:
    if not value or not isinstance(value, str):
        return "event_timestamp is missing"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return "event_timestamp is not RFC 3339"
    if "T" not in value or moment.tzinfo is None:
        return "event_timestamp is not RFC 3339 with an offset"
    seconds = moment.timestamp()
    if seconds > now:
        return "event_timestamp is in the future"
    if seconds < now - max_age_days * SECONDS_PER_DAY:
        return f"event_timestamp is older than {max_age_days} days"
    return None
