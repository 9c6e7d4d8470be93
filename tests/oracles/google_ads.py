"""Google Ads Data Manager event (HEAD's shipper/destinations/google_ads.py)."""

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
    setting,
)

EVENT_SOURCES = frozenset({"IN_STORE", "PHONE", "WEB", "APP", "MESSAGE", "OTHER"})
CONSENT_STATUSES = frozenset({"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"})
HASH_COLUMNS = ("email_sha256", "phone_sha256")
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
    reason = check_hashes(row, HASH_COLUMNS)
    if reason:
        return reason
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
    consent = drop_none({
        "adUserData": row.get("ad_user_data_consent"),
        "adPersonalization": row.get("ad_personalization_consent"),
    })
    return drop_none({
        "transactionId": row["transaction_id"],
        "eventTimestamp": row["event_timestamp"],
        "eventSource": row.get("event_source"),
        "conversionValue": money(row.get("conversion_value")),
        "currency": row.get("currency"),
        "userData": {"userIdentifiers": identifiers},
        "consent": consent or None,
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
