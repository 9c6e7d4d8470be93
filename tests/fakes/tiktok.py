"""Fake TikTok Events API 2.0: POST /open_api/v1.3/event/track/ with Access-Token.

Errors come back inside HTTP 200 as `{"code": != 0, "message", "request_id"}`;
one bad event refuses the whole batch. Every accepted event is kept in `accepted`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import SHA256_HEX, EventSink


class FakeTikTok(EventSink):
    """POST /open_api/v1.3/event/track/ with Access-Token; errors as code != 0 in HTTP 200."""

    MAX_EVENTS = 1000
    USER_KEYS = frozenset({"email", "phone", "external_id"})

    def __init__(self, *, token: str = "tiktok-test-token-0123456789",
                 event_source_id: str = "ESID123", max_age_days: int = 28,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.event_source_id = event_source_id
        self.max_age_days = max_age_days

    @staticmethod
    def answer(code: int, message: str) -> Reply:
        return Reply(200, {"code": code, "message": message, "request_id": uuid.uuid4().hex,
                           "data": {}})

    @classmethod
    def throttled(cls) -> Reply:
        return cls.answer(40100, "Too many requests. Please retry in some time.")

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != "/open_api/v1.3/event/track/" or request.method != "POST":
            return Reply(404, "Not Found")
        if request.header("access-token") != self.token:
            return self.answer(40105, "The access token is invalid or has been revoked.")
        try:
            body = request.json()
        except ValueError:
            return self.answer(40002, "Invalid JSON")
        if not isinstance(body, dict):
            return self.answer(40002, "The body must be an object")
        if body.get("event_source") != "offline":
            return self.answer(40002, "event_source must be offline")
        if body.get("event_source_id") != self.event_source_id:
            return self.answer(40002, "event_source_id is invalid")
        events = body.get("data")
        if not isinstance(events, list) or not events:
            return self.answer(40002, "data is required")
        if len(events) > self.MAX_EVENTS:
            return self.answer(40002, "data holds more than 1000 events")
        for index, event in enumerate(events):
            problem = self.check_event(event)
            if problem:
                return self.answer(40002, f"Invalid parameter: {problem} (data[{index}])")
        self.accept(events)
        return self.answer(0, "OK")

    def check_event(self, event: Any) -> str | None:
        if not isinstance(event, dict):
            return "an event must be an object"
        for key in ("event", "event_id"):
            if not isinstance(event.get(key), str) or not event[key]:
                return f"{key} is required"
        problem = self.check_time(event.get("event_time"), self.max_age_days)
        if problem:
            return problem
        user = event.get("user")
        if not isinstance(user, dict) or not user:
            return "user is required"
        for key, value in user.items():
            if key not in self.USER_KEYS:
                return f"unknown user field {key}"
            if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
                return f"user.{key} must be a SHA-256 hash"
        properties = event.get("properties") or {}
        if event["event"] == "CompletePayment":
            if not isinstance(properties.get("value"), (int, float)):
                return "properties.value is required for CompletePayment"
            if not re.fullmatch(r"[A-Z]{3}", str(properties.get("currency"))):
                return "properties.currency is required for CompletePayment"
        if event["event_id"] in self.poison:
            return "the event was refused"
        return None
