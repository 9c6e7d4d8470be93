"""Google Ads offline conversions through the Data Manager API (events:ingest).

Reads `google_ads_conversions` (docs/marts.md). Contract followed, checked
against Google's published Data Manager client types (google-ads-datamanager,
`IngestEventsRequest`, `Event`, `Destination`, `UserData`, `Consent`) and its
"Understand API errors" guide:

- `POST {base_url}/{api_version}/events:ingest`, OAuth bearer token in the
  `Authorization` header (env GOOGLE_ADS_ACCESS_TOKEN); never in the body.
- Body `{"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS",
  "accountId": <customer id, 10 digits>}, "productDestinationId": <conversion
  action id>}, "loginAccount"?: ...], "events": [...], "encoding": "HEX",
  "validateOnly"?: true}`; at most 2,000 events per request [V: the
  `IngestEventsRequest.events` field documentation].
- Event: `transactionId` (the order id, Google's dedup key), `eventTimestamp`
  (RFC 3339 with the order's own offset), `eventSource` (IN_STORE | PHONE),
  `conversionValue`, `currency`, `userData.userIdentifiers` ([{emailAddress},
  {phoneNumber}], SHA-256 hex), `consent` {adUserData, adPersonalization}.
- Google's fast-fail model: one invalid event fails the whole request with
  HTTP 400 INVALID_ARGUMENT and a `google.rpc.BadRequest` naming the fields.
  Violations naming `events[...]` make the batch `reject_batch`, and the
  delivery loop splits it until the bad events are alone. The index in the
  field path is not used to reject rows directly: Google's own pages show it
  both 0- and 1-based, and a wrong guess would reject a good event for good.
  Violations naming only request-level fields (destinations, encoding) stop
  the destination: no event can fix our configuration.
- HTTP 200 carries `{"requestId": ...}`; processing diagnostics come later,
  asynchronously (`requestStatus.retrieve`), and are not read here. The
  requestId is kept with every delivered row (the ledger's `error` column of a
  delivered row) so `requestStatus.retrieve` can be asked by hand.
- `validate_only = true` (test mode) asks Google to check the request and
  ingest nothing: the rows are then recorded as failed ("validated only"), so
  they are sent for real once validate_only is off, never marked delivered.

Not confirmed: the age limit of a conversion on this path (`max_event_age_days`,
90 by default to match the mart's google_ads_window_days); the OAuth token is
taken as given, its refresh is left to whoever sets GOOGLE_ADS_ACCESS_TOKEN.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipper.config import ConfigError, DestinationSettings, setting
from shipper.destinations.base import (
    SECONDS_PER_DAY,
    Destination,
    Request,
    RowOutcome,
    Verdict,
    check_hashes,
    check_money,
    drop_none,
    json_error_field,
    money,
    register,
)

EVENT_SOURCES = frozenset({"IN_STORE", "PHONE", "WEB", "APP", "MESSAGE", "OTHER"})
CONSENT_STATUSES = frozenset({"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"})
HASH_COLUMNS = ("email_sha256", "phone_sha256")

_CUSTOMER_ID = re.compile(r"\d{10}")
_EVENT_FIELD = re.compile(r"^events\[(\d+)\]")
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"
# Canonical codes (error.status) that mean "our credentials or account setup":
# nothing an event could fix.
_FATAL_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND",
                             "FAILED_PRECONDITION"})
_RETRY_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "ABORTED", "INTERNAL",
                             "DEADLINE_EXCEEDED"})


@dataclass(frozen=True)
class GoogleAdsSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("google_ads_conversions", "The mart this destination reads.")
    base_url: str = setting("https://datamanager.googleapis.com", "Data Manager API host.")
    api_version: str = setting("v1", "Data Manager API version segment.")
    batch_size: int = setting(2000, "Events per request (Data Manager: at most 2,000).")
    customer_id: str | None = setting(
        None, "Google Ads customer id receiving the conversions (operatingAccount), "
              "10 digits; dashes are removed."
    )
    conversion_action_id: str | None = setting(
        None, "Conversion action id the events are ingested into (productDestinationId)."
    )
    login_customer_id: str | None = setting(
        None, "Manager account id the token acts through (loginAccount); empty when the "
              "token has direct access to customer_id."
    )
    validate_only: bool = setting(
        False, "Test mode: Google validates each request and ingests nothing; the rows stay "
               "pending (recorded as failed) until this is off."
    )
    max_event_age_days: int = setting(
        90, "Conversions older than this are not sent (not confirmed for Data Manager; "
            "matches the mart's google_ads_window_days)."
    )


@register
class GoogleAds(Destination):
    name = "google_ads"
    title = "Google Ads"
    settings_class = GoogleAdsSettings
    max_batch_size = 2000
    credential_env = ("GOOGLE_ADS_ACCESS_TOKEN",)
    required_settings = ("customer_id", "conversion_action_id")
    columns = (
        "delivery_key", "transaction_id", "event_timestamp", "conversion_value", "currency",
        "event_source", "email_sha256", "phone_sha256", "ad_user_data_consent",
        "ad_personalization_consent",
    )
    settings: GoogleAdsSettings

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, credentials, *args, **kwargs)
        if credentials:
            # A live send with a malformed account id would have every batch refused.
            for key in ("customer_id", "login_customer_id"):
                value = getattr(self.settings, key)
                if value and not _CUSTOMER_ID.fullmatch(account_id(value)):
                    raise ConfigError(
                        f"google_ads {key} {value!r} is not a 10-digit Google Ads customer id: "
                        f"fix GOOGLE_ADS_{key.upper()} or {key} under "
                        "[destinations.google_ads]."
                    )

    def validate(self, row: Mapping[str, Any]) -> str | None:
        if not row.get("transaction_id"):
            return "transaction_id is missing"
        reason = _check_timestamp(row.get("event_timestamp"), self.now(),
                                  self.settings.max_event_age_days)
        if reason:
            return reason
        reason = check_money(row.get("conversion_value"), row.get("currency"))
        if reason:
            return reason
        if row.get("event_source") not in EVENT_SOURCES:
            return "event_source is not a Data Manager EventSource"
        if all(row.get(key) is None for key in HASH_COLUMNS):
            return "no user data (email_sha256 and phone_sha256 are NULL)"
        reason = check_hashes(row, HASH_COLUMNS)
        if reason:
            return reason
        for key in ("ad_user_data_consent", "ad_personalization_consent"):
            value = row.get(key)
            if value is not None and value not in CONSENT_STATUSES:
                return f"{key} is not a ConsentStatus"
        return None

    def to_wire(self, row: Mapping[str, Any]) -> dict[str, Any]:
        identifiers = []
        if row.get("email_sha256") is not None:
            identifiers.append({"emailAddress": row["email_sha256"]})
        if row.get("phone_sha256") is not None:
            identifiers.append({"phoneNumber": row["phone_sha256"]})
        consent = drop_none({
            "adUserData": row.get("ad_user_data_consent"),
            "adPersonalization": row.get("ad_personalization_consent"),
        })
        return drop_none({
            "transactionId": row["transaction_id"],
            "eventTimestamp": row["event_timestamp"],
            "eventSource": row.get("event_source"),
            "conversionValue": money(row.get("conversion_value")),
            "currency": row.get("currency"),
            "userData": {"userIdentifiers": identifiers},
            "consent": consent or None,
        })

    def build_request(self, events: Sequence[Mapping[str, Any]]) -> Request:
        url = f"{self.base_url}/{self.settings.api_version}/events:ingest"
        destination: dict[str, Any] = {
            "operatingAccount": {
                "accountType": "GOOGLE_ADS",
                "accountId": account_id(self.settings.customer_id or ""),
            },
            "productDestinationId": self.settings.conversion_action_id or "",
        }
        if self.settings.login_customer_id:
            destination["loginAccount"] = {
                "accountType": "GOOGLE_ADS",
                "accountId": account_id(self.settings.login_customer_id),
            }
        body: dict[str, Any] = {
            "destinations": [destination],
            "events": list(events),
            "encoding": "HEX",
        }
        if self.settings.validate_only:
            body["validateOnly"] = True
        token = self.credentials.get("GOOGLE_ADS_ACCESS_TOKEN", "")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return Request("POST", url, headers, body)

    def parse_response(self, status: int, body: Any,
                       events: Sequence[Mapping[str, Any]]) -> Verdict:
        if 200 <= status < 300:
            if self.settings.validate_only:
                return Verdict.per_row([RowOutcome(
                    "retryable", "validated only (validate_only = true): Google ingested "
                                 "nothing; sent for real once validate_only is off")] * len(events))
            request_id = json_error_field(body, "requestId")
            note = f"Data Manager requestId {request_id}" if request_id else None
            return Verdict.per_row([RowOutcome("accepted", note)] * len(events))
        error = json_error_field(body, "error")
        if not isinstance(error, Mapping):
            if status in (401, 403):
                return Verdict.fatal(f"Google answered HTTP {status}: check "
                                     "GOOGLE_ADS_ACCESS_TOKEN")
            if status == 400 or status == 413:
                return Verdict.reject_batch(f"HTTP {status} from Google without an error body")
            return Verdict.retry(f"unexpected HTTP {status} from Google")
        canonical = str(error.get("status") or "")
        reason = _describe(error)
        if status in (401, 403) or canonical in _FATAL_STATUSES:
            return Verdict.fatal(
                f"Google refused the credentials or account: {reason}; check "
                "GOOGLE_ADS_ACCESS_TOKEN, customer_id, login_customer_id and "
                "conversion_action_id"
            )
        if canonical in _RETRY_STATUSES:
            return Verdict.retry(f"Google asked to retry: {reason}")
        if status == 400 or canonical == "INVALID_ARGUMENT":
            fields = [field for field, _ in _violations(error)]
            if fields and not any(_EVENT_FIELD.match(field) for field in fields):
                # The request itself (destinations, encoding) is wrong: every batch would be.
                return Verdict.fatal(f"Google refused the request, not an event: {reason}")
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected HTTP {status} from Google: {reason}")


def account_id(value: str) -> str:
    """A customer id as Google wants it: digits only (123-456-7890 -> 1234567890)."""
    return value.replace("-", "").strip()


def _check_timestamp(value: Any, now: float, max_age_days: int) -> str | None:
    if not value or not isinstance(value, str):
        return "event_timestamp is missing"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return "event_timestamp is not RFC 3339"
    if "T" not in value or moment.tzinfo is None:
        return "event_timestamp is not RFC 3339 with an offset"
    seconds = moment.timestamp()
    if seconds > now:
        return "event_timestamp is in the future"
    if seconds < now - max_age_days * SECONDS_PER_DAY:
        return f"event_timestamp is older than {max_age_days} days"
    return None


def _violations(error: Mapping[str, Any]) -> list[tuple[str, str]]:
    found = []
    for detail in error.get("details") or ():
        if isinstance(detail, Mapping) and detail.get("@type") == _BAD_REQUEST:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, Mapping):
                    found.append((str(violation.get("field") or ""),
                                  str(violation.get("description") or "")))
    return found


def _describe(error: Mapping[str, Any]) -> str:
    """Google's message, its canonical code, the field violations and the request id."""
    parts = [str(error.get("message") or "no message")]
    if error.get("status"):
        parts[0] += f" ({error['status']})"
    violations = _violations(error)
    if violations:
        parts.append("; ".join(f"{field}: {text}" for field, text in violations[:5]))
    for detail in error.get("details") or ():
        if (isinstance(detail, Mapping) and detail.get("@type") == _REQUEST_INFO
                and detail.get("requestId")):
            parts.append(f"requestId {detail['requestId']}")
    return " - ".join(parts)
