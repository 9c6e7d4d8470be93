"""Fake Meta Conversions API: POST /{version}/{dataset_id}/events?access_token=...

Strict the way Meta is: token, batch limit (1,000), required fields, hash
format, the event_time window; one bad event refuses the whole request with
Meta's error envelope `{"error": {message, type, code, error_subcode, fbtrace_id}}`.
Every accepted event is kept in `accepted`.

The event_time window depends on the event's action_source, as Meta's "Using
the API" page says ("Upload Time versus Event Transaction Time"): at most 7
days old (`max_age_days`), or 62 for physical_store events
(`physical_store_max_age_days`); one event past its limit refuses the request.

Members and values follow the official SDK (facebook-business 26.0.3,
facebook_business/adobjects/serverside): action_source is one of its
ActionSource values (physical_store and phone_call among them), currency is
three letters in either case (the SDK itself sends it lower-case), and a
content item holds only the members of its Content (id, quantity,
item_price, title, description, brand, category, delivery_category) with
their types. Meta does not document refusing an unknown content member; the
fake refuses one so a misspelt member cannot pass unnoticed.

The fake serves the Graph API versions in SERVED_VERSIONS (Meta serves each
version for about two years): the official SDK's, which is the shipper's
default, and the one before it, which a config may still pin. Any other
vNN.N answers Meta's "(#2635) You are calling a deprecated version".
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import SHA256_HEX, EventSink

SERVED_VERSIONS = ("v26.0", "v25.0")
# facebook_business.adobjects.serverside.action_source.ActionSource values.
ACTION_SOURCES = frozenset({"email", "website", "app", "phone_call", "chat", "physical_store",
                            "system_generated", "business_messaging", "other"})
# facebook_business.adobjects.serverside.content.Content.normalize() members and their types.
CONTENT_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "quantity": (int,), "item_price": (int, float), "title": (str,),
    "description": (str,), "brand": (str,), "category": (str,), "delivery_category": (str,),
}
_VERSION_PATH = re.compile(r"/(v[0-9]+\.[0-9]+)/([^/]+)/events")


class FakeMeta(EventSink):
    """POST /{version}/{dataset_id}/events?access_token=..., Meta's error envelope."""

    MAX_EVENTS = 1000
    BODY_KEYS = frozenset({"data", "test_event_code", "partner_agent"})
    EVENT_KEYS = frozenset({"event_name", "event_time", "event_id", "action_source",
                            "user_data", "custom_data", "event_source_url", "opt_out",
                            "data_processing_options"})
    USER_KEYS = frozenset({"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country",
                           "external_id"})

    def __init__(self, *, token: str = "meta-test-token-0123456789", dataset_id: str = "4242",
                 api_version: str | None = None, max_age_days: int = 7,
                 physical_store_max_age_days: int = 62,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.dataset_id = dataset_id
        # One version when a test names it, else every version the fake serves.
        self.api_versions = (api_version,) if api_version else SERVED_VERSIONS
        self.max_age_days = max_age_days
        self.physical_store_max_age_days = physical_store_max_age_days
        self.test_event_codes: list[str | None] = []

    @staticmethod
    def error(status: int, code: int, message: str, subcode: int | None = None,
              error_type: str = "OAuthException", headers: Mapping[str, str] | None = None,
              ) -> Reply:
        error = {"message": message, "type": error_type, "code": code,
                 "fbtrace_id": uuid.uuid4().hex[:12]}
        if subcode is not None:
            error["error_subcode"] = subcode
        return Reply(status, {"error": error}, dict(headers or {}))

    @classmethod
    def throttled(cls, code: int = 17) -> Reply:
        return cls.error(400, code, "User request limit reached")

    def handle(self, request: FakeRequest) -> Reply:
        path = _VERSION_PATH.fullmatch(request.path)
        if path is not None and path.group(1) not in self.api_versions:
            return self.error(400, 2635, "(#2635) You are calling a deprecated version of the "
                              f"Ads API. Please update to the latest version: {self.api_versions[0]}.")
        if path is None or path.group(2) != self.dataset_id:
            return self.error(400, 100, "Unsupported post request. Object does not exist", 33,
                              "GraphMethodException")
        if request.method != "POST":
            return self.error(400, 100, "Unsupported method")
        if request.param("access_token") != self.token:
            return self.error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if "json" not in (request.header("content-type") or ""):
            return self.error(400, 100, "Expected a JSON body")
        try:
            body = request.json()
        except ValueError:
            return self.error(400, 100, "Invalid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return self.error(400, 100, "The parameter data is required")
        if set(body) - self.BODY_KEYS:
            return self.error(400, 100, f"Unknown parameter {sorted(set(body) - self.BODY_KEYS)}")
        events = body["data"]
        if not events:
            return self.error(400, 100, "The parameter data is empty")
        if len(events) > self.MAX_EVENTS:
            return self.error(400, 100, "Too many events: at most 1000 per request", 2804009)
        for index, event in enumerate(events):
            problem = self.check_event(event)
            if problem:
                return self.error(400, 100, f"Invalid parameter: {problem} (event {index})",
                                  2804003)
        with self.lock:
            self.test_event_codes.append(body.get("test_event_code"))
        self.accept(events)
        return Reply(200, {"events_received": len(events), "messages": [],
                           "fbtrace_id": uuid.uuid4().hex[:12]})

    def check_event(self, event: Any) -> str | None:
        if not isinstance(event, dict):
            return "an event must be an object"
        unknown = set(event) - self.EVENT_KEYS
        if unknown:
            return f"unknown event field {min(unknown)}"
        for key in ("event_name", "event_id", "action_source"):
            if not isinstance(event.get(key), str) or not event[key]:
                return f"{key} is required"
        if event["action_source"] not in ACTION_SOURCES:
            return f"action_source {event['action_source']!r} is not one of Meta's"
        problem = self.check_time(event.get("event_time"), self.max_age_of(event["action_source"]))
        if problem:
            return problem
        user_data = event.get("user_data")
        if not isinstance(user_data, dict) or not user_data:
            return "user_data is required"
        for key, values in user_data.items():
            if key not in self.USER_KEYS:
                return f"unknown user_data field {key}"
            if not isinstance(values, list) or not values:
                return f"user_data.{key} must be a list"
            if not all(isinstance(value, str) and SHA256_HEX.fullmatch(value)
                       for value in values):
                return f"user_data.{key} must hold SHA-256 hashes"
        custom_data = event.get("custom_data") or {}
        if not isinstance(custom_data, dict):
            return "custom_data must be an object"
        if event["event_name"] == "Purchase":
            if not isinstance(custom_data.get("value"), (int, float)):
                return "custom_data.value is required for Purchase"
            if not re.fullmatch(r"[A-Za-z]{3}", str(custom_data.get("currency"))):
                return "custom_data.currency is required for Purchase"
        problem = self.check_contents(custom_data.get("contents"))
        if problem:
            return problem
        if event["event_id"] in self.poison:
            return "the event was refused"
        return None

    def max_age_of(self, action_source: str) -> int:
        """Meta's age limit of an event, in days, by its action_source."""
        if action_source == "physical_store":
            return self.physical_store_max_age_days
        return self.max_age_days

    @staticmethod
    def check_contents(contents: Any) -> str | None:
        if contents is None:
            return None
        if not isinstance(contents, list):
            return "custom_data.contents must be a list"
        for item in contents:
            if not isinstance(item, dict):
                return "custom_data.contents must hold objects"
            if "id" not in item:
                return "custom_data.contents[].id is required"
            for key, value in item.items():
                if key not in CONTENT_TYPES:
                    return f"unknown custom_data.contents[] field {key}"
                if isinstance(value, bool) or not isinstance(value, CONTENT_TYPES[key]):
                    return f"custom_data.contents[].{key} has the wrong type"
        return None
