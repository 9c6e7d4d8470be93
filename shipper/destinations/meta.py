"""Meta Conversions API, offline (physical store and phone) events.

Reads `delivery_key`, `payload` (one event, built by the mart), `event_time` and
`max_event_age_days` of `meta_conversions` (docs/marts.md). Contract followed
(PLATFORMS.md, and Meta's pages where they differ):

- `POST {base_url}/{api_version}/{dataset_id}/events?access_token=...`; the
  token travels as the `access_token` query parameter, so it is never part of
  the body the dry run writes. `api_version` defaults to the Graph API version
  of the current official SDK (facebook-business 26.0.3: v26.0, which
  PLATFORMS.md still gives as v25.0; tests/vendors checks the two agree);
  setting it pins an older version.
- Body `{"data": [...], "test_event_code"?: ..., "partner_agent"?: ...}`, at most
  1,000 events.
- Meta rejects the whole request for one bad event (HTTP 400 with the error
  envelope); the delivery loop splits such a batch to isolate the event.
- Throttling (codes 4, 17, 32, 613, HTTP 429) and transient errors (codes 1, 2 or
  `is_transient`) are retried; token, permission and unknown-dataset errors, and
  a pinned version Meta no longer serves (code 2635), stop the destination
  (nothing is marked rejected because of our own credentials or settings).

Age: Meta's "Using the API" page (developers.facebook.com/documentation/
ads-commerce/conversions-api/using-the-api, "Upload Time versus Event
Transaction Time") allows an event_time up to 7 days before the upload, a
request holding one older event failing entirely, and physical_store events
within 62 days of the sale. The limit is therefore per event, decided in SQL:
the mart's `max_event_age_days` (62 for physical_store, 7 for phone_call and
any other), and the mart's windows (dbt vars `meta_store_window_days` 60,
`meta_phone_window_days` 5) decide which events there are. The shipper only
records an event that has grown older than its own row's limit since the
build as expired, not sent (`age_limit_column`); the `max_event_age_days`
setting (7) holds a row whose limit is NULL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    Request,
    Rows,
    Template,
    Verdict,
    envelope,
    json_error_field,
    not_the_platforms,
    register,
)
from shipper.destinations.rest import RestDestination
from shipper.jsontypes import JsonValue
from shipper.settings import DestinationSettings, setting

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80004})
TRANSIENT_CODES = frozenset({1, 2})
# 190 invalid/expired token, 102 session, 10 and 200-299 permissions.
AUTH_CODES = frozenset({10, 102, 190})
UNKNOWN_OBJECT_SUBCODE = 33
# "(#2635) You are calling a deprecated version of the Ads API": a pinned
# api_version Meta no longer serves; no event is at fault.
DEPRECATED_VERSION_CODE = 2635


@dataclass(frozen=True)
class MetaSettings(DestinationSettings):
    mart: str = setting("meta_conversions", "The mart this destination reads.")
    base_url: str = setting("https://graph.facebook.com", "Graph API host.")
    api_version: str = setting(
        "v26.0", "Graph API version: the one the official SDK (facebook-business 26.0.3) "
                 "calls; set an older one to pin it while Meta still serves it.")
    dataset_id: str | None = setting(None, "Dataset (pixel / offline event set) id.")
    partner_agent: str | None = setting(None, "Optional partner_agent sent with each request.")
    max_event_age_days: int = setting(
        7, "Meta's age limit of an event whose mart row names none (its max_event_age_days "
           "NULL): 7 days, Meta's limit for any action_source but physical_store. Each row's "
           "own max_event_age_days decides otherwise; an older event is recorded as expired, "
           "not sent (Meta refuses the whole request holding one).")


@register
class Meta(RestDestination):
    name = "meta"
    title = "Meta"
    settings_class = MetaSettings
    max_batch_size = 1000
    credential_env = ("META_ACCESS_TOKEN",)
    required_settings = ("dataset_id",)
    # Meta's limit depends on the event's action_source: the mart holds each one's.
    age_limit_column = "max_event_age_days"
    settings: MetaSettings

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        dataset = quote(self.settings.dataset_id or "unset-dataset-id", safe="")
        url = f"{self.base_url}/{self.settings.api_version}/{dataset}/events"
        template: dict[str, Template] = {"data": PAYLOADS}
        if self.settings.test_event_code:
            template["test_event_code"] = self.settings.test_event_code
        if self.settings.partner_agent:
            template["partner_agent"] = self.settings.partner_agent
        token = self.credentials.get("META_ACCESS_TOKEN", "")
        return Request("POST", url, {"Content-Type": "application/json"},
                       envelope(template, payloads), params={"access_token": token})

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        error = json_error_field(body, "error")
        if 200 <= status < 300 and not error:
            # Meta's success names how many events it took; anything else (an HTML page,
            # a cut-off body) says nothing about the events, so nothing is delivered.
            received = json_error_field(body, "events_received")
            if received == len(rows) and not isinstance(received, bool):
                return Verdict.all_accepted(len(rows))
            if isinstance(received, int) and not isinstance(received, bool):
                return Verdict.retry(f"Meta received {received} of {len(rows)} events")
            return not_the_platforms(self.title, status, body)
        if not isinstance(error, Mapping):
            if status in (401, 403):
                return Verdict.fatal(f"Meta answered HTTP {status}: check META_ACCESS_TOKEN")
            return not_the_platforms(self.title, status, body)
        code = _as_int(error.get("code"))
        subcode = _as_int(error.get("error_subcode"))
        message = str(error.get("error_user_msg") or error.get("message") or "no message")
        reason = f"{message} (code {code}, subcode {subcode})"
        if status == 429 or code in THROTTLING_CODES:
            return Verdict.retry(f"throttled by Meta: {reason}")
        if code in TRANSIENT_CODES or error.get("is_transient") is True:
            return Verdict.retry(f"transient Meta error: {reason}")
        if (status in (401, 403) or code in AUTH_CODES or (code is not None and 200 <= code < 300)
                or subcode == UNKNOWN_OBJECT_SUBCODE):
            return Verdict.fatal(
                f"Meta refused the credentials or dataset: {reason}; check META_ACCESS_TOKEN "
                "and dataset_id"
            )
        if code == DEPRECATED_VERSION_CODE:
            return Verdict.fatal(
                f"Meta no longer serves Graph API {self.settings.api_version}: {reason}; "
                "set api_version to a current one (the default follows the official SDK)"
            )
        if 400 <= status < 500:
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected HTTP {status} from Meta: {reason}")


def _as_int(value: JsonValue) -> int | None:
    if not isinstance(value, (int, float, str)):  # int() of anything else: TypeError
        return None
    try:
        return int(value)
    except ValueError:
        return None
