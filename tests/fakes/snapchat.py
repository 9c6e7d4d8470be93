"""Fake Snap Conversions API v3: POST /v3/{pixel_id}/events[/validate]?access_token=...

Strict the way Snap documents it (developers.snap.com, Conversions API: "Using
the API", "Offline Events", "Parameters", "Verify Set Up") and the way the v3
OpenAPI description of Snap's Business SDK types it:

- the token is the `access_token` query parameter; a wrong one is answered
  401, a pixel the token does not own 403 (Snap does not document these two
  statuses: the fake's choice);
- the body is exactly `{"data": [...]}`, 1 to 2,000 events (the partners'
  limit: no Snap page we could read states one);
- an event holds only members of Snap's CapiEvent; `user_data`, `custom_data`
  and each `contents` item only theirs, each with its type (hashes a string
  or a list of strings of SHA-256 hex; `value` a number; `num_items` an
  integer; `content_ids` a list of strings; content `quantity` and
  `item_price` strings);
- event_name is one of Snap's events, action_source one of WEB, MOBILE_APP,
  OFFLINE or the Meta-compatible offline aliases; event_time is unix seconds
  within Snap's 37 days and not in the future;
- what "Verify Set Up" lists as INVALID: a missing required field, a PURCHASE
  without value or currency, unhashed PII, insufficient PII (none of em, ph,
  IP + user agent, mobile ad id).

Answers: `{"status": "VALID", "reason"}` (200) when every event is valid, and
all of them are kept; otherwise `{"status": "INVALID", "reason", "event":
<index>, "errors": {"codes", "error_msgs"}}` (400) naming the first bad event,
and nothing of the request is kept. The validate endpoint keeps nothing and
adds `event_logs`, one `{"event", "status", "errors", "warnings"}` per event
(200 when all are VALID, else 400). `failing` holds event ids Snap finds
invalid although they look valid; `poison` ids make it refuse the request
without naming an event.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import SHA256_HEX, EventSink

# Snap's standard events ("Parameters"; the names the Business SDKs send).
EVENT_NAMES = frozenset({
    "PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "ADD_TO_WISHLIST", "SIGN_UP", "SEARCH", "PURCHASE",
    "ADD_BILLING", "COMPLETE_TUTORIAL", "SUBSCRIBE", "AD_CLICK", "AD_VIEW", "START_CHECKOUT",
    "RATE", "LIST_VIEW", "LEVEL_COMPLETE", "ACHIEVEMENT_UNLOCKED", "SPENT_CREDITS", "SAVE",
    "SHARE", "INVITE", "LOGIN", "RESERVE", "START_TRIAL", "APP_OPEN", "CUSTOM_EVENT_1",
    "CUSTOM_EVENT_2", "CUSTOM_EVENT_3", "CUSTOM_EVENT_4", "CUSTOM_EVENT_5",
})
# "Offline Events": OFFLINE, or the Meta-compatible aliases for offline channels.
ACTION_SOURCES = frozenset({"WEB", "MOBILE_APP", "OFFLINE", "physical_store", "phone_call"})
# CapiEvent members a client sends (the SDK's request-side ones).
EVENT_TYPES: dict[str, tuple[type, ...]] = {
    "event_name": (str,), "event_time": (int,), "action_source": (str,), "event_id": (str,),
    "event_source_url": (str,), "opt_out": (bool,), "data_processing_options": (list,),
    "user_data": (dict,), "custom_data": (dict,), "app_data": (dict,), "integration": (str,),
}
HASHED_USER_KEYS = frozenset({"em", "ph", "fn", "ln", "ge", "ct", "st", "zp", "country"})
PLAIN_USER_KEYS = frozenset({"mobile_ad_id", "client_ip_address", "client_user_agent",
                             "sc_click_id", "sc_cookie1", "idfv"})
_STRING_LISTS = ("content_ids", "suggested_destinations", "preferred_neighborhoods",
                 "preferred_star_ratings", "suggested_hotels")
_INTEGERS = ("num_items", "num_adults", "num_children", "num_infants")
_STRINGS = ("currency", "content_category", "content_type", "delivery_category", "order_id",
            "search_string", "status", "checkin_date", "travel_end", "travel_start",
            "destination_airport", "country", "city", "region", "neighborhood",
            "departing_departure_date", "departing_arrival_date", "origin_airport",
            "returning_departure_date", "returning_arrival_date", "hotel_score", "postal_code",
            "brands", "sign_up_method")
CUSTOM_KEYS = frozenset({"value", "contents", "custom_fields", *_STRING_LISTS, *_INTEGERS,
                         *_STRINGS})
CONTENT_KEYS = frozenset({"id", "quantity", "item_price", "delivery_category", "brand"})
_CURRENCY = re.compile(r"[A-Z]{3}")


class Invalid(Exception):
    """One event Snap would answer INVALID for: a code and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeSnapchat(EventSink):
    """POST /v3/{pixel_id}/events and /v3/{pixel_id}/events/validate."""

    MAX_EVENTS = 2000

    def __init__(self, *, token: str = "snap-capi-test-token-0123456789",
                 pixel_id: str = "1ec32188-754e-4be2-8e55-c949a984a39f", max_age_days: int = 37,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.pixel_id = pixel_id
        self.max_age_days = max_age_days
        self.failing: set[str] = set()
        self.validate_requests = 0

    @staticmethod
    def invalid(status: int, reason: str, headers: dict[str, str] | None = None,
                **members: Any) -> Reply:
        return Reply(status, {"status": "INVALID", "reason": reason, **members},
                     dict(headers or {}))

    @classmethod
    def throttled(cls, retry_after: str | None = None) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after else None
        return cls.invalid(429, "Too many requests", headers)

    def handle(self, request: FakeRequest) -> Reply:
        match = re.fullmatch(r"/v3/([^/]+)/events(/validate)?", request.path)
        if request.method != "POST" or match is None:
            return self.invalid(404, "Not found")
        if request.param("access_token") != self.token:
            return self.invalid(401, "Unauthorized: the access token is not valid")
        if match.group(1) != self.pixel_id:
            return self.invalid(403, "The access token is not authorized for this pixel")
        validating = match.group(2) is not None
        if not (request.header("content-type") or "").startswith("application/json"):
            return self.invalid(400, "Content-Type must be application/json")
        try:
            body = request.json()
        except ValueError:
            return self.invalid(400, "The request body is not JSON")
        if not isinstance(body, dict) or set(body) != {"data"} or not isinstance(
                body["data"], list) or not body["data"]:
            return self.invalid(400, 'A body {"data": [...]} with at least one event is required')
        events = body["data"]
        if len(events) > self.MAX_EVENTS:
            return self.invalid(400, f"At most {self.MAX_EVENTS} events per request")
        if any(isinstance(event, dict) and event.get("event_id") in self.poison
               for event in events):
            return self.invalid(400, "The request was refused")
        problems: list[Invalid | None] = []
        for event in events:
            try:
                self.check_event(event)
            except Invalid as problem:
                problems.append(problem)
            else:
                problems.append(None)
        if validating:
            with self.lock:
                self.validate_requests += 1
            return self._validate_answer(problems)
        bad = next((index for index, problem in enumerate(problems) if problem), None)
        if bad is None:
            self.accept(events)
            return Reply(200, {"status": "VALID",
                               "reason": "Events have been processed successfully."})
        problem = problems[bad]
        assert problem is not None
        return self.invalid(400, problem.message, event=bad,
                            errors={"codes": [problem.code], "error_msgs": [problem.message]})

    @staticmethod
    def _validate_answer(problems: list[Invalid | None]) -> Reply:
        logs = []
        for index, problem in enumerate(problems):
            if problem is None:
                logs.append({"event": index, "status": "VALID", "warnings": []})
            else:
                logs.append({"event": index, "status": "INVALID", "warnings": [],
                             "errors": {"codes": [problem.code],
                                        "error_msgs": [problem.message]}})
        valid = all(problem is None for problem in problems)
        reason = "All events are valid." if valid else "Some events are not valid."
        return Reply(200 if valid else 400, {"status": "VALID" if valid else "INVALID",
                                             "test_event": True, "reason": reason,
                                             "event_logs": logs})

    def check_event(self, event: Any) -> None:
        if not isinstance(event, dict):
            raise Invalid("INVALID_EVENT", "An event must be an object")
        for key, value in event.items():
            kinds = EVENT_TYPES.get(key)
            if kinds is None:
                raise Invalid("UNKNOWN_PARAMETER", f"Unknown parameter '{key}'")
            if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
                raise Invalid("INVALID_PARAMETER", f"'{key}' has the wrong type")
        for key in ("event_name", "event_time", "action_source"):
            if key not in event or event[key] in ("", None):
                raise Invalid("MISSING_REQUIRED_FIELD", f"Missing required field '{key}'")
        if event["event_name"].upper() not in EVENT_NAMES:
            raise Invalid("INVALID_EVENT_NAME", f"'{event['event_name']}' is not an event name")
        if event["action_source"] not in ACTION_SOURCES:
            raise Invalid("INVALID_ACTION_SOURCE",
                          f"'{event['action_source']}' is not an action_source")
        problem = self.check_time(event["event_time"], self.max_age_days)
        if problem:
            raise Invalid("TIMESTAMP_OUT_OF_RANGE", f"Timestamp invalid or out of range: {problem}")
        self.check_user_data(event.get("user_data"))
        self.check_custom_data(event.get("custom_data") or {},
                               purchase=event["event_name"].upper() == "PURCHASE")
        if event.get("event_id") in self.failing:
            raise Invalid("EVENT_REJECTED", "Event could not be processed")

    @staticmethod
    def check_user_data(user_data: Any) -> None:
        if not isinstance(user_data, dict):
            raise Invalid("INSUFFICIENT_PII", "Insufficient PII: user_data is required")
        for key, value in user_data.items():
            if key in HASHED_USER_KEYS:
                values = value if isinstance(value, list) else [value]
                if not values or not all(isinstance(item, str) and SHA256_HEX.fullmatch(item)
                                         for item in values):
                    raise Invalid("UNHASHED_PII", f"Unhashed PII in user_data.{key}")
            elif key in PLAIN_USER_KEYS:
                if not isinstance(value, str):
                    raise Invalid("INVALID_PARAMETER", f"user_data.{key} must be a string")
            else:
                raise Invalid("UNKNOWN_PARAMETER", f"Unknown parameter 'user_data.{key}'")
        if not (user_data.get("em") or user_data.get("ph") or user_data.get("mobile_ad_id")
                or (user_data.get("client_ip_address") and user_data.get("client_user_agent"))):
            raise Invalid("INSUFFICIENT_PII", "Insufficient PII: em, ph, IP and user agent, "
                                              "or a mobile ad id is required")

    @staticmethod
    def check_custom_data(custom_data: dict[str, Any], *, purchase: bool) -> None:
        for key, value in custom_data.items():
            if key not in CUSTOM_KEYS:
                raise Invalid("UNKNOWN_PARAMETER", f"Unknown parameter 'custom_data.{key}'")
            if key == "value":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif key in _INTEGERS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif key in _STRINGS:
                ok = isinstance(value, str)
            elif key in _STRING_LISTS:
                ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
            elif key == "custom_fields":
                ok = isinstance(value, dict) and all(isinstance(item, str)
                                                     for item in value.values())
            else:  # contents
                ok = isinstance(value, list) and all(
                    isinstance(item, dict) and set(item) <= CONTENT_KEYS
                    and all(isinstance(member, str) for member in item.values())
                    for item in value)
            if not ok:
                raise Invalid("INVALID_PARAMETER", f"custom_data.{key} has the wrong type")
        if purchase and ("value" not in custom_data or "currency" not in custom_data):
            raise Invalid("MISSING_PRICE_OR_CURRENCY",
                          "Missing price and/or currency in Purchase events")
        if "currency" in custom_data and not _CURRENCY.fullmatch(custom_data["currency"]):
            raise Invalid("INVALID_CURRENCY", "currency must be an ISO 4217 code")
