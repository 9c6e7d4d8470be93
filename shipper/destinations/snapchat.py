"""Snapchat Conversions API v3, offline events.

Destination `snapchat` (the API path; the CSV upload of the same orders is the
separate destination `snapchat_file`: ship one of the two, not both, or Snap
counts each sale twice, and `ship run` refuses to send both live). Reads
`snapchat_conversions` (docs/marts.md): `delivery_key`, `payload` (one event,
built by the mart) and `event_time`. Contract followed, from Snap's pages
(developers.snap.com/api/marketing-api/Conversions-API/...) where they differ
from PLATFORMS.md:

- "Using the API": `POST https://tr.snapchat.com/v3/{pixel_id}/events?access_token=...`;
  the token travels as the `access_token` query parameter (as Snap documents it,
  and as the `access_token` query parameter of the v3 OpenAPI description in
  Snap's Business SDK), so it is never part of the body a dry run writes. Body
  `{"data": [...]}`.
- "Offline Events": `action_source` `OFFLINE` (the mart's).
- "Conversions API" (introduction): an event may be at most 37 days old, so an
  event older than `max_event_age_days` (37) when the run reaches it is
  recorded as expired, not sent; the mart's window (`snapchat_window_days`)
  stays inside it.
- "Verify Set Up": `POST .../v3/{pixel_id}/events/validate?access_token=...` is
  Snap's Test Event Tool: it validates events and records nothing. It is this
  destination's test mode (`test_mode`, or any `test_event_code`: Snap has no
  test code of its own, so setting one also keeps events away from
  reporting). Snap answers INVALID with HTTP 400 for a missing required field,
  a Purchase without price or currency, a timestamp out of range, unhashed or
  insufficient PII.
- Answers, as Snap's v3 OpenAPI (Business SDK) describes them:
  `{"status": "VALID" | "INVALID", "reason", "event"?, "errors"?: {"codes",
  "error_msgs"}}` from /events, where `event` is the index of the event at
  fault; the validate endpoint adds `event_logs: [{"event", "status",
  "errors", "warnings"}]`, one per event.

How an answer becomes per-row outcomes:

- VALID (HTTP 2xx): every event accepted.
- `event_logs` with one entry per event (the validate endpoint; any answer
  that carries them): each INVALID entry rejects its event with Snap's
  messages, the others are accepted (or, in test mode, kept pending).
- INVALID (HTTP 400) without per-event logs: Snap refused the request. It
  names the event at fault but does not say whether the others were
  recorded, so the delivery loop splits the batch until the bad event is
  alone and rejects it with Snap's message, and the good ones land (Snap
  deduplicates on `event_id`, which every payload carries). An INVALID whose
  reason names the access token or the pixel is about our settings, not an
  event: the destination stops.
- 401 / 403 / 404: the token or the pixel is wrong: the destination stops,
  the rows wait for the next run. 413: the batch is split. 429 and 5xx are
  retried (shipper.http), honouring Retry-After.

Batch limit: 2,000 events a request is what partners use (Rudderstack's
transformer, Tealium's connector) [P]; no Snap page we could read states one.
`batch_size` defaults to 1,000 and may go up to 2,000. A request Snap finds
too large is answered 413 or INVALID, and either splits the batch.

In test mode the rows Snap found valid are recorded as failed ("test mode"):
Snap recorded nothing, so they must go out for real once test mode is off.
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

# Words in an INVALID reason that mean our credentials or pixel, not an event, are wrong.
_SETTINGS_WORDS = ("access token", "access_token", "token", "pixel", "unauthori", "permission")


@dataclass(frozen=True)
class SnapchatSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml; snapchat_file ships the same orders as a CSV)."
    )
    mart: str = setting("snapchat_conversions", "The mart this destination reads.")
    base_url: str = setting("https://tr.snapchat.com", "Snap Conversions API host.")
    api_version: str = setting("v3", "Conversions API version segment.")
    pixel_id: str | None = setting(None, "Snap Pixel id the offline events belong to.")
    batch_size: int = setting(
        1000, "Events per request; at most 2,000 (the partners' limit, not confirmed by Snap)."
    )
    test_mode: bool = setting(
        False, "Send to /events/validate (Snap's Test Event Tool): Snap validates and records "
               "nothing; the rows stay pending (recorded as failed) until this is off."
    )
    max_event_age_days: int = setting(
        37, "Snap's age limit: events at most 37 days old are eligible; an older one is "
            "recorded as expired, not sent."
    )


@register
class Snapchat(RestDestination):
    name = "snapchat"
    title = "Snapchat"
    settings_class = SnapchatSettings
    max_batch_size = 2000
    credential_env = ("SNAPCHAT_ACCESS_TOKEN",)
    required_settings = ("pixel_id",)
    settings: SnapchatSettings

    @property
    def testing(self) -> bool:
        """True when the events go to Snap's Test Event Tool, not to reporting."""
        return bool(self.settings.test_mode or self.settings.test_event_code)

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        pixel = quote(self.settings.pixel_id or "unset-pixel-id", safe="")
        url = f"{self.base_url}/{self.settings.api_version}/{pixel}/events"
        if self.testing:
            url += "/validate"
        token = self.credentials.get("SNAPCHAT_ACCESS_TOKEN", "")
        return Request("POST", url, {"Content-Type": "application/json"},
                       envelope({"data": PAYLOADS}, payloads), params={"access_token": token})

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        snap_status = json_error_field(body, "status")
        if snap_status not in ("VALID", "INVALID"):
            # Snap's answers say VALID or INVALID: anything else (a proxy's page, a
            # cut-off body) is not Snap's answer and says nothing about the events.
            if status in (401, 403):
                return Verdict.fatal(f"Snapchat answered HTTP {status}: check "
                                     "SNAPCHAT_ACCESS_TOKEN and pixel_id")
            return not_the_platforms(self.title, status, body)
        reason = _reason(body, status)
        if status in (401, 403):
            return Verdict.fatal(f"Snapchat refused the access token or pixel: {reason}; "
                                 "check SNAPCHAT_ACCESS_TOKEN and pixel_id")
        if status == 404:
            return Verdict.fatal(f"Snapchat does not know the pixel: {reason}; check pixel_id")
        logs = json_error_field(body, "event_logs")
        if (isinstance(logs, list) and logs and len(logs) == len(rows)
                and (200 <= status < 300 or status == 400)):
            return Verdict.per_row(self._outcomes(logs))
        if 200 <= status < 300 and snap_status == "VALID":
            if self.testing:
                return Verdict.per_row([self._test_mode_outcome()] * len(rows))
            return Verdict.all_accepted(len(rows))
        if status == 413:
            return Verdict.too_large(reason)
        if snap_status == "INVALID" and (status == 400 or 200 <= status < 300):
            lowered = str(json_error_field(body, "reason") or "").lower()
            if any(word in lowered for word in _SETTINGS_WORDS):
                return Verdict.fatal(f"Snapchat refused the request: {reason}; check "
                                     "SNAPCHAT_ACCESS_TOKEN and pixel_id")
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected answer from Snapchat: {reason}")

    def _outcomes(self, logs: list[JsonValue]) -> list[RowOutcome]:
        # Each entry names its event by index (`event`): when every entry names a
        # different one, that decides; otherwise the entries are taken in request order.
        indexes = [json_error_field(entry, "event") for entry in logs]
        numbers = [i for i in indexes if type(i) is int]
        if sorted(numbers) == list(range(len(logs))):  # then numbers == indexes
            logs = [entry for _, entry in sorted(zip(numbers, logs, strict=True),
                                                 key=lambda pair: pair[0])]
        outcomes = []
        for entry in logs:
            if isinstance(entry, Mapping) and entry.get("status") == "INVALID":
                outcomes.append(RowOutcome("rejected", _messages(entry) or "INVALID"))
            elif self.testing:
                outcomes.append(self._test_mode_outcome())
            else:
                outcomes.append(RowOutcome("accepted"))
        return outcomes

    @staticmethod
    def _test_mode_outcome() -> RowOutcome:
        return RowOutcome("retryable", "test mode (/events/validate): Snapchat recorded "
                                       "nothing; sent for real once test_mode is off")


def _messages(entry: JsonValue) -> str | None:
    """Snap's error messages (and codes) of an answer or of one event's log."""
    errors = json_error_field(entry, "errors")
    messages = json_error_field(errors, "error_msgs")
    codes = json_error_field(errors, "codes")
    text = "; ".join(str(message) for message in messages) if isinstance(messages, list) else ""
    if isinstance(codes, list) and codes:
        text = f"{text} (codes {', '.join(str(code) for code in codes)})".strip()
    return text or None


def _reason(body: JsonValue, status: int) -> str:
    reason = json_error_field(body, "reason")
    details = _messages(body)
    text = str(reason) if reason else "no reason"
    if details and details.startswith(text):
        text = details
    elif details and details not in text:
        text = f"{text}: {details}"
    index = json_error_field(body, "event")
    if isinstance(index, int) and not isinstance(index, bool):
        text = f"{text} (event {index} of the request)"
    return f"{text} (HTTP {status})"
