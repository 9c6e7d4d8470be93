"""Snapchat offline events as a CSV file.

Destination `snapchat_file`. It reads the same mart as the optional Snapchat
Conversions API destination (`snapchat`), `snapchat_conversions`
(docs/marts.md), and keeps its own ledger entries: enable one of the two
paths, not both.

Contract followed (PLATFORMS.md): hashed email and hashed phone, event type
(PURCHASE), timestamp, price, currency, transaction id, item ids and number
of items. No vendor page we could read confirms the exact header names or
their casing [?]: they are `SNAPCHAT_COLUMNS`, and `headers` in shipper.toml
renames one (`headers = ["timestamp=TIMESTAMP"]`) without touching code. The
timestamp column carries ISO-8601 UTC (`timestamp_utc` of the mart).

A row needs a hashed email or phone, and a purchase needs a price and a
currency; events older than 37 days are out of Snapchat's range and rejected
before writing (`max_event_age_days`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipper.config import setting
from shipper.destinations.base import register
from shipper.files.checks import check_event_time, check_hashes, check_money
from shipper.files.csvfile import Column
from shipper.files.destination import FileDestination, FileDestinationSettings

SNAPCHAT_COLUMNS = (
    Column("hashed_email", "hashed_email", confirmed=False),
    Column("hashed_phone_number", "hashed_phone", confirmed=False),
    Column("event_type", "event_type", confirmed=False),
    Column("timestamp", "timestamp_utc", confirmed=False),
    Column("price", "price", "decimal", confirmed=False),
    Column("currency", "currency", confirmed=False),
    Column("transaction_id", "transaction_id", confirmed=False),
    Column("item_ids", "item_ids", confirmed=False),
    Column("number_items", "number_items", "integer", confirmed=False),
)


@dataclass(frozen=True)
class SnapchatFileSettings(FileDestinationSettings):
    mart: str = setting("snapchat_conversions", "The mart this destination reads.")
    max_event_age_days: int = setting(37, "Snapchat rejects events older than 37 days.")


@register
class SnapchatFile(FileDestination):
    name = "snapchat_file"
    title = "Snapchat (CSV upload)"
    settings_class = SnapchatFileSettings
    file_columns = SNAPCHAT_COLUMNS
    check_columns = ("event_time",)
    settings: SnapchatFileSettings

    def validate(self, row: Mapping[str, Any]) -> str | None:
        if not row.get("event_type"):
            return "event_type is missing"
        if row.get("hashed_email") is None and row.get("hashed_phone") is None:
            return "no hashed email or phone"
        reason = check_hashes(row, ("hashed_email", "hashed_phone"))
        if reason:
            return reason
        reason = check_event_time(row.get("event_time"), self.now(),
                                  self.settings.max_event_age_days)
        if reason:
            return reason
        if row.get("event_type") == "PURCHASE" or row.get("price") is not None:
            reason = check_money(row.get("price"), row.get("currency"))
            if reason:
                return reason.replace("value", "price")
        return None
