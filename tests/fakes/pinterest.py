"""Fake Pinterest API for Conversions: POST /v5/ad_accounts/{id}/events with a Bearer token.

Checks what Pinterest checks: the token and ad account, at most 1,000 events,
no unknown key anywhere (Pinterest rejects them), the required event fields,
`user_data` values as lists of SHA-256 hex, `custom_data.value` as a string,
`custom_data.contents` as a list of {id, item_price (a string), quantity (an
integer), item_name, item_category, item_brand} (the members of Pinterest's
ConversionEventsCustomDataContents, nothing else), and the event time window. The answer lists one status per event in request
order; if any failed the HTTP status is 422 and only the processed events are
kept. A body that is not `{"data": [...]}` gets 400 `{"code", "message"}`.
`?test=true` requests are answered the same way and keep nothing.
`failing` holds event ids Pinterest fails (422) although they look valid;
`poison` ids make it refuse the whole request with 400.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import SHA256_HEX, EventSink

EVENT_KEYS = frozenset({"event_name", "action_source", "event_time", "event_id",
                        "event_source_url", "opt_out", "partner_name", "user_data",
                        "custom_data", "app_id", "app_name", "app_version", "device_brand",
                        "device_carrier", "device_model", "device_type", "os_version", "wifi",
                        "language"})
USER_KEYS = frozenset({"em", "hashed_maids", "client_ip_address", "client_user_agent", "ph",
                       "ge", "db", "ln", "fn", "ct", "st", "zp", "country", "external_id",
                       "click_id", "partner_id"})
CUSTOM_KEYS = frozenset({"currency", "value", "content_ids", "content_name", "content_category",
                         "content_brand", "contents", "num_items", "order_id", "search_string",
                         "opt_out_type", "np"})
CONTENT_KEYS = frozenset({"id", "item_price", "quantity", "item_name", "item_category",
                          "item_brand"})
ACTION_SOURCES = frozenset({"app_android", "app_ios", "web", "offline"})


class FakePinterest(EventSink):
    """POST /v5/ad_accounts/{ad_account_id}/events; per-event statuses, 422 on failures."""

    MAX_EVENTS = 1000

    def __init__(self, *, token: str = "pina_pinterest-test-token-0123456789",
                 ad_account_id: str = "549755885175", max_age_days: int = 7,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.ad_account_id = ad_account_id
        self.max_age_days = max_age_days
        self.failing: set[str] = set()
        self.test_requests = 0

    @staticmethod
    def error(status: int, code: int, message: str,
              headers: dict[str, str] | None = None) -> Reply:
        return Reply(status, {"code": code, "message": message}, dict(headers or {}))

    @classmethod
    def throttled(cls, retry_after: str | None = None) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after else None
        return cls.error(429, 8, "This request exceeded a rate limit.", headers)

    def handle(self, request: FakeRequest) -> Reply:
        if request.method != "POST" or not re.fullmatch(r"/v5/ad_accounts/[^/]+/events",
                                                          request.path):
            return self.error(404, 404, "Not found")
        if request.header("authorization") != f"Bearer {self.token}":
            return self.error(401, 2, "Authentication failed.")
        if request.path != f"/v5/ad_accounts/{self.ad_account_id}/events":
            return self.error(403, 29, "You are not permitted to access that resource.")
        try:
            body = request.json()
        except ValueError:
            return self.error(400, 1, "Invalid JSON")
        if not isinstance(body, dict) or set(body) != {"data"} or not isinstance(
                body["data"], list) or not body["data"]:
            return self.error(400, 1, "Invalid request: a body {\"data\": [...]} is required")
        events = body["data"]
        if len(events) > self.MAX_EVENTS:
            return self.error(400, 1, "Invalid request: at most 1000 events")
        if any(isinstance(event, dict) and event.get("event_id") in self.poison
               for event in events):
            return self.error(400, 1, "Invalid request: the request was refused")
        statuses = []
        processed = []
        for event in events:
            problem = self.check_event(event)
            if problem:
                statuses.append({"status": "failed", "error_message": problem,
                                 "warning_message": None})
            else:
                statuses.append({"status": "processed", "error_message": None,
                                 "warning_message": None})
                processed.append(event)
        if request.param("test") == "true":
            with self.lock:
                self.test_requests += 1
        elif processed:
            self.accept(processed)
        answer = {"num_events_received": len(events), "num_events_processed": len(processed),
                  "events": statuses}
        return Reply(200 if len(processed) == len(events) else 422, answer)

    def check_event(self, event: Any) -> str | None:
        if not isinstance(event, dict):
            return "An event must be an object."
        unknown = set(event) - EVENT_KEYS
        if unknown:
            return f"Additional properties are not allowed ('{min(unknown)}' was unexpected)"
        for key in ("event_name", "action_source", "event_id"):
            if not isinstance(event.get(key), str) or not event[key]:
                return f"'{key}' is a required property"
        if event["action_source"] not in ACTION_SOURCES:
            return f"'{event['action_source']}' is not a valid action_source"
        problem = self.check_time(event.get("event_time"), self.max_age_days)
        if problem:
            return problem
        user_data = event.get("user_data")
        if not isinstance(user_data, dict) or not user_data.get("em"):
            return "'em' is a required property of user_data"
        for key, values in user_data.items():
            if key not in USER_KEYS:
                return f"Additional properties are not allowed ('{key}' was unexpected)"
            if not isinstance(values, list) or not all(
                    isinstance(value, str) and SHA256_HEX.fullmatch(value) for value in values):
                return f"user_data.{key} must be a list of SHA-256 hashes"
        custom_data = event.get("custom_data") or {}
        unknown = set(custom_data) - CUSTOM_KEYS
        if unknown:
            return f"Additional properties are not allowed ('{min(unknown)}' was unexpected)"
        if "value" in custom_data and not isinstance(custom_data["value"], str):
            return "custom_data.value must be a string"
        if "num_items" in custom_data and not isinstance(custom_data["num_items"], int):
            return "custom_data.num_items must be an integer"
        if "content_ids" in custom_data and not (
                isinstance(custom_data["content_ids"], list)
                and all(isinstance(item, str) for item in custom_data["content_ids"])):
            return "custom_data.content_ids must be a list of strings"
        if "contents" in custom_data:
            problem = self.check_contents(custom_data["contents"])
            if problem:
                return problem
        if event["event_id"] in self.failing:
            return "Event could not be processed"
        return None

    @staticmethod
    def check_contents(contents: Any) -> str | None:
        if not isinstance(contents, list):
            return "custom_data.contents must be a list"
        for item in contents:
            if not isinstance(item, dict):
                return "custom_data.contents items must be objects"
            unknown = set(item) - CONTENT_KEYS
            if unknown:
                return f"Additional properties are not allowed ('{min(unknown)}' was unexpected)"
            for key in ("id", "item_price", "item_name", "item_category", "item_brand"):
                if key in item and not isinstance(item[key], str):
                    return f"custom_data.contents.{key} must be a string"
            quantity = item.get("quantity")
            if "quantity" in item and (not isinstance(quantity, int)
                                       or isinstance(quantity, bool)):
                return "custom_data.contents.quantity must be an integer"
        return None
