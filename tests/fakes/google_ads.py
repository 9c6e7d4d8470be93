"""Fake Google Data Manager API: POST /v1/events:ingest with an OAuth bearer token.

Strict the way Google is (fast-fail): the bearer token, the destination
(GOOGLE_ADS operating account with a 10-digit id, the conversion action), at
most 2,000 events, `encoding: HEX`, and per event a transactionId, an RFC 3339
eventTimestamp with an offset inside the window, an EventSource, value and
currency, 1 to 10 user identifiers (an emailAddress or phoneNumber holding a
64-hex SHA-256 digest, or an address: AddressInfo with the required hashed
givenName and familyName, a 2-letter regionCode and a postalCode in clear),
ConsentStatus values, and a cartData whose items carry a string
merchantProductId, an int64 quantity and a double unitPrice. As Google's
proto JSON parser does, an unknown member anywhere, or a value of the wrong
JSON type, is refused. Any bad event fails the whole request with HTTP 400
INVALID_ARGUMENT and a google.rpc.BadRequest naming `events[i]...` (0-based),
as Google's REST errors do. `validateOnly` requests are checked, not ingested.
Every ingested event is kept in `accepted`; `request_ids` lists the answers.

A conversion action in `store_sales_actions` is a STORE_SALES one: each of its
events needs eventSource IN_STORE and an eventLocation.storeId.

GET /v1/requestStatus:retrieve?requestId=... answers Google's
RetrieveRequestStatusResponse for a request this fake ingested: PROCESSING for
its first `processing_checks` questions, then SUCCESS, PARTIAL_SUCCESS or FAILED
with errorInfo.errorCounts (a reason and a count, never which events): an event
fails processing when its transactionId is in `async_failures` (mapped to a
ProcessingErrorReason) or its cartData.merchantId is not digits
(PROCESSING_ERROR_REASON_INVALID_MERCHANT_ID). An unknown id is 404 NOT_FOUND.

Tokens: the fixed `token`, or any token `auth` (a FakeGoogleAuth, Google's
OAuth 2.0 token endpoint on its own loopback server) issued and that has not
expired by `auth.now()`. An expired or unknown token is answered 401
UNAUTHENTICATED, as Google does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.server import FakeApp, FakeRequest, Reply
from tests.fakes.sink import DAY, SHA256_HEX, EventSink

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"
EVENT_KEYS = frozenset({"transactionId", "eventTimestamp", "eventSource", "conversionValue",
                        "currency", "userData", "consent", "destinationReferences",
                        "lastUpdatedTimestamp", "adIdentifiers", "cartData", "customVariables",
                        "conversionCount", "eventDeviceInfo", "experimentalFields",
                        "userProperties", "eventName", "clientId", "userId",
                        "additionalEventParameters", "thirdPartyUserData", "eventLocation",
                        "appInstanceId"})
# google.ads.datamanager.v1 EventLocation, as JSON names (every member a string).
LOCATION_KEYS = frozenset({"storeId", "city", "subdivisionCode", "regionCode",
                           "subcontinentCode", "continentCode"})
SCOPE = "https://www.googleapis.com/auth/datamanager"
INVALID_MERCHANT_ID = "PROCESSING_ERROR_REASON_INVALID_MERCHANT_ID"
EVENT_SOURCES = frozenset({"WEB", "APP", "IN_STORE", "PHONE", "MESSAGE", "OTHER"})
CONSENT = frozenset({"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"})
# google.ads.datamanager.v1 AddressInfo, CartData and Item, as JSON names.
ADDRESS_KEYS = frozenset({"givenName", "familyName", "regionCode", "postalCode", "addressLine",
                          "city", "administrativeArea"})
CART_KEYS = frozenset({"merchantId", "merchantFeedLabel", "merchantFeedLanguageCode",
                       "transactionDiscount", "items", "couponCodes"})
ITEM_KEYS = frozenset({"merchantProductId", "quantity", "unitPrice", "itemId",
                       "additionalItemParameters", "merchantId", "merchantFeedLabel",
                       "merchantFeedLanguageCode", "conversionValue", "customVariables"})
ITEM_STRINGS = ("merchantProductId", "itemId", "merchantId", "merchantFeedLabel",
                "merchantFeedLanguageCode")


def is_int64(value: Any) -> bool:
    """proto3 JSON int64: an integral number, or its decimal text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value) is not None


def is_double(value: Any) -> bool:
    """proto3 JSON double: a number, or its text."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeGoogleAuth(FakeApp):
    """POST /token: Google's OAuth 2.0 token endpoint, for a service account's signed JWT
    (RFC 7523 jwt-bearer grant, RS256, checked against the account's public key, its
    audience Google's token endpoint, its scope the datamanager one, its iat and exp an
    hour apart at most, by the real clock) and for a refresh token with
    its client id and secret. Tokens last `lifetime` seconds of `now`."""

    JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

    def __init__(self, *, lifetime: int = 3600, now: Callable[[], float] = time.time,
                 client_email: str | None = None, private_key_id: str | None = None,
                 public_key: rsa.RSAPublicKey | None = None,
                 client_id: str | None = None, client_secret: str | None = None,
                 refresh_token: str | None = None) -> None:
        super().__init__()
        self.lifetime = lifetime
        self.now = now
        self.client_email = client_email
        self.private_key_id = private_key_id
        self.public_key = public_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.url: str | None = None  # where it listens, for the test's environment
        self.issued: dict[str, float] = {}  # token -> when it expires, by `now`
        self.revoked: set[str] = set()
        self.grants: list[str] = []
        # (HTTP status, error, error_description) to answer every grant with, when set.
        self.refuse: tuple[int, str, str] | None = None

    def valid(self, token: str) -> bool:
        with self.lock:
            expires = self.issued.get(token)
            return expires is not None and self.now() < expires and token not in self.revoked

    def revoke_all(self) -> None:
        with self.lock:
            self.revoked.update(self.issued)

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != "/token" or request.method != "POST":
            return Reply(404, {"error": "not_found"})
        form = {key: values[0] for key, values in
                parse_qs(request.body.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        with self.lock:
            self.grants.append(grant)
        if self.refuse is not None:
            status, error, description = self.refuse
            return Reply(status, {"error": error, "error_description": description})
        if grant == self.JWT_GRANT:
            problem = self.check_assertion(form.get("assertion", ""))
        elif grant == "refresh_token":
            problem = self.check_refresh(form)
        else:
            problem = (400, "unsupported_grant_type", "Invalid grant_type: " + grant)
        if problem:
            status, error, description = problem
            return Reply(status, {"error": error, "error_description": description})
        token = f"ya29.fake-{uuid.uuid4().hex}"
        with self.lock:
            self.issued[token] = self.now() + self.lifetime
        return Reply(200, {"access_token": token, "expires_in": self.lifetime,
                           "token_type": "Bearer", "scope": SCOPE})

    def check_assertion(self, assertion: str) -> tuple[int, str, str] | None:
        """The JWT google-auth signs with the service account's key, as Google checks it
        (its clock the real one: google-auth stamps iat and exp with it)."""
        invalid = (400, "invalid_grant", "Invalid JWT Signature.")
        if self.client_email is None or self.public_key is None:
            return (400, "invalid_grant", "No service account is known here.")
        parts = assertion.split(".")
        if len(parts) != 3:
            return (400, "invalid_request", "Invalid assertion format.")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError:
            return (400, "invalid_request", "Invalid assertion format.")
        if header.get("alg") != "RS256":
            return invalid
        if self.private_key_id and header.get("kid") != self.private_key_id:
            return invalid
        try:
            self.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return invalid
        real_now = time.time()
        if claims.get("iss") != self.client_email:
            return (400, "invalid_grant", "Invalid JWT: iss is not the service account.")
        # google-auth addresses the JWT to Google's endpoint whatever token_uri it posts to.
        if claims.get("aud") != "https://oauth2.googleapis.com/token":
            return (400, "invalid_grant", "Invalid JWT: Failed audience check.")
        if SCOPE not in str(claims.get("scope", "")).split():
            return (400, "invalid_scope", "The datamanager scope was not requested.")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600:
            return (400, "invalid_grant",
                    "Invalid JWT: iat and exp must be an hour apart at most.")
        if iat > real_now + 60 or exp < real_now:
            return (400, "invalid_grant", ("Invalid JWT: Token must be a short-lived token "
                                           "(60 minutes) and in a reasonable timeframe."))
        return None

    def check_refresh(self, form: dict[str, str]) -> tuple[int, str, str] | None:
        if (form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret):
            return (401, "invalid_client", "Unauthorized")
        if self.refresh_token is None or form.get("refresh_token") != self.refresh_token:
            return (400, "invalid_grant", "Token has been expired or revoked.")
        return None


class FakeGoogleAds(EventSink):
    """POST /v1/events:ingest, Authorization: Bearer; Google's REST error envelope."""

    MAX_EVENTS = 2000
    id_field = "transactionId"

    def __init__(self, *, token: str | None = "ya29.google-test-token-0123456789",
                 customer_id: str = "1234567890", conversion_action_id: str = "987654321",
                 max_age_days: int = 90, now: Callable[[], float] = time.time,
                 auth: FakeGoogleAuth | None = None,
                 store_sales_actions: Iterable[str] = ()) -> None:
        super().__init__(now=now)
        self.token = token
        self.auth = auth
        self.customer_id = customer_id
        self.conversion_action_id = conversion_action_id
        self.store_sales_actions = frozenset(store_sales_actions)
        self.max_age_days = max_age_days
        self.request_ids: list[str] = []
        self.validated: list[int] = []  # event counts of validateOnly requests
        # What each requestId carried, for requestStatus.retrieve.
        self.ingested: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self.async_failures: dict[str, str] = {}  # transactionId -> ProcessingErrorReason
        self.processing_checks = 0  # questions answered PROCESSING before the final status
        self.status_asked: Counter[str] = Counter()
        self.refused_tokens: list[str] = []  # bearer tokens answered 401
        # Called after each ingested request (a test moves its clock forward with it).
        self.ingest_hook: Callable[[], None] | None = None
        # Answer the next ingest with a 500 quoting its bearer token (a careless backend).
        self.echo_token_once = False

    def authorized(self, request: FakeRequest) -> bool:
        header = request.header("authorization") or ""
        bearer = header[len("Bearer "):] if header.startswith("Bearer ") else None
        if bearer is not None and self.token is not None and bearer == self.token:
            return True
        if bearer is not None and self.auth is not None and self.auth.valid(bearer):
            return True
        with self.lock:
            self.refused_tokens.append(bearer or "")
        return False

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
        if request.path == "/v1/requestStatus:retrieve" and request.method == "GET":
            if not self.authorized(request):
                return self.unauthenticated()
            return self.request_status(request.param("requestId") or "")
        if request.path != "/v1/events:ingest" or request.method != "POST":
            return self.error(404, "NOT_FOUND", "Method not found.")
        if not self.authorized(request):
            return self.unauthenticated()
        if self.echo_token_once:
            self.echo_token_once = False
            bearer = (request.header("authorization") or "").removeprefix("Bearer ")
            return self.error(500, "INTERNAL", f"Internal error for credential {bearer}")
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
        store_sales = body["destinations"][0].get("productDestinationId") \
            in self.store_sales_actions
        violations = []
        for index, event in enumerate(events):
            found = self.check_event(event, store_sales)
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
            self.ingested[request_id] = (body["destinations"][0], events)
        if self.ingest_hook is not None:
            self.ingest_hook()
        return Reply(200, {"requestId": request_id})

    @classmethod
    def unauthenticated(cls) -> Reply:
        return cls.error(401, "UNAUTHENTICATED",
                         "Request had invalid authentication credentials. Expected OAuth 2 "
                         "access token, login cookie or other valid authentication "
                         "credential.")

    def processing_error(self, event: dict[str, Any]) -> str | None:
        """Why Google's asynchronous processing fails this event, if it does."""
        reason = self.async_failures.get(event.get("transactionId", ""))
        if reason:
            return reason
        merchant = (event.get("cartData") or {}).get("merchantId")
        if merchant is not None and not re.fullmatch(r"[0-9]+", str(merchant)):
            return INVALID_MERCHANT_ID
        return None

    def request_status(self, request_id: str) -> Reply:
        """RetrieveRequestStatusResponse for one ingested request."""
        with self.lock:
            known = self.ingested.get(request_id)
            self.status_asked[request_id] += 1
            asked = self.status_asked[request_id]
        if known is None:
            return self.error(404, "NOT_FOUND", f"Request {request_id!r} was not found.")
        destination, events = known
        entry: dict[str, Any] = {"destination": destination,
                                 "eventsIngestionStatus": {"recordCount": str(len(events))}}
        if asked <= self.processing_checks:
            entry["requestStatus"] = "PROCESSING"
            return Reply(200, {"requestStatusPerDestination": [entry]})
        failures = Counter(reason for event in events
                           if (reason := self.processing_error(event)) is not None)
        failed = sum(failures.values())
        if not failed:
            entry["requestStatus"] = "SUCCESS"
        else:
            entry["requestStatus"] = "FAILED" if failed == len(events) else "PARTIAL_SUCCESS"
            entry["errorInfo"] = {"errorCounts": [
                {"recordCount": str(count), "reason": reason}
                for reason, count in failures.most_common()]}
        return Reply(200, {"requestStatusPerDestination": [entry]})

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
        if destination.get("productDestinationId") not in (self.conversion_action_id,
                                                           *self.store_sales_actions):
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

    def check_event(self, event: Any, store_sales: bool = False) -> tuple[str, str] | None:
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
        if "eventLocation" in event:
            found = self.check_location(event["eventLocation"])
            if found:
                return f"eventLocation{found[0]}", found[1]
        if store_sales:
            if event.get("eventSource") != "IN_STORE":
                return "eventSource", "Store sales events must be IN_STORE."
            if not (event.get("eventLocation") or {}).get("storeId"):
                return "eventLocation.storeId", "Required for store sales."
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
            if kind == "address":
                found = self.check_address(value)
                if found:
                    return f"userData.userIdentifiers[{position}].address{found[0]}", found[1]
                continue
            if kind not in ("emailAddress", "phoneNumber"):
                return f"userData.userIdentifiers[{position}].{kind}", "Unknown field."
            if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
                return (f"userData.userIdentifiers[{position}].{kind}",
                        "Not a hex-encoded SHA-256 hash.")
        for key, value in (event.get("consent") or {}).items():
            if key not in ("adUserData", "adPersonalization") or value not in CONSENT:
                return f"consent.{key}", "Invalid ConsentStatus."
        if "cartData" in event:
            found = self.check_cart(event["cartData"])
            if found:
                return f"cartData{found[0]}", found[1]
        if event["transactionId"] in self.poison:
            return "transactionId", "The conversion was refused."
        return None

    @staticmethod
    def check_location(location: Any) -> tuple[str, str] | None:
        """EventLocation: known members, every one a string."""
        if not isinstance(location, dict):
            return "", "EventLocation must be an object."
        unknown = set(location) - LOCATION_KEYS
        if unknown:
            return f".{min(unknown)}", "Unknown field."
        for key in sorted(location):
            if not isinstance(location[key], str):
                return f".{key}", "Must be a string."
        return None

    @staticmethod
    def check_address(address: Any) -> tuple[str, str] | None:
        """AddressInfo: the four required fields, names hashed, the rest in clear."""
        if not isinstance(address, dict):
            return "", "AddressInfo must be an object."
        unknown = set(address) - ADDRESS_KEYS
        if unknown:
            return f".{min(unknown)}", "Unknown field."
        for key in sorted(address):
            if not isinstance(address[key], str):
                return f".{key}", "Must be a string."
        for key in ("givenName", "familyName"):
            if not SHA256_HEX.fullmatch(address.get(key) or ""):
                return f".{key}", "Required; a hex-encoded SHA-256 hash."
        if not re.fullmatch(r"[A-Z]{2}", address.get("regionCode") or ""):
            return ".regionCode", "Required; a 2-letter ISO 3166-1 alpha-2 code."
        if not (address.get("postalCode") or "").strip():
            return ".postalCode", "Required."
        return None

    @staticmethod
    def check_cart(cart: Any) -> tuple[str, str] | None:
        """CartData and its items, member by member, with proto3 JSON types."""
        if not isinstance(cart, dict):
            return "", "CartData must be an object."
        unknown = set(cart) - CART_KEYS
        if unknown:
            return f".{min(unknown)}", "Unknown field."
        items = cart.get("items", [])
        if not isinstance(items, list):
            return ".items", "Must be a list."
        for position, item in enumerate(items):
            where = f".items[{position}]"
            if not isinstance(item, dict):
                return where, "An item must be an object."
            unknown = set(item) - ITEM_KEYS
            if unknown:
                return f"{where}.{min(unknown)}", "Unknown field."
            for key in ITEM_STRINGS:
                if key in item and not isinstance(item[key], str):
                    return f"{where}.{key}", "Must be a string."
            if "quantity" in item and not is_int64(item["quantity"]):
                return f"{where}.quantity", "Must be an int64."
            for key in ("unitPrice", "conversionValue"):
                if key in item and not is_double(item[key]):
                    return f"{where}.{key}", "Must be a number."
        return None
