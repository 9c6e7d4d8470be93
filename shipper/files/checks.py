"""Row checks of the file destinations.

File marts are still checked row by row here before a row is written to a
file; the REST destinations' rows are decided in SQL (their marts' tests).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

SECONDS_PER_DAY = 86_400
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CURRENCY = re.compile(r"[A-Z]{3}")


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
