"""Helpers the oracles share, copied from HEAD's shipper/destinations/base.py."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
SECONDS_PER_DAY = 86_400


def setting(settings: Mapping[str, Any] | None, name: str, default: Any) -> Any:
    """settings[name], or the shipper's default when the mapping does not set it."""
    if settings is None or name not in settings:
        return default
    return settings[name]


def is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def check_hashes(row: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """Reason when a present identifier is not a 64-character lower-case hex digest."""
    for key in keys:
        value = row.get(key)
        if value is not None and not is_sha256_hex(value):
            return f"{key} is not a 64-character lower-case hex SHA-256"
    return None


def check_event_time(value: Any, now: float, max_age_days: int) -> str | None:
    """Reason when `value` (unix seconds) is missing, in the future, or too old."""
    if value is None:
        return "event_time is missing"
    if isinstance(value, bool) or not isinstance(value, int):
        return "event_time is not unix seconds"
    if value > now:
        return "event_time is in the future"
    if value < now - max_age_days * SECONDS_PER_DAY:
        return f"event_time is older than {max_age_days} days"
    return None


def check_money(value: Any, currency: Any) -> str | None:
    if value is None:
        return "value is missing"
    if currency is None or currency == "":
        return "currency is missing"
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return "currency is not a 3-letter upper-case ISO 4217 code"
    return None


def check_event(row: Mapping[str, Any], *, required: Sequence[str], now: float,
                max_age_days: int, identifier_keys: Sequence[str],
                purchase: tuple[str, str] | None = None,
                json_array: str | None = None) -> str | None:
    """The checks event destinations share, in order: the first failure's reason."""
    for key in required:
        if not row.get(key):
            return f"{key} is missing"
    reason = check_event_time(row.get("event_time"), now, max_age_days)
    if reason:
        return reason
    if purchase is not None:
        name_column, purchase_name = purchase
        if row.get(name_column) == purchase_name or row.get("value") is not None:
            reason = check_money(row.get("value"), row.get("currency"))
            if reason:
                return reason
    if all(row.get(key) is None for key in identifier_keys):
        return "no user data (every identifier is NULL)"
    reason = check_hashes(row, identifier_keys)
    if reason:
        return reason
    if json_array is not None and parse_json_array(row.get(json_array)) is None:
        return f"{json_array} is not a JSON array"
    return None


def parse_json_array(text: Any) -> list[Any] | None:
    """The JSON array held in a varchar mart column, or None when it is not one."""
    if text is None:
        return []
    if isinstance(text, list):  # Parquet exports may hold a real list
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def money(value: Any) -> float | None:
    """A decimal from the mart as a JSON number."""
    return None if value is None else float(value)


def drop_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


_BODY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_body(body: Any) -> bytes:
    """The body as compact UTF-8 JSON (what the shipper put on the wire)."""
    return _BODY_JSON.encode(body).encode()
