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
  media type in `Content-Type` and `Accept`.
- Body `{"data": {"type": "profile-bulk-import-job", "attributes": {"profiles":
  {"data": [<payload>, ...]}}, "relationships"?: {"lists": ...}}}`, each payload
  `{"type": "profile", "attributes": {"external_id", "email"?, "phone_number"?,
  "properties": {...}}}`; at most 10,000 profiles and 5 MB per job: batches are
  cut on both the count and the bytes (`max_request_bytes`). Klaviyo's 100 KB
  per profile is the mart's rule (a larger profile never reaches it).
- 202 answers with the job (`data.id`, `data.attributes.status`: queued |
  processing | complete | cancelled). The job is read back with
  `GET .../profile-bulk-import-jobs/{id}` every `poll_interval_seconds`, for
  at most `poll_timeout_seconds`; when it is complete with a `failed_count`,
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
- Rate limits 10/s burst, 150/min steady per endpoint: requests_per_second
  defaults to 2 across the job and polling requests.

Email and phone number travel in the request body only. Klaviyo's error texts
can quote them back; every reason this module returns (stored in the ledger
and printed by `ship`) has email addresses and phone numbers masked, and the
`original_payload` of an import error is never copied anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shipper.destinations.base import (
    PAYLOADS,
    PROFILES,
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
from shipper.settings import DestinationSettings, setting

JSON_API = "application/vnd.api+json"

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
    revision: str = setting("2025-10-15", "API revision date sent in the `revision` header.")
    batch_size: int = setting(10_000, "Profiles per import job (Klaviyo: at most 10,000).")
    max_request_bytes: int = setting(
        5_000_000, "Bytes per import job request (Klaviyo: 5 MB); jobs are cut below it."
    )
    requests_per_second: float = setting(
        2.0, "Rate limit across job and polling requests (Klaviyo: 150 a minute steady)."
    )
    poll_interval_seconds: float = setting(5.0, "Seconds between two reads of a job's status.")
    poll_timeout_seconds: float = setting(
        1800.0, "Polling budget per job; a job still running after it is sent again next run."
    )
    error_page_size: int = setting(
        100, "Import errors read per page (page[size]; Klaviyo's default is 20)."
    )
    list_id: str | None = setting(None, "Optional Klaviyo list the imported profiles join.")


@register
class Klaviyo(RestDestination):
    name = "klaviyo"
    title = "Klaviyo"
    kind = PROFILES
    settings_class = KlaviyoSettings
    max_batch_size = 10_000
    credential_env = ("KLAVIYO_API_KEY",)
    settings: KlaviyoSettings

    def request_byte_limit(self) -> int | None:
        return self.settings.max_request_bytes

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
        job: dict[str, Any] = {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": PAYLOADS}},
        }
        if self.settings.list_id:
            job["relationships"] = {"lists": {"data": [{"type": "list",
                                                         "id": self.settings.list_id}]}}
        return Request("POST", f"{self.base_url}/api/profile-bulk-import-jobs",
                       self._headers(True), envelope({"data": job}, payloads))

    def parse_response(self, status: int, body: Any, rows: Rows) -> Verdict:
        if status in (200, 201, 202):
            job_id = json_error_field(body, "data", "id")
            if not job_id:
                reason = f"Klaviyo answered HTTP {status} without a job id"
                return Verdict.per_row([RowOutcome("retryable", reason)] * len(rows))
            return Verdict.pending(_Poll(str(job_id)), wait=self.settings.poll_interval_seconds)
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

    def follow_up_request(self, follow_up: Any, rows: Rows) -> Request:
        poll: _Poll = follow_up
        jobs = f"{self.base_url}/api/profile-bulk-import-jobs/{poll.job_id}"
        if poll.errors_url is None:
            return Request("GET", jobs, self._headers(False), None)
        return Request("GET", poll.errors_url, self._headers(False), None)

    def parse_follow_up(self, status: int, body: Any, follow_up: Any, rows: Rows) -> Verdict:
        poll: _Poll = follow_up
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

    def _job_status(self, body: Any, poll: _Poll, rows: Rows) -> Verdict:
        attributes = json_error_field(body, "data", "attributes") or {}
        state = attributes.get("status") if isinstance(attributes, Mapping) else None
        if state in ("queued", "processing"):
            waited = (poll.polls + 1) * self.settings.poll_interval_seconds
            if waited >= self.settings.poll_timeout_seconds:
                return self._all_pending(rows, f"job {poll.job_id} still {state} after "
                                               f"{waited:g} s")
            return Verdict.pending(poll.next_poll(), wait=self.settings.poll_interval_seconds)
        if state == "complete":
            failed = attributes.get("failed_count") or 0
            if not failed:
                return Verdict.per_row([RowOutcome("accepted", f"Klaviyo job {poll.job_id}")]
                                       * len(rows))
            first_page = (f"{self.base_url}/api/profile-bulk-import-jobs/{poll.job_id}"
                          f"/import-errors?page%5Bsize%5D={self.settings.error_page_size}")
            return Verdict.pending(poll.read_errors(first_page, int(failed)))
        return self._all_pending(rows, f"job {poll.job_id} is {state or 'in an unknown state'}")

    def _import_errors(self, body: Any, poll: _Poll, rows: Rows) -> Verdict:
        found = dict(poll.found or {})
        unplaced = poll.unplaced
        sent: list[Any] = []

        def profiles() -> list[Any]:
            # The job's profiles as sent, parsed only when an error names none by pointer.
            if not sent and len(rows):
                sent.extend(rows.parsed())
            return sent

        for item in json_error_field(body, "data") or ():
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
    """Where a job stands: its id, how often it was polled, the errors read so far."""

    job_id: str
    polls: int = 0
    errors_url: str | None = None
    failed: int = 0
    found: Mapping[int, str] | None = None
    unplaced: int = 0

    def __post_init__(self) -> None:
        if self.found is None:
            object.__setattr__(self, "found", {})

    def next_poll(self) -> _Poll:
        return _Poll(self.job_id, self.polls + 1)

    def read_errors(self, url: str, failed: int) -> _Poll:
        return _Poll(self.job_id, self.polls, url, failed, {}, 0)

    def more_errors(self, url: str, found: Mapping[int, str], unplaced: int) -> _Poll:
        return _Poll(self.job_id, self.polls, url, self.failed, found, unplaced)


def _profile_index(attributes: Mapping[str, Any], count: int,
                   profiles: Callable[[], Sequence[Any]]) -> int | None:
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
        original = payload.get("attributes") if isinstance(payload.get("attributes"),
                                                            Mapping) else payload
        for key in ("external_id", "email", "phone_number"):
            value = original.get(key)
            if not value:
                continue
            for index, profile in enumerate(profiles()):
                if json_error_field(profile, "attributes", key) == value:
                    return index
    return None


def _errors_text(body: Any, status: int) -> str:
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
