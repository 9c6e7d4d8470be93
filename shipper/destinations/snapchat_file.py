"""Snapchat offline events as a CSV file.

Destination `snapchat_file`. It reads `snapchat_conversions_csv`
(docs/marts.md), a model over `snapchat_conversions` whose columns are the
file's: hashed email and phone, event type (PURCHASE), ISO-8601 UTC
timestamp, price, currency, transaction id, item ids and number of items
(PLATFORMS.md). No vendor page we could read confirms the header names or
their casing [?]: they are the model's aliases, the one place to rename
them. It keeps its own ledger entries, apart from the Conversions API
destination `snapchat` (shipper/destinations/snapchat.py), which sends the
same orders from `snapchat_conversions`: enable one of the two, not both,
or Snap counts each sale twice (`ship run` refuses both live).
"""

from __future__ import annotations

from dataclasses import dataclass

from shipper.destinations.base import register
from shipper.files.destination import FileDestination, FileDestinationSettings
from shipper.settings import setting


@dataclass(frozen=True)
class SnapchatFileSettings(FileDestinationSettings):
    mart: str = setting("snapchat_conversions_csv",
                        "The mart this destination reads (the file's columns).")


@register
class SnapchatFile(FileDestination):
    name = "snapchat_file"
    title = "Snapchat (CSV upload)"
    settings_class = SnapchatFileSettings
    settings: SnapchatFileSettings
