"""Pinterest offline conversions as a CSV file (Ads Manager's conversion upload).

Destination `pinterest_file`. It reads the same mart as the Pinterest
Conversions API destination (`pinterest`), `pinterest_conversions`
(docs/marts.md), and keeps its own ledger entries: enable one of the two
paths, not both, or Pinterest counts the same sale twice.

Contract followed (PLATFORMS.md, Pinterest's "upload conversions" help page):

- `email` (SHA-256 of the trimmed lower-case address), `event_time` (unix
  seconds, recommended), `event_type` (checkout) are confirmed [V];
- value, currency, order id and quantity header names are not confirmed [?]:
  they are the last four entries of `PINTEREST_COLUMNS`, and `headers` in
  shipper.toml renames them (`headers = ["order_id=order id"]`) or leaves one
  out (`"quantity="`);
- each conversion within 30 days (`max_event_age_days`), a file under 10 million
  rows and under 5 GB: beyond either limit the rows go into further parts.

Ads Manager takes files by hand (transport = "directory"); a partner SFTP
drop works with transport = "sftp".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shipper.config import setting
from shipper.destinations.base import register
from shipper.files.checks import check_event_time, check_hashes, check_money, is_sha256_hex
from shipper.files.csvfile import Column
from shipper.files.destination import FileDestination, FileDestinationSettings

PINTEREST_COLUMNS = (
    Column("email", "em"),
    Column("event_time", "event_time", "integer"),
    Column("event_type", "event_name"),
    Column("value", "value", "decimal", confirmed=False),
    Column("currency", "currency", confirmed=False),
    Column("order_id", "order_id", confirmed=False),
    Column("quantity", "num_items", "integer", confirmed=False),
)


@dataclass(frozen=True)
class PinterestFileSettings(FileDestinationSettings):
    mart: str = setting("pinterest_conversions", "The mart this destination reads.")
    # "fewer than 10 million rows": the header line counts as one, to be safe.
    max_rows_per_file: int = setting(
        9_999_998, "Data rows per file (Pinterest: fewer than 10 million rows)."
    )
    max_bytes_per_file: int = setting(
        4_999_999_999, "Bytes per file before compression (Pinterest: under 5 GB)."
    )
    max_event_age_days: int = setting(30, "Pinterest takes conversions of the last 30 days.")


@register
class PinterestFile(FileDestination):
    name = "pinterest_file"
    title = "Pinterest (CSV upload)"
    settings_class = PinterestFileSettings
    file_columns = PINTEREST_COLUMNS
    settings: PinterestFileSettings

    def validate(self, row: Mapping[str, Any]) -> str | None:
        if not row.get("event_name"):
            return "event_name is missing"
        if not is_sha256_hex(row.get("em")):
            return "em is not a 64-character lower-case hex SHA-256"
        reason = check_event_time(row.get("event_time"), self.now(),
                                  self.settings.max_event_age_days)
        if reason:
            return reason
        if row.get("value") is not None:
            reason = check_money(row.get("value"), row.get("currency"))
            if reason:
                return reason
        return check_hashes(row, ("em",))
