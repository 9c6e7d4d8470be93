"""What every fake event platform shares: the events it accepted, poison ids, the window.

`poison` holds event ids a fake refuses although they look valid, to stand for
whatever a platform might dislike that the shipper cannot see: a request
carrying one is refused as a whole, as Meta and TikTok do.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeApp

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
DAY = 86_400


class EventSink(FakeApp):
    """What both fakes share: the accepted events and poison ids."""

    id_field = "event_id"

    def __init__(self, *, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.now = now
        self.accepted: list[dict[str, Any]] = []
        self.poison: set[str] = set()
        self.batch_sizes: list[int] = []

    def accept(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.accepted.extend(events)
            self.batch_sizes.append(len(events))

    @property
    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [event[self.id_field] for event in self.accepted]

    def duplicates(self) -> dict[str, int]:
        counts = collections.Counter(self.accepted_ids)
        return {event_id: count for event_id, count in counts.items() if count > 1}

    def check_time(self, event_time: Any, max_age_days: int) -> str | None:
        if isinstance(event_time, bool) or not isinstance(event_time, int):
            return "event_time must be an integer of unix seconds"
        now = self.now()
        if event_time > now + 60:
            return "event_time is in the future"
        if event_time < now - max_age_days * DAY:
            return f"event_time is older than {max_age_days} days"
        return None
