"""Fake The Trade Desk offline conversion endpoint: POST /providerapi/offlineconversion.

Answers as the ttd-data SDK describes the endpoint: HTTP 200
`{"FailedLines": [...]}` where each failed line carries `ItemNumber` (the
item's 1-based position), `OrderId`, `TrackingTagId`, `TimestampUtc`,
`ErrorCode`, `Message` and `OriginalRequest`; the good items of the request
are kept. A wrong `TTD-Auth` is a 400 with one `Unauthorized` line (what TTD's
own tests see); a wrong `DataProviderId` or a body that is not a request is a
400 without FailedLines; more than `max_items` items or `max_bytes` bytes is a
413.

What it checks per item (a failed line when wrong): `TrackingTagId`
(MissingOrInvalidTrackingTagId); `TimestampUtc` as ISO-8601 UTC, not in the
future, not older than `max_age_days` (InvalidTimestamp); `UID2` present and,
when `valid_uid2` is given (the fake operator's `issued`), one the UID2
operator handed out, so a hash or a placeholder sent as a UID2 is caught
(Uid2Error); `Country` 'USA' (US sales only, a partner-documented rule);
`OrderId` at most 64 characters; `Value` a string; `ValueCurrency` three
upper-case letters; `LineItems` objects of string fields item_code, name,
qty, price, cat only; no field outside the item schema
(ItemDeserializationError). `poison` maps OrderIds to the error the fake
gives them although they look valid (default InvalidMerchantId).

Switches: `item_numbers = False` leaves ItemNumber out of failed lines (they
are then placed by OriginalRequest); `status_when_all_fail = 400` answers 400
with the FailedLines when no item of a request was kept.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeApp, FakeRequest, Reply

DAY = 86_400
ITEM_FIELDS = frozenset({
    "TDID", "DAID", "UID2", "UID2Token", "RampID", "EUID", "EUIDToken", "DataProviderUserId",
    "UserIdArray", "CookieMappingPartnerId", "OrderId", "ImpressionId", "TrackingTagId",
    "TimestampUtc", "Value", "ValueCurrency", "Country", "Region", "Metro", "City",
    "MerchantId", "EventName", "LineItems", "PrivacySettings",
    *(f"TD{number}" for number in range(1, 11)),
})
LINE_ITEM_FIELDS = frozenset({"item_code", "name", "qty", "price", "cat"})
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")


class FakeTheTradeDesk(FakeApp):
    def __init__(self, *, token: str = "ttd-test-auth-token-0123456789",
                 data_provider_id: str = "acme-provider", tracking_tag_id: str = "tt0abc1",
                 max_age_days: int = 25, max_items: int = 10_000, max_bytes: int = 10_000_000,
                 valid_uid2: Callable[[str], bool] | None = None,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.token = token
        self.data_provider_id = data_provider_id
        self.tracking_tag_id = tracking_tag_id
        self.max_age_days = max_age_days
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.valid_uid2 = valid_uid2
        self.now = now
        self.poison: dict[str, tuple[str, str]] = {}
        self.item_numbers = True
        self.status_when_all_fail = 200
        self.accepted: list[dict[str, Any]] = []
        self.batch_sizes: list[int] = []

    def poison_order(self, order_id: str, code: str = "InvalidMerchantId",
                     message: str = "The merchant is not configured") -> None:
        self.poison[order_id] = (code, message)

    @property
    def accepted_keys(self) -> list[tuple[str, str]]:
        """(OrderId, UID2) of every accepted item, duplicates included."""
        with self.lock:
            return [(item["OrderId"], item["UID2"]) for item in self.accepted]

    def duplicates(self) -> dict[tuple[str, str], int]:
        counts = collections.Counter(self.accepted_keys)
        return {key: count for key, count in counts.items() if count > 1}

    def handle(self, request: FakeRequest) -> Reply:
        if request.method != "POST" or request.path != "/providerapi/offlineconversion":
            return Reply(404, "Not Found")
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"Message": "The request body is not valid JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("Items"), list):
            return Reply(400, {"Message": "Items are missing"})
        items = body["Items"]
        if request.header("ttd-auth") != self.token:
            return Reply(400, {"FailedLines": [{
                "ErrorCode": "Unauthorized",
                "Message": "Authentication failed for the TTD-Auth token",
            }]})
        if body.get("DataProviderId") != self.data_provider_id:
            return Reply(400, {"Message": "The data provider is not configured for offline "
                                          "conversion data"})
        if len(items) > self.max_items or len(request.body) > self.max_bytes:
            return Reply(413, {"Message": "Request size exceeds the allowed limit"})
        if not items:
            return Reply(400, {"Message": "Items are missing"})
        failed = []
        kept = []
        for number, item in enumerate(items, start=1):
            problem = self.check_item(item)
            if problem is None:
                kept.append(item)
                continue
            code, message = problem
            line: dict[str, Any] = {
                "OrderId": item.get("OrderId") if isinstance(item, dict) else None,
                "ImpressionId": None,
                "TDID": None,
                "TrackingTagId": item.get("TrackingTagId") if isinstance(item, dict) else None,
                "TimestampUtc": item.get("TimestampUtc") if isinstance(item, dict) else None,
                "ErrorCode": code,
                "Message": message,
                "OriginalRequest": item,
            }
            if self.item_numbers:
                line["ItemNumber"] = str(number)
            failed.append(line)
        with self.lock:
            self.accepted.extend(kept)
            self.batch_sizes.append(len(items))
        status = self.status_when_all_fail if not kept else 200
        return Reply(status, {"FailedLines": failed})

    def check_item(self, item: Any) -> tuple[str, str] | None:
        if not isinstance(item, dict):
            return "ItemDeserializationError", "An item must be an object"
        unknown = sorted(set(item) - ITEM_FIELDS)
        if unknown:
            return "ItemDeserializationError", f"Unknown field {unknown[0]}"
        if item.get("TrackingTagId") != self.tracking_tag_id:
            return "MissingOrInvalidTrackingTagId", "The tracking tag id is missing or invalid"
        problem = self.check_timestamp(item.get("TimestampUtc"))
        if problem:
            return "InvalidTimestamp", problem
        uid2 = item.get("UID2")
        if not isinstance(uid2, str) or not uid2:
            return "MissingOrInvalidTDIDAndImpressionId", "The item has no user id"
        if self.valid_uid2 is not None and not self.valid_uid2(uid2):
            return "Uid2Error", "The UID2 is not a raw UID2"
        if item.get("Country") != "USA":
            return "Unknown", "Offline conversions are accepted for US sales only"
        order_id = item.get("OrderId")
        if not isinstance(order_id, str) or not 0 < len(order_id) <= 64:
            return "Unknown", "OrderId must hold 1 to 64 characters"
        if not isinstance(item.get("Value"), str):
            return "ItemDeserializationError", "Value must be a string"
        if not re.fullmatch(r"[A-Z]{3}", str(item.get("ValueCurrency"))):
            return "Unknown", "ValueCurrency must be an ISO 4217 code"
        for line_item in item.get("LineItems") or []:
            if not isinstance(line_item, dict) or set(line_item) - LINE_ITEM_FIELDS:
                return "ItemDeserializationError", "A line item has unknown fields"
            if not all(isinstance(value, str) for value in line_item.values()):
                return "ItemDeserializationError", "Line item fields must be strings"
        if order_id in self.poison:
            return self.poison[order_id]
        return None

    def check_timestamp(self, value: Any) -> str | None:
        if not isinstance(value, str) or not _ISO_UTC.fullmatch(value):
            return "TimestampUtc must be an ISO-8601 UTC date and time"
        moment = dt.datetime.fromisoformat(value).timestamp()
        now = self.now()
        if moment > now + 60:
            return "TimestampUtc is in the future"
        if moment < now - self.max_age_days * DAY:
            return f"TimestampUtc is older than {self.max_age_days} days"
        return None
