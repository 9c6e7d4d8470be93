"""Criteo offline sales: a CSV file a day, uploaded over SFTP.

Reads `criteo_sales` (docs/marts.md): one line per item of an eligible store
sale in the 24 hours before as_of, which is what the daily upload must cover
(PLATFORMS.md). Contract followed:

- a header row of lower-case names, one line per item, the lines of one order
  sharing `event_id` [V]; rows are written in event_id order and the lines of
  one order never straddle two files;
- `user_email` is the SHA-256 of the normalised email (Criteo also takes MD5
  or raw; the mart only holds the hash) [V];
- the header names below were seen in partner documentation only [P]: they
  are the `CRITEO_COLUMNS` mapping, and `headers` in shipper.toml renames one
  (`headers = ["store_id=store"]`) without touching code.

Criteo ingests with up to 48 h of lag [V]; a file delivered here is "accepted"
once it is on the server under its final name. Run once a day after the dbt
build: rows already delivered are never written again, so a second run the
same day uploads nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipper.config import setting
from shipper.destinations.base import register
from shipper.files.checks import check_money, is_sha256_hex
from shipper.files.csvfile import Column
from shipper.files.destination import FileDestination, FileDestinationSettings

CRITEO_COLUMNS = (
    Column("event_id", "event_id", confirmed=False),
    Column("event_timestamp", "event_timestamp", confirmed=False),
    Column("user_email", "user_email", confirmed=False),
    Column("event_item_id", "event_item_id", confirmed=False),
    Column("event_item_price", "event_item_price", "decimal", confirmed=False),
    Column("event_item_quantity", "event_item_quantity", "integer", confirmed=False),
    Column("event_currency", "event_currency", confirmed=False),
    Column("store_id", "store_id", confirmed=False),
)

_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")


@dataclass(frozen=True)
class CriteoSettings(FileDestinationSettings):
    mart: str = setting("criteo_sales", "The mart this destination reads.")


@register
class Criteo(FileDestination):
    name = "criteo"
    title = "Criteo"
    settings_class = CriteoSettings
    file_columns = CRITEO_COLUMNS
    sort_columns = ("event_id", "delivery_key")
    group_column = "event_id"
    settings: CriteoSettings

    def validate(self, row: Mapping[str, Any]) -> str | None:
        for key in ("event_id", "event_item_id"):
            if not row.get(key):
                return f"{key} is missing"
        timestamp = row.get("event_timestamp")
        if not isinstance(timestamp, str) or not _ISO_UTC.fullmatch(timestamp):
            return "event_timestamp is not ISO-8601 UTC (YYYY-MM-DDTHH:MM:SSZ)"
        if not is_sha256_hex(row.get("user_email")):
            return "user_email is not a 64-character lower-case hex SHA-256"
        reason = check_money(row.get("event_item_price"), row.get("event_currency"))
        if reason:
            return reason.replace("value", "event_item_price").replace("currency",
                                                                       "event_currency")
        quantity = row.get("event_item_quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            return "event_item_quantity is not a positive integer"
        return None
