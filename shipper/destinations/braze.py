"""Braze custom attributes through the REST /users/track or /users/track/bulk endpoint.

Reads `braze_attributes` (docs/marts.md): one profile per customer, its
`payload` (the attribute object, built by the mart) and `payload_sha256`. Contract
followed (Braze's API reference: "Track users", "Track users (bulk)", "User
attributes object", "Rate limits" and "Errors & responses"; where PLATFORMS.md
differs, Braze's pages win):

- `POST {base_url}/users/track` (the default, `endpoint = "track"`) or
  `POST {base_url}/users/track/bulk` (`endpoint = "bulk"`),
  `Authorization: Bearer <BRAZE_API_KEY>`. base_url is per account: set
  `instance` (e.g. `rest.iad-01.braze.com`, env BRAZE_INSTANCE) or the whole
  `base_url` (BRAZE_BASE_URL).
- Body `{"attributes": [{"external_id": ..., <custom attribute>: value, ...}]}`.
  /users/track: at most 75 attribute objects per request (`batch_size`; accounts on
  Monthly Active Users CY 24-25 contracts: 50 objects combined, so set 50), 3,000
  requests per 3 seconds. /users/track/bulk: at most 1,000 objects and 2 MB per
  request (`bulk_batch_size`, `bulk_max_request_bytes`: batches are cut on both),
  50 requests a second for most accounts (used as `requests_per_second` unless that
  is set); the key needs the `users.track.bulk` permission, the endpoint is in
  limited beta, and Braze serves /users/track first when it is busy. So /users/track
  stays the default and the bulk endpoint is chosen, never switched to by size:
  an account without it would stop shipping the day its sync grew.
- The mart's payload writes a NULL attribute as null, which Braze reads as
  "remove this attribute", so the profile mirrors the mart; a date attribute is a
  full ISO 8601 timestamp (`2026-11-27T00:00:00Z`), which Braze stores as a time.
- Both endpoints answer alike. 2xx `{"message": "success", "attributes_processed":
  n}`; a partial failure keeps the good objects and lists `errors: [{"type",
  "input_array": "attributes", "index"}]`: those objects are rejected with Braze's
  type text, the rest accepted. An error Braze ties to no index (a "minor error"
  in Braze's words) does not stop the other objects: they are accepted and
  the message is kept with them in the ledger.
- 400 refuses the request as a whole: the delivery loop splits it to find the
  object(s); 413 (a body over the limit) splits it too. 401/403 stop the
  destination (for bulk: most likely a key without users.track.bulk). 429 and 5xx
  are retried by the session, waiting for `Retry-After` or else Braze's
  `X-RateLimit-Reset` (a unix time: Braze documents the X-RateLimit-* headers,
  not Retry-After).

A profile destination: the mart's `payload_sha256` is the fingerprint, and a
customer is sent again only when it changed. Braze bills
per data point; an object carries all of the customer's attributes, not just
the changed one (the ledger keeps fingerprints, not previous values).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from shipper.destinations.base import (
    PAYLOADS,
    PROFILES,
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
from shipper.settings import ConfigError, DestinationSettings, setting

INSTANCE_PLACEHOLDER = "{instance}"

# The endpoint setting's values and their paths.
ENDPOINTS = {"track": "/users/track", "bulk": "/users/track/bulk"}
TRACK_MAX_OBJECTS = 75
BULK_MAX_OBJECTS = 1_000
# "a payload limit of 2 MB": read as 2,000,000 bytes, the stricter reading.
BULK_MAX_REQUEST_BYTES = 2_000_000
# "a base speed limit of 50 requests per second" (most accounts).
BULK_REQUESTS_PER_SECOND = 50.0


@dataclass(frozen=True)
class BrazeSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("braze_attributes", "The mart this destination reads.")
    base_url: str = setting(
        f"https://{INSTANCE_PLACEHOLDER}",
        "Braze REST endpoint; {instance} is replaced by the instance setting."
    )
    instance: str | None = setting(
        None, "Braze REST host of the account, e.g. rest.iad-01.braze.com (BRAZE_INSTANCE)."
    )
    endpoint: str = setting(
        "track", "'track': POST /users/track, 75 objects a request, for daily runs of any "
                 "size; 'bulk': POST /users/track/bulk, 1,000 objects and 2 MB a request, "
                 "for backfills and large daily syncs (a limited-beta endpoint: the key needs "
                 "the users.track.bulk permission)."
    )
    batch_size: int = setting(
        TRACK_MAX_OBJECTS, "Attribute objects per /users/track request (Braze: at most 75; 50 "
                           "on Monthly Active Users CY 24-25 contracts)."
    )
    bulk_batch_size: int = setting(
        BULK_MAX_OBJECTS, "Attribute objects per /users/track/bulk request (Braze: at most "
                          "1,000, or the account's bulk limit if lower)."
    )
    bulk_max_request_bytes: int = setting(
        BULK_MAX_REQUEST_BYTES, "Largest /users/track/bulk request body in bytes (Braze: 2 MB); "
                                "batches are cut by objects and by bytes."
    )


@register
class Braze(RestDestination):
    name = "braze"
    title = "Braze"
    settings_class = BrazeSettings
    # /users/track's limit, what `batch_size` is checked against; the bulk endpoint's
    # batches are sized by `bulk_batch_size` (checked here, in __init__).
    max_batch_size = TRACK_MAX_OBJECTS
    credential_env = ("BRAZE_API_KEY",)
    kind = PROFILES
    settings: BrazeSettings

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(settings, credentials, now)
        self.settings = _for_endpoint(self.settings)
        if credentials and INSTANCE_PLACEHOLDER in self.settings.base_url \
                and not self.settings.instance:
            raise ConfigError(
                "braze needs its REST endpoint to send: set BRAZE_INSTANCE (or instance under "
                "[destinations.braze]) to the account's host, e.g. rest.iad-01.braze.com."
            )

    @property
    def bulk(self) -> bool:
        return self.settings.endpoint == "bulk"

    @property
    def path(self) -> str:
        return ENDPOINTS[self.settings.endpoint]

    @property
    def base_url(self) -> str:
        instance = (self.settings.instance or "unset-instance").strip()
        instance = instance.removeprefix("https://").removeprefix("http://").rstrip("/")
        return self.settings.base_url.replace(INSTANCE_PLACEHOLDER, instance).rstrip("/")

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        key = self.credentials.get("BRAZE_API_KEY", "")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        return Request("POST", f"{self.base_url}{self.path}", headers,
                       envelope({"attributes": PAYLOADS}, payloads))

    def request_byte_limit(self) -> int | None:
        # /users/track documents only its object limit.
        return self.settings.bulk_max_request_bytes if self.bulk else None

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        message = json_error_field(body, "message")
        if not isinstance(message, str):
            # Braze answers in its own envelope, success or error; not this.
            if status in (401, 403):
                return Verdict.fatal(f"Braze answered HTTP {status}: check BRAZE_API_KEY")
            return not_the_platforms(self.title, status, body)
        errors = json_error_field(body, "errors")
        errors = errors if isinstance(errors, list) else []
        if 200 <= status < 300 and message == "success":
            return self._per_object(errors, len(rows))
        reason = f"{message or 'no message'} (HTTP {status})"
        if errors:
            reason += ": " + "; ".join(_error_text(error) for error in errors[:5])
        if status in (401, 403):
            if self.bulk:
                return Verdict.fatal(
                    f"Braze refused the API key for {self.path}: {reason}; check BRAZE_API_KEY "
                    "(it needs the users.track.bulk permission, and the account access to "
                    "the bulk endpoint, in limited beta: without it set endpoint = \"track\") "
                    "and instance")
            return Verdict.fatal(f"Braze refused the API key: {reason}; check BRAZE_API_KEY "
                                 "(it needs users.track) and instance")
        if status == 404:
            if self.bulk:
                return Verdict.fatal(
                    f"Braze has no {self.path} here: {reason}; check instance, and whether "
                    "the account has the bulk endpoint (else set endpoint = \"track\")")
            return Verdict.fatal(f"Braze has no such endpoint: {reason}; check instance")
        if status == 413:
            return Verdict.too_large(reason)
        if 400 <= status < 500:
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected answer from Braze: {reason}")

    def _per_object(self, errors: list[JsonValue], count: int) -> Verdict:
        outcomes = [RowOutcome("accepted")] * count
        unplaced: list[str] = []
        for error in errors:
            index = json_error_field(error, "index")
            array = json_error_field(error, "input_array")
            if (array in (None, "attributes") and isinstance(index, int)
                    and not isinstance(index, bool) and 0 <= index < count):
                outcomes[index] = RowOutcome("rejected", _error_text(error))
            else:
                unplaced.append(_error_text(error))
        if unplaced:
            # Braze keeps every object an error does not name; the note stays with them.
            note = "Braze reported: " + "; ".join(unplaced[:3])
            outcomes = [outcome if outcome.status == "rejected" else RowOutcome("accepted", note)
                        for outcome in outcomes]
        return Verdict.per_row(outcomes)


def _for_endpoint(settings: BrazeSettings) -> BrazeSettings:
    """The settings checked for their endpoint; for the bulk endpoint, `batch_size` (what
    the delivery loop cuts batches by) becomes `bulk_batch_size`, and an unset
    `requests_per_second` Braze's base bulk rate."""
    endpoint = settings.endpoint.strip().lower()
    if endpoint not in ENDPOINTS:
        raise ConfigError(
            f"endpoint for braze must be \"track\" or \"bulk\", not {settings.endpoint!r}: set "
            "BRAZE_ENDPOINT or endpoint under [destinations.braze] in shipper.toml."
        )
    if endpoint == "track":
        return dataclasses.replace(settings, endpoint=endpoint)
    if not 1 <= settings.bulk_batch_size <= BULK_MAX_OBJECTS:
        raise ConfigError(
            f"bulk_batch_size {settings.bulk_batch_size} for braze must be from 1 to "
            f"{BULK_MAX_OBJECTS:,} (Braze's /users/track/bulk limit): set BRAZE_BULK_BATCH_SIZE "
            "or bulk_batch_size under [destinations.braze] in shipper.toml."
        )
    if not 1 <= settings.bulk_max_request_bytes <= BULK_MAX_REQUEST_BYTES:
        raise ConfigError(
            f"bulk_max_request_bytes {settings.bulk_max_request_bytes} for braze must be from 1 "
            f"to {BULK_MAX_REQUEST_BYTES:,} (Braze: 2 MB a /users/track/bulk request): set "
            "BRAZE_BULK_MAX_REQUEST_BYTES or bulk_max_request_bytes under "
            "[destinations.braze] in shipper.toml."
        )
    return dataclasses.replace(
        settings, endpoint=endpoint, batch_size=settings.bulk_batch_size,
        requests_per_second=settings.requests_per_second or BULK_REQUESTS_PER_SECOND,
    )


def _error_text(error: JsonValue) -> str:
    if isinstance(error, Mapping):
        return str(error.get("type") or error.get("message") or error)
    return str(error)
