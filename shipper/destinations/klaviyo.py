"""Klaviyo profiles through the Bulk Import Profiles job API.

Reads `delivery_key`, `payload` (one profile, built by the mart) and
`payload_sha256` of `klaviyo_profiles` (docs/marts.md): one profile per
customer, with the email address and phone number in clear (the one mart that
carries them: Klaviyo's import needs the address itself). A profile is sent
again whenever its `payload_sha256` changes. Contract followed (PLATFORMS.md,
Klaviyo's OpenAPI description of `bulk_import_profiles`, its job and
import-errors endpoints):

- `POST {base_url}/api/profile-bulk-import-jobs` with `Authorization:
  Klaviyo-API-Key <KLAVIYO_API_KEY>`, `revision: <date>`, and the JSON:API
  media type in `Content-Type` and `Accept`. The default revision is the one
  Klaviyo's own SDK (klaviyo-api 25.0.0) sends, `2026-10-15`
  (tests/vendors/test_klaviyo_api.py keeps the two equal); the `revision`
  setting pins another.
- Body `{"data": {"type": "profile-bulk-import-job", "attributes": {"profiles":
  {"data": [<payload>, ...]}}, "relationships"?: {"lists": ...}}}`, each payload
  `{"type": "profile", "attributes": {"external_id", "email"?, "phone_number"?,
  "first_name"?, "last_name"?, "location"?: {"address1", "city", "region",
  "zip", "country"}, "properties": {...}}}`; at most 10,000 profiles and 5 MB per job: batches are
  cut on both the count and the bytes (`max_request_bytes`). Klaviyo's 100 KB
  per profile is the mart's rule (a larger profile never reaches it).
- 202 answers with the job (`data.id`, `data.attributes.status`: queued |
  processing | complete | cancelled). The job is read back with
  `GET .../profile-bulk-import-jobs/{id}`, first `poll_interval_seconds` after
  the 202, then each wait `poll_backoff` times the one before, up to
  `poll_max_interval_seconds`, for at most `poll_timeout_seconds` of waiting
  (the last wait is cut to end there); when it is complete with a `failed_count`,
  `GET .../{id}/import-errors` (cursor pages, `links.next`) names the failed
  profiles (by `source.pointer`, else by the external_id / email in
  `original_payload`, compared with the profiles the job carried). They are
  rejected with Klaviyo's title and detail, the rest accepted with the job id
  kept in the ledger.
- A job that is still running at the end of the polling budget, or was
  cancelled, leaves its profiles failed: the next run imports them again (an
  import is an upsert, so sending a profile twice is harmless). So does a job
  whose failures cannot all be tied to a profile.
- Errors `{"errors": [{"id", "code", "title", "detail", "source"}]}`; 400 on
  the job request is split by the delivery loop to isolate the profile(s);
  401/403 stop the destination; 429 (Retry-After) and 5xx are retried.
- Rate limits (each endpoint's reference page, and klaviyo-api's docstrings):
  creating a job, reading it and reading its errors are each limited to 10
  requests a second (burst) and 150 a minute (steady), per account, counted
  in fixed windows ("Rate limits, status codes, and errors"). Each endpoint
  has a `shipper.pacing.Pacer` shared by the sender threads, with a bucket for
  each limit (`burst_limit` in `burst_window_seconds`, `steady_limit` in
  `steady_window_seconds`, a token back `rate_limit_margin_seconds` after the
  window): a request takes its tokens right before it goes, waiting for them
  when the limits are reached, so a run of any size is paced, not throttled.
  The tokens are taken in the retrying session's `before_attempt` hook
  (shipper.retry), so every attempt takes one, a retry as much as the first.
  `requests_per_second` stays 0. Pacing is set up by `open_prepare` for a live
  run only: a dry run, and a request built outside a run, never wait. A 429
  (the account's quota is shared with its other clients) is waited out for
  its Retry-After (else the policy's backoff), and the `on_throttled` hook
  holds every thread off that endpoint for as long (`Pacer.hold_off`), not
  only the one that met it.

Email and phone number travel in the request body only. Klaviyo's error texts
can quote them back; every reason this module returns (stored in the ledger
and printed by `ship`) has email addresses and phone numbers masked, and the
`original_payload` of an import error is never copied anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from shipper.destinations.base import (
    PAYLOADS,
    PROFILES,
    Payload,
    PrepareContext,
    Request,
    RowOutcome,
    Rows,
    Template,
    Verdict,
    envelope,
    json_error_field,
    not_the_platforms,
    register,
)
from shipper.destinations.rest import RestDestination
from shipper.jsontypes import JsonObject, JsonValue
from shipper.pacing import EndpointPacers, Limit
from shipper.redact import get_logger
from shipper.retry import AttemptHooks
from shipper.settings import ConfigError, DestinationSettings, setting

log = get_logger(__name__)

JSON_API = "application/vnd.api+json"
# The three endpoints a job uses, each under its own rate limits.
CREATE, READ_JOB, READ_ERRORS = "create job", "read job", "read import errors"

# Anything with an @ inside is treated as an address, well-formed or not.
_EMAIL_TEXT = re.compile(r"[^\s\"'<>(),;]*[^\s\"'<>(),;:]@[^\s\"'<>(),;]+")
_PHONE_TEXT = re.compile(r"\+?\d[\d\s().-]{6,}\d")
_PROFILE_POINTER = re.compile(r"/data/attributes/profiles/data/(\d+)(?:/|$)")


@dataclass(frozen=True)
class KlaviyoSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("klaviyo_profiles", "The mart this destination reads.")
    base_url: str = setting("https://a.klaviyo.com", "Klaviyo API host.")
    revision: str = setting(
        "2026-10-15", "API revision date sent in the `revision` header (the default is "
                      "klaviyo-api 25.0.0's; set an older date to pin it)."
    )
    batch_size: int = setting(10_000, "Profiles per import job (Klaviyo: at most 10,000).")
    max_request_bytes: int = setting(
        5_000_000, "Bytes per import job request (Klaviyo: 5 MB); jobs are cut below it."
    )
    requests_per_second: float = setting(
        0.0, "Leave at 0: each endpoint is paced by the burst and steady limits below (a "
             "spacing across all of them on top would only blur that pacing)."
    )
    burst_limit: int = setting(
        10, "Requests to each job endpoint (create, read, read errors) in any "
            "burst_window_seconds (Klaviyo: 10 a second burst)."
    )
    burst_window_seconds: float = setting(1.0, "The burst window (Klaviyo: 1 second).")
    steady_limit: int = setting(
        150, "Requests to each job endpoint in any steady_window_seconds (Klaviyo: 150 a "
             "minute steady)."
    )
    steady_window_seconds: float = setting(60.0, "The steady window (Klaviyo: 1 minute).")
    rate_limit_margin_seconds: float = setting(
        0.25, "Added to both windows for the time a request takes to reach Klaviyo, whose "
              "windows are counted on its side."
    )
    poll_interval_seconds: float = setting(
        5.0, "Seconds from the job's 202 to the first read of its status."
    )
    poll_backoff: float = setting(
        2.0, "Each later wait between two reads is this many times the one before (1: a "
             "fixed interval)."
    )
    poll_max_interval_seconds: float = setting(60.0, "The longest wait between two reads.")
    poll_timeout_seconds: float = setting(
        1800.0, "Seconds of waiting for one job; a job still running then is sent again next "
                "run."
    )
    error_page_size: int = setting(
        100, "Import errors read per page (page[size]; Klaviyo's default is 20)."
    )
    list_id: str | None = setting(None, "Optional Klaviyo list the imported profiles join.")

    def __post_init__(self) -> None:
        def fix(key: str) -> str:
            return (f"set KLAVIYO_{key.upper()} or {key} under [destinations.klaviyo] in "
                    "shipper.toml")

        for key in ("burst_limit", "steady_limit"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} for klaviyo must be at least 1: {fix(key)}.")
        for key in ("burst_window_seconds", "steady_window_seconds", "poll_interval_seconds"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} for klaviyo must be above 0: {fix(key)}.")
        for key in ("rate_limit_margin_seconds", "poll_timeout_seconds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} for klaviyo must not be negative: {fix(key)}.")
        if self.poll_backoff < 1:
            raise ConfigError(f"poll_backoff for klaviyo must be at least 1: "
                              f"{fix('poll_backoff')}.")
        if self.poll_max_interval_seconds < self.poll_interval_seconds:
            raise ConfigError("poll_max_interval_seconds for klaviyo must be at least "
                              f"poll_interval_seconds: {fix('poll_max_interval_seconds')}.")

    def limits(self) -> tuple[Limit, Limit]:
        return (Limit(self.burst_limit, self.burst_window_seconds),
                Limit(self.steady_limit, self.steady_window_seconds))


@register
class Klaviyo(RestDestination):
    name = "klaviyo"
    title = "Klaviyo"
    kind = PROFILES
    settings_class = KlaviyoSettings
    max_batch_size = 10_000
    credential_env = ("KLAVIYO_API_KEY",)
    settings: KlaviyoSettings
    # Set by open_prepare for a live run: a Pacer per endpoint, shared by the threads.
    _pacers: EndpointPacers | None = None

    def request_byte_limit(self) -> int | None:
        return self.settings.max_request_bytes

    # -- pacing under Klaviyo's rate limits ----------------------------------------------------

    def open_prepare(self, context: PrepareContext) -> None:
        settings, hooks = self.settings, context.hooks
        self._pacers = None if context.dry_run else EndpointPacers(
            settings.limits(), margin=settings.rate_limit_margin_seconds, clock=hooks.clock,
            sleep=hooks.sleep)

    def close_prepare(self) -> None:
        pacers, self._pacers = self._pacers, None
        for line in pacers.summary() if pacers else ():
            log.info("%s: paced under Klaviyo's rate limits: %s", self.name, line)

    def attempt_hooks(self) -> AttemptHooks:
        """The retrying session calls `before_attempt` and `on_throttled` (shipper.retry)."""
        return self

    def before_attempt(self, request: Request) -> None:
        """Wait for the endpoint's tokens, right before each attempt goes: the first and
        every retry."""
        if self._pacers is not None:
            self._pacers.acquire(_endpoint(request))

    def on_throttled(self, request: Request, wait: float) -> None:
        """Klaviyo answered 429: no thread sends to that endpoint for `wait` seconds."""
        if self._pacers is not None:
            self._pacers.hold_off(_endpoint(request), wait)

    def _headers(self, with_body: bool) -> dict[str, str]:
        headers = {
            "Authorization": f"Klaviyo-API-Key {self.credentials.get('KLAVIYO_API_KEY', '')}",
            "revision": self.settings.revision,
            "Accept": JSON_API,
        }
        if with_body:
            headers["Content-Type"] = JSON_API
        return headers

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        job: dict[str, Template] = {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": PAYLOADS}},
        }
        if self.settings.list_id:
            job["relationships"] = {"lists": {"data": [{"type": "list",
                                                         "id": self.settings.list_id}]}}
        body = envelope({"data": job}, payloads)
        return Request("POST", f"{self.base_url}/api/profile-bulk-import-jobs",
                       self._headers(True), body)

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        if status in (200, 201, 202):
            job_id = json_error_field(body, "data", "id")
            if not job_id:
                reason = f"Klaviyo answered HTTP {status} without a job id"
                return Verdict.per_row([RowOutcome("retryable", reason)] * len(rows))
            first = self.settings.poll_interval_seconds
            return Verdict.pending(_Poll(str(job_id), waited=first, last_wait=first), wait=first)
        reason = _errors_text(body, status)
        if status in (401, 403):
            return Verdict.fatal(f"Klaviyo refused the API key: {reason}; check "
                                 "KLAVIYO_API_KEY (it needs profiles:write) and revision")
        if not isinstance(json_error_field(body, "errors"), list):
            # Klaviyo's errors come as {"errors": [...]}; anything else is not its answer.
            return not_the_platforms(self.title, status, body)
        if status == 413:
            return Verdict.too_large(reason)
        if status in (400, 409, 422):
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected answer from Klaviyo: {reason}")

    # -- the job, after the 202 -------------------------------------------------------------

    def follow_up_request(self, follow_up: object, rows: Rows) -> Request:
        poll = cast(_Poll, follow_up)  # what parse_response and parse_follow_up hand over
        if poll.errors_url is None:
            return Request("GET", f"{self.base_url}/api/profile-bulk-import-jobs/{poll.job_id}",
                           self._headers(False), None)
        return Request("GET", poll.errors_url, self._headers(False), None)

    def parse_follow_up(self, status: int, body: JsonValue, follow_up: object,
                        rows: Rows) -> Verdict:
        poll = cast(_Poll, follow_up)
        if status in (401, 403):
            return Verdict.fatal(f"Klaviyo refused the API key while reading job {poll.job_id}: "
                                 f"{_errors_text(body, status)}; check KLAVIYO_API_KEY "
                                 "(it needs profiles:read)")
        if status != 200:
            return self._all_pending(rows, f"job {poll.job_id} could not be read "
                                           f"({_errors_text(body, status)})")
        if poll.errors_url is None:
            return self._job_status(body, poll, rows)
        return self._import_errors(body, poll, rows)

    def _job_status(self, body: JsonValue, poll: _Poll, rows: Rows) -> Verdict:
        found = json_error_field(body, "data", "attributes")
        attributes = found if isinstance(found, Mapping) else {}
        state = attributes.get("status")
        if state in ("queued", "processing"):
            settings = self.settings
            if poll.waited >= settings.poll_timeout_seconds:
                return self._all_pending(rows, f"job {poll.job_id} still {state} after "
                                               f"{poll.waited:g} s")
            # Backing off: each wait longer than the last, up to the cap, the last one cut
            # to end with the budget.
            wait = min(poll.last_wait * settings.poll_backoff, settings.poll_max_interval_seconds,
                       settings.poll_timeout_seconds - poll.waited)
            return Verdict.pending(poll.next_poll(wait), wait=wait)
        if state == "complete":
            # A count, as Klaviyo documents it; given to int() unchecked.
            failed: Any = attributes.get("failed_count") or 0
            if not failed:
                return Verdict.per_row([RowOutcome("accepted", f"Klaviyo job {poll.job_id}")]
                                       * len(rows))
            first_page = (f"{self.base_url}/api/profile-bulk-import-jobs/{poll.job_id}"
                          f"/import-errors?page%5Bsize%5D={self.settings.error_page_size}")
            return Verdict.pending(poll.read_errors(first_page, int(failed)))
        return self._all_pending(rows, f"job {poll.job_id} is {state or 'in an unknown state'}")

    def _import_errors(self, body: JsonValue, poll: _Poll, rows: Rows) -> Verdict:
        found = dict(poll.found or {})
        unplaced = poll.unplaced
        sent: list[JsonValue] = []

        def profiles() -> list[JsonValue]:
            # The job's profiles as sent, parsed only when an error names none by pointer.
            if not sent and len(rows):
                sent.extend(rows.parsed())
            return sent

        # A list, as Klaviyo documents it, iterated unchecked.
        items: Any = json_error_field(body, "data") or ()
        for item in items:
            attributes = json_error_field(item, "attributes")
            if not isinstance(attributes, Mapping):
                unplaced += 1
                continue
            index = _profile_index(attributes, len(rows), profiles)
            if index is None:
                unplaced += 1
                continue
            text = _mask_contacts(" - ".join(
                str(attributes[key]) for key in ("title", "detail") if attributes.get(key)
            ) or "import error")
            if attributes.get("code"):
                text += f" (code {attributes['code']})"
            found[index] = found[index] + "; " + text if index in found else text
        next_page = json_error_field(body, "links", "next")
        if next_page:
            return Verdict.pending(poll.more_errors(self._same_origin(str(next_page)), found,
                                                    unplaced))
        outcomes = []
        missing = unplaced > 0 or len(found) < poll.failed
        for index in range(len(rows)):
            if index in found:
                outcomes.append(RowOutcome("rejected", found[index]))
            elif missing:
                outcomes.append(RowOutcome(
                    "retryable", f"Klaviyo job {poll.job_id} reported {poll.failed} failed "
                                 f"profile(s) it did not all name; sent again next run"))
            else:
                outcomes.append(RowOutcome("accepted", f"Klaviyo job {poll.job_id}"))
        return Verdict.per_row(outcomes)

    def _all_pending(self, rows: Rows, why: str) -> Verdict:
        reason = _mask_contacts(f"Klaviyo {why}; sent again next run")
        return Verdict.per_row([RowOutcome("retryable", reason)] * len(rows))

    def _same_origin(self, url: str) -> str:
        # The API key goes to the configured host only, whatever host a link names.
        base = urlsplit(self.base_url)
        link = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, link.path, link.query, ""))


@dataclass(frozen=True)
class _Poll:
    """Where a job stands: its id, the waits before its reads (in all, and the last),
    the errors read so far."""

    job_id: str
    waited: float = 0.0
    last_wait: float = 0.0
    errors_url: str | None = None
    failed: int = 0
    found: Mapping[int, str] | None = None
    unplaced: int = 0

    def __post_init__(self) -> None:
        if self.found is None:
            object.__setattr__(self, "found", {})

    def next_poll(self, wait: float) -> _Poll:
        return _Poll(self.job_id, self.waited + wait, wait)

    def read_errors(self, url: str, failed: int) -> _Poll:
        return _Poll(self.job_id, self.waited, self.last_wait, url, failed, {}, 0)

    def more_errors(self, url: str, found: Mapping[int, str], unplaced: int) -> _Poll:
        return _Poll(self.job_id, self.waited, self.last_wait, url, self.failed, found,
                     unplaced)


def _endpoint(request: Request) -> str:
    """Which of the job's three endpoints `request` goes to (each has its own limits)."""
    if request.method == "POST":
        return CREATE
    if urlsplit(request.url).path.rstrip("/").endswith("/import-errors"):
        return READ_ERRORS
    return READ_JOB


def _profile_index(attributes: JsonObject, count: int,
                   profiles: Callable[[], Sequence[JsonValue]]) -> int | None:
    """Which of the job's `count` profiles an import error is about, or None.
    `profiles()` gives the profiles as sent (parsed payloads), read only when the
    error has no usable pointer."""
    pointer = json_error_field(attributes, "source", "pointer")
    if isinstance(pointer, str):
        match = _PROFILE_POINTER.search(pointer)
        if match and int(match.group(1)) < count:
            return int(match.group(1))
    payload = attributes.get("original_payload")
    if isinstance(payload, Mapping):
        nested = payload.get("attributes")
        original: Mapping[str, JsonValue] = nested if isinstance(nested, Mapping) else payload
        for key in ("external_id", "email", "phone_number"):
            value = original.get(key)
            if not value:
                continue
            for index, profile in enumerate(profiles()):
                if json_error_field(profile, "attributes", key) == value:
                    return index
    return None


def _errors_text(body: JsonValue, status: int) -> str:
    errors = json_error_field(body, "errors")
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors[:5]:
            if not isinstance(error, Mapping):
                continue
            text = " - ".join(str(error[key]) for key in ("title", "detail") if error.get(key))
            if error.get("code"):
                text += f" (code {error['code']})"
            pointer = json_error_field(error, "source", "pointer")
            if pointer:
                text += f" at {pointer}"
            parts.append(text)
        return _mask_contacts(f"HTTP {status}: " + "; ".join(parts))
    if isinstance(body, str) and body:
        return _mask_contacts(f"HTTP {status}: {body[:200]}")
    return f"HTTP {status}"


def _mask_contacts(text: str) -> str:
    """Klaviyo quotes the offending value back; keep addresses and numbers out of logs."""
    return _PHONE_TEXT.sub("<phone>", _EMAIL_TEXT.sub("<email>", text))
