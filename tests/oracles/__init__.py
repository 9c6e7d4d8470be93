"""Test oracles: the Python event builders and row checks the shipper had before
the payload moved into SQL (copied from `git show ebd7853:shipper/destinations/*.py`).

One module per REST destination, each with two plain functions:

    to_wire(row, settings=None) -> dict     the event or profile as the platform receives it
    validate(row, now, settings=None) -> str | None   why the row cannot be sent, or None

`settings` is a mapping of the destination's shipper settings, read only where
the original read `self.settings` (with the original defaults). Nothing here
imports `shipper`: the oracles must not move when the shipper does.
"""

from tests.oracles import (
    braze,
    google_ads,
    klaviyo,
    meta,
    pinterest,
    snapchat,
    the_trade_desk,
    tiktok,
)

BY_DESTINATION = {
    "meta": meta,
    "tiktok": tiktok,
    "google_ads": google_ads,
    "pinterest": pinterest,
    "snapchat": snapchat,
    "the_trade_desk": the_trade_desk,
    "braze": braze,
    "klaviyo": klaviyo,
}

__all__ = ["BY_DESTINATION", "braze", "google_ads", "klaviyo", "meta", "pinterest",
           "snapchat", "the_trade_desk", "tiktok"]
