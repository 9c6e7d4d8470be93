"""Google Ads offline conversions through the Data Manager API (events:ingest).

Reads `delivery_key`, `payload` (one event, built by the mart) and `event_time`
of `google_ads_conversions` (docs/marts.md). Contract followed, checked
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
90 by default; the mart's window stays inside it); the OAuth token is
taken as given, its refresh is left to whoever sets GOOGLE_ADS_ACCESS_TOKEN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    Request,
    RestDestination,
    RowOutcome,
    Rows,
    Verdict,
    envelope,
    json_error_field,
    not_the_platforms,
    register,
)
from shipper.settings import ConfigError, DestinationSettings, setting

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
        90, "Age limit: an older conversion is recorded as expired, not sent (not confirmed "
            "for Data Manager; the mart's google_ads_window_days stays inside it)."
    )


@register
class GoogleAds(RestDestination):
    name = "google_ads"
    title = "Google Ads"
    settings_class = GoogleAdsSettings
    max_batch_size = 2000
    credential_env = ("GOOGLE_ADS_ACCESS_TOKEN",)
    required_settings = ("customer_id", "conversion_action_id")
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

    def build_request(self, payloads: Sequence[Payload]) -> Request:
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
        template: dict[str, Any] = {
            "destinations": [destination],
            "events": PAYLOADS,
            "encoding": "HEX",
        }
        if self.settings.validate_only:
            template["validateOnly"] = True
        token = self.credentials.get("GOOGLE_ADS_ACCESS_TOKEN", "")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        return Request("POST", url, headers, envelope(template, payloads))

    def parse_response(self, status: int, body: Any, rows: Rows) -> Verdict:
        if 200 <= status < 300:
            if self.settings.validate_only:
                return Verdict.per_row([RowOutcome(
                    "retryable", "validated only (validate_only = true): Google ingested "
                                 "nothing; sent for real once validate_only is off")] * len(rows))
            # Data Manager's success names the request it will process; without it
            # nothing says Google took the events.
            request_id = json_error_field(body, "requestId")
            if not isinstance(request_id, str) or not request_id:
                return not_the_platforms(self.title, status, body)
            note = f"Data Manager requestId {request_id}"
            return Verdict.per_row([RowOutcome("accepted", note)] * len(rows))
        error = json_error_field(body, "error")
        if not isinstance(error, Mapping):
            if status in (401, 403):
                return Verdict.fatal(f"Google answered HTTP {status}: check "
                                     "GOOGLE_ADS_ACCESS_TOKEN")
            return not_the_platforms(self.title, status, body)
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
