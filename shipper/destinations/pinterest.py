"""Pinterest API for Conversions, offline events.

Destination `pinterest` (the API path; the CSV upload of the same mart is the
separate destination `pinterest_file`: ship one of the two, not both, or
Pinterest counts each sale twice). Reads `pinterest_conversions`
(docs/marts.md): `delivery_key`, `payload` (one event, built by the mart) and
`event_time`. Contract followed (PLATFORMS.md, Pinterest's v5 OpenAPI
description as published in its generated clients):

- `POST {base_url}/{api_version}/ad_accounts/{ad_account_id}/events`, header
  `Authorization: Bearer <PINTEREST_ACCESS_TOKEN>`; `?test=true` when
  `test_mode` is on (Pinterest validates and records nothing).
- Body `{"data": [...]}`, at most 1,000 events; unknown keys are rejected, so
  only documented keys are sent and NULL values are left out.
- Event: `event_name`, `action_source`, `event_time` (unix seconds),
  `event_id`, `user_data` (em, ph, fn, ln, db, ge, ct, st, zp, country,
  external_id: lists of SHA-256 hex; db as YYYYMMDD, ge f or m, st a
  two-letter code and zp digits only, else left out), `custom_data`
  {currency, value (a string), order_id, num_items, content_ids, contents
  [{id, item_price (a string), quantity}]}.
- Response: `{"num_events_received", "num_events_processed", "events":
  [{"status": "processed" | "failed", "error_message", "warning_message"}]}`,
  one entry per event in request order. HTTP 200 means all processed, HTTP
  422 means some failed: the failed ones are rejected with Pinterest's
  message, the rest accepted. HTTP 400 (the request as a whole is invalid) is
  split to find the bad event(s); 401/403 stop the destination.
- Rate limit 5,000 calls per minute per ad account: `requests_per_second`
  defaults to 80 (4,800 a minute).
- Age limit: partners send only the last 7 days over the API [P], so an event
  older than `max_event_age_days` (7) is recorded as expired, not sent; the
  mart's window (`pinterest_window_days`) stays inside it. Not confirmed by a
  Pinterest page: make it larger if Pinterest confirms a longer window.

In test mode the rows Pinterest did not fail are recorded as failed
("test mode"): nothing was recorded by Pinterest, so they must go out for
real once test_mode is off.

Pinterest says offline events cannot be deduplicated: a request that timed
out after Pinterest processed it is sent again by the retry and counted twice.
`timeout_seconds` is kept generous (60 s) for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    Request,
    RowOutcome,
    Rows,
    Verdict,
    envelope,
    json_error_field,
    not_the_platforms,
    register,
)
from shipper.destinations.rest import RestDestination
from shipper.jsontypes import JsonValue
from shipper.settings import DestinationSettings, setting


@dataclass(frozen=True)
class PinterestSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("pinterest_conversions", "The mart this destination reads.")
    base_url: str = setting("https://api.pinterest.com", "Pinterest API host.")
    api_version: str = setting("v5", "Pinterest API version segment.")
    ad_account_id: str | None = setting(None, "Ad account the conversions belong to.")
    requests_per_second: float = setting(
        80.0, "Rate limit; Pinterest allows 5,000 calls a minute per ad account."
    )
    test_mode: bool = setting(
        False, "Send with ?test=true: Pinterest validates and records nothing; the rows stay "
               "pending (recorded as failed) until this is off."
    )
    max_event_age_days: int = setting(
        7, "Rolling window for the API path (partners send the last 7 days; not confirmed)."
    )


@register
class Pinterest(RestDestination):
    name = "pinterest"
    title = "Pinterest"
    settings_class = PinterestSettings
    max_batch_size = 1000
    credential_env = ("PINTEREST_ACCESS_TOKEN",)
    required_settings = ("ad_account_id",)
    settings: PinterestSettings

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        account = quote(self.settings.ad_account_id or "unset-ad-account-id", safe="")
        url = f"{self.base_url}/{self.settings.api_version}/ad_accounts/{account}/events"
        token = self.credentials.get("PINTEREST_ACCESS_TOKEN", "")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        params = {"test": "true"} if self.settings.test_mode else {}
        return Request("POST", url, headers, envelope({"data": PAYLOADS}, payloads),
                       params=params)

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        statuses = json_error_field(body, "events")
        if status in (200, 422) and isinstance(statuses, list):
            if len(statuses) == len(rows):
                return Verdict.per_row([self._outcome(entry) for entry in statuses])
            # Which events failed cannot be told: keep them all for the next run (Pinterest
            # does not deduplicate offline events, so this may count the good ones twice).
            reason = (f"Pinterest answered HTTP 422 with {len(statuses)} statuses for "
                      f"{len(rows)} events")
            return Verdict.per_row([RowOutcome("retryable", reason)] * len(rows))
        message = json_error_field(body, "message")
        if status == 200 or not isinstance(message, str):
            # Pinterest's success lists a status per event, and its errors carry a
            # message: anything else is not Pinterest's answer.
            if status in (401, 403):
                return Verdict.fatal(f"Pinterest answered HTTP {status}: check "
                                     "PINTEREST_ACCESS_TOKEN and ad_account_id")
            return not_the_platforms(self.title, status, body)
        code = json_error_field(body, "code")
        reason = f"{message or 'no message'} (HTTP {status}, code {code})"
        if status in (401, 403):
            return Verdict.fatal(f"Pinterest refused the credentials or ad account: {reason}; "
                                 "check PINTEREST_ACCESS_TOKEN and ad_account_id")
        if status == 404:
            return Verdict.fatal(f"Pinterest does not know the ad account: {reason}; "
                                 "check ad_account_id")
        if status == 413:
            return Verdict.too_large(reason)
        if status in (400, 422):
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected answer from Pinterest: {reason}")

    def _outcome(self, entry: JsonValue) -> RowOutcome:
        if isinstance(entry, Mapping) and entry.get("status") == "failed":
            return RowOutcome("rejected", str(entry.get("error_message") or "failed"))
        if self.settings.test_mode:
            return RowOutcome("retryable", "test mode (?test=true): Pinterest recorded nothing; "
                                           "sent for real once test_mode is off")
        return RowOutcome("accepted")
