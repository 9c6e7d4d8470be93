"""Criteo offline sales: a CSV file a day, uploaded over SFTP.

Reads `criteo_sales` (docs/marts.md), which is the file: `delivery_key`, then
the file's columns in file order under the file's header names (`event_id`,
`event_timestamp`, `user_email`, `event_item_id`, `event_item_price`,
`event_item_quantity`, `event_currency`, `store_id`). Criteo's "Offline sales
onboarding - flat file feed integration" page confirms `user_email`,
`event_id` and `event_item_id` [V]; the others were seen in partner
documentation only [P] (rename them in the model). One line per item of an
eligible store sale in the 24 hours before as_of, which is what the daily
upload must cover (PLATFORMS.md); the lines of one order share `event_id`
[V], and this module keeps them in one file: rows are written in event_id
order and never straddle two files. `user_email` is SHA-256 of the hex MD5
of the normalised email, the "SHA256 of an MD5" that page asks for [V]. What
a row may hold is decided and tested in dbt (criteo_sales.yml). Files are
named with the as_of of the build the mart came from (dbt_builds).

Criteo ingests with up to 48 h of lag [V]; a file delivered here is "accepted"
once it is on the server under its final name. Run once a day after the dbt
build: rows already delivered are never written again, so a second run the
same day uploads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipper.destinations.base import register
from shipper.files.destination import FileDestination, FileDestinationSettings
from shipper.settings import setting


@dataclass(frozen=True)
class CriteoSettings(FileDestinationSettings):
    mart: str = setting("criteo_sales", "The mart this destination reads (the file's columns).")


@register
class Criteo(FileDestination):
    name = "criteo"
    title = "Criteo"
    settings_class = CriteoSettings
    sort_columns = ("event_id", "delivery_key")
    group_column = "event_id"
    settings: CriteoSettings
