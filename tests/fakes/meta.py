"""Fake Meta Conversions API: POST /{version}/{dataset_id}/events?access_token=...

Strict the way Meta is: token, batch limit (1,000), required fields, hash
format, the event_time window; one bad event refuses the whole request with
Meta's error envelope `{"error": {message, type, code, error_subcode, fbtrace_id}}`.
Every accepted event is kept in `accepted`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import SHA256_HEX, EventSink


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
                 api_version: str = "v25.0", max_age_days: int = 7,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.dataset_id = dataset_id
        self.api_version = api_version
        self.max_age_days = max_age_days
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
        if request.path != f"/{self.api_version}/{self.dataset_id}/events":
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
        if event["action_source"] != "physical_store":
            return "action_source must be physical_store for offline events"
        problem = self.check_time(event.get("event_time"), self.max_age_days)
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
        if event["event_name"] == "Purchase":
            if not isinstance(custom_data.get("value"), (int, float)):
                return "custom_data.value is required for Purchase"
            if not re.fullmatch(r"[A-Z]{3}", str(custom_data.get("currency"))):
                return "custom_data.currency is required for Purchase"
        if event["event_id"] in self.poison:
            return "the event was refused"
        return None
