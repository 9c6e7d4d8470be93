"""Pinterest offline conversions as a CSV file (Ads Manager's conversion upload).

Destination `pinterest_file`. It reads `pinterest_conversions_csv`
(docs/marts.md), a model over the Conversions API mart
`pinterest_conversions` whose columns are the file's: `email`, `event_time`,
`event_type`, `source_type` (confirmed by Pinterest's "Upload conversions
with Ads Manager" help page [V]; `source_type` carries the API's
action_source, `offline`, a value not confirmed for files [?]), `value`,
`currency`, `order_id`, `quantity` (not confirmed [?]: the model's aliases,
the one place to rename them). It keeps its own ledger entries:
enable this path or the API (`pinterest`), not both, or Pinterest counts the
same sale twice.

A file holds fewer than 10 million rows and under 5 GB: beyond either limit
the rows go into further parts. Ads Manager takes files by hand
(transport = "directory"); a partner SFTP drop works with transport = "sftp".
"""

from __future__ import annotations

from dataclasses import dataclass

from shipper.destinations.base import register
from shipper.files.destination import FileDestination, FileDestinationSettings
from shipper.settings import setting


@dataclass(frozen=True)
class PinterestFileSettings(FileDestinationSettings):
    mart: str = setting("pinterest_conversions_csv",
                        "The mart this destination reads (the file's columns).")
    # "fewer than 10 million rows": the header line counts as one, to be safe.
    max_rows_per_file: int = setting(
        9_999_998, "Data rows per file (Pinterest: fewer than 10 million rows)."
    )
    max_bytes_per_file: int = setting(
        4_999_999_999, "Bytes per file before compression (Pinterest: under 5 GB)."
    )


@register
class PinterestFile(FileDestination):
    name = "pinterest_file"
    title = "Pinterest (CSV upload)"
    settings_class = PinterestFileSettings
    settings: PinterestFileSettings
