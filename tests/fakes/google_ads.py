"""Fake Google Data Manager API: POST /v1/events:ingest with an OAuth bearer token.

Strict the way Google is (fast-fail): the bearer token, the destination
(GOOGLE_ADS operating account with a 10-digit id, the conversion action), at
most 2,000 events, `encoding: HEX`, and per event a transactionId, an RFC 3339
eventTimestamp with an offset inside the window, an EventSource, value and
currency, 1 to 10 user identifiers holding 64-hex SHA-256 digests, and
ConsentStatus values. Any bad event fails the whole request with HTTP 400
INVALID_ARGUMENT and a google.rpc.BadRequest naming `events[i]...` (0-based),
as Google's REST errors do. `validateOnly` requests are checked, not ingested.
Every ingested event is kept in `accepted`; `request_ids` lists the answers.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.server import FakeRequest, Reply
from tests.fakes.sink import DAY, SHA256_HEX, EventSink

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"
EVENT_KEYS = frozenset({"transactionId", "eventTimestamp", "eventSource", "conversionValue",
                        "currency", "userData", "consent", "destinationReferences",
                        "lastUpdatedTimestamp", "adIdentifiers", "cartData", "customVariables"})
EVENT_SOURCES = frozenset({"WEB", "APP", "IN_STORE", "PHONE", "MESSAGE", "OTHER"})
CONSENT = frozenset({"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"})


class FakeGoogleAds(EventSink):
    """POST /v1/events:ingest, Authorization: Bearer; Google's REST error envelope."""

    MAX_EVENTS = 2000
    id_field = "transactionId"

    def __init__(self, *, token: str = "ya29.google-test-token-0123456789",
                 customer_id: str = "1234567890", conversion_action_id: str = "987654321",
                 max_age_days: int = 90, now: Callable[[], float] = time.time) -> None:
        super().__init__(now=now)
        self.token = token
        self.customer_id = customer_id
        self.conversion_action_id = conversion_action_id
        self.max_age_days = max_age_days
        self.request_ids: list[str] = []
        self.validated: list[int] = []  # event counts of validateOnly requests

    @staticmethod
    def error(status: int, canonical: str, message: str,
              violations: list[tuple[str, str]] | None = None,
              headers: dict[str, str] | None = None) -> Reply:
        details: list[dict[str, Any]] = []
        if violations:
            details.append({"@type": BAD_REQUEST, "fieldViolations": [
                {"field": field, "description": text} for field, text in violations]})
        details.append({"@type": REQUEST_INFO, "requestId": uuid.uuid4().hex})
        return Reply(status, {"error": {"code": status, "message": message,
                                        "status": canonical, "details": details}},
                     dict(headers or {}))

    @classmethod
    def exhausted(cls, retry_after: str | None = None) -> Reply:
        headers = {"Retry-After": retry_after} if retry_after else None
        return cls.error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", headers=headers)

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != "/v1/events:ingest" or request.method != "POST":
            return self.error(404, "NOT_FOUND", "Method not found.")
        if request.header("authorization") != f"Bearer {self.token}":
            return self.error(401, "UNAUTHENTICATED",
                              "Request had invalid authentication credentials.")
        try:
            body = request.json()
        except ValueError:
            return self.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not isinstance(body, dict):
            return self.error(400, "INVALID_ARGUMENT", "The body must be an object.")
        problem = self.check_request(body)
        if problem:
            return self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                              [problem])
        events = body["events"]
        violations = []
        for index, event in enumerate(events):
            found = self.check_event(event)
            if found:
                violations.append((f"events[{index}].{found[0]}", found[1]))
        if violations:
            return self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                              violations)
        if body.get("validateOnly"):
            with self.lock:
                self.validated.append(len(events))
            return Reply(200, {})
        self.accept(events)
        request_id = uuid.uuid4().hex
        with self.lock:
            self.request_ids.append(request_id)
        return Reply(200, {"requestId": request_id})

    def check_request(self, body: dict[str, Any]) -> tuple[str, str] | None:
        unknown = set(body) - {"destinations", "events", "consent", "validateOnly", "encoding",
                               "encryptionInfo"}
        if unknown:
            return min(unknown), "Unknown field."
        destinations = body.get("destinations")
        if not isinstance(destinations, list) or len(destinations) != 1:
            return "destinations", "Exactly one destination is expected here."
        destination = destinations[0]
        account = destination.get("operatingAccount") or {}
        if account.get("accountType") != "GOOGLE_ADS":
            return "destinations[0].operatingAccount.accountType", "Must be GOOGLE_ADS."
        if not re.fullmatch(r"\d{10}", str(account.get("accountId"))):
            return "destinations[0].operatingAccount.accountId", "Must be 10 digits."
        if account.get("accountId") != self.customer_id:
            return ("destinations[0].operatingAccount.accountId",
                    "The caller does not have permission on this account.")
        if destination.get("productDestinationId") != self.conversion_action_id:
            return "destinations[0].productDestinationId", "Conversion action not found."
        login = destination.get("loginAccount")
        if login is not None and not re.fullmatch(r"\d{10}", str(login.get("accountId"))):
            return "destinations[0].loginAccount.accountId", "Must be 10 digits."
        if body.get("encoding") != "HEX":
            return "encoding", "Required for UserData uploads."
        events = body.get("events")
        if not isinstance(events, list) or not events:
            return "events", "Required."
        if len(events) > self.MAX_EVENTS:
            return "events", "At most 2000 events can be sent in a single request."
        return None

    def check_event(self, event: Any) -> tuple[str, str] | None:
        if not isinstance(event, dict):
            return "", "An event must be an object."
        unknown = set(event) - EVENT_KEYS
        if unknown:
            return min(unknown), "Unknown field."
        if not isinstance(event.get("transactionId"), str) or not event["transactionId"]:
            return "transactionId", "Required."
        stamp = event.get("eventTimestamp")
        try:
            moment = dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None or "T" not in stamp:
            return "eventTimestamp", "Invalid RFC 3339 timestamp."
        if moment.timestamp() > self.now() + 60:
            return "eventTimestamp", "The event is in the future."
        if moment.timestamp() < self.now() - self.max_age_days * DAY:
            return "eventTimestamp", "The event is too old."
        if event.get("eventSource") not in EVENT_SOURCES:
            return "eventSource", "Invalid EventSource."
        if not isinstance(event.get("conversionValue"), (int, float)):
            return "conversionValue", "Required for this conversion action."
        if not re.fullmatch(r"[A-Z]{3}", str(event.get("currency"))):
            return "currency", "Invalid currency code."
        identifiers = (event.get("userData") or {}).get("userIdentifiers")
        if not isinstance(identifiers, list) or not 1 <= len(identifiers) <= 10:
            return "userData.userIdentifiers", "Between 1 and 10 identifiers are required."
        for position, identifier in enumerate(identifiers):
            if not isinstance(identifier, dict) or len(identifier) != 1:
                return f"userData.userIdentifiers[{position}]", "Exactly one identifier."
            ((kind, value),) = identifier.items()
            if kind not in ("emailAddress", "phoneNumber"):
                return f"userData.userIdentifiers[{position}].{kind}", "Not accepted here."
            if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
                return (f"userData.userIdentifiers[{position}].{kind}",
                        "Not a hex-encoded SHA-256 hash.")
        for key, value in (event.get("consent") or {}).items():
            if key not in ("adUserData", "adPersonalization") or value not in CONSENT:
                return f"consent.{key}", "Invalid ConsentStatus."
        if event["transactionId"] in self.poison:
            return "transactionId", "The conversion was refused."
        return None
