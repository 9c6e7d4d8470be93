"""Braze custom attributes through the REST /users/track endpoint.

Reads `braze_attributes` (docs/marts.md): one profile per customer, its
`payload` (the attribute object, built by the mart) and `payload_sha256`. Contract
followed (PLATFORMS.md, Braze's API reference and rate-limit pages):

- `POST {base_url}/users/track`, `Authorization: Bearer <BRAZE_API_KEY>`.
  base_url is per account: set `instance` (e.g. `rest.iad-01.braze.com`,
  env BRAZE_INSTANCE) or the whole `base_url` (BRAZE_BASE_URL).
- Body `{"attributes": [{"external_id": ..., <custom attribute>: value, ...}]}`,
  at most 75 attribute objects per request (Braze counts attributes, events
  and purchases together on newer contracts; only attributes are sent here).
- The mart's payload writes a NULL attribute as null, which Braze reads as
  "remove this attribute", so the profile mirrors the mart.
- Response 201 `{"message": "success", "attributes_processed": n}`; a partial
  failure keeps the good objects and lists `errors: [{"type", "input_array":
  "attributes", "index"}]`: those objects are rejected with Braze's type
  text, the rest accepted. An error Braze ties to no index (a "minor error"
  in Braze's words) does not stop the other objects: they are accepted and
  the message is kept with them in the ledger.
- 400 refuses the request as a whole: the delivery loop splits it to find the
  object(s). 401/403 stop the destination. 429 and 5xx are retried by the
  session (Retry-After honoured; Braze documents X-RateLimit-Reset, which
  the shared session does not read yet: it backs off exponentially instead).

A profile destination: the mart's `payload_sha256` is the fingerprint, and a
customer is sent again only when it changed. Braze bills
per data point; an object carries all of the customer's attributes, not just
the changed one (the ledger keeps fingerprints, not previous values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from shipper.settings import ConfigError, DestinationSettings, setting

INSTANCE_PLACEHOLDER = "{instance}"


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
    batch_size: int = setting(75, "Attribute objects per request (Braze: at most 75).")


@register
class Braze(RestDestination):
    name = "braze"
    title = "Braze"
    settings_class = BrazeSettings
    max_batch_size = 75
    credential_env = ("BRAZE_API_KEY",)
    kind = PROFILES
    settings: BrazeSettings

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(settings, credentials, *args, **kwargs)
        if credentials and INSTANCE_PLACEHOLDER in self.settings.base_url \
                and not self.settings.instance:
            raise ConfigError(
                "braze needs its REST endpoint to send: set BRAZE_INSTANCE (or instance under "
                "[destinations.braze]) to the account's host, e.g. rest.iad-01.braze.com."
            )

    @property
    def base_url(self) -> str:
        instance = (self.settings.instance or "unset-instance").strip()
        instance = instance.removeprefix("https://").removeprefix("http://").rstrip("/")
        return self.settings.base_url.replace(INSTANCE_PLACEHOLDER, instance).rstrip("/")

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        key = self.credentials.get("BRAZE_API_KEY", "")
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        return Request("POST", f"{self.base_url}/users/track", headers,
                       envelope({"attributes": PAYLOADS}, payloads))

    def parse_response(self, status: int, body: Any, rows: Rows) -> Verdict:
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
            return Verdict.fatal(f"Braze refused the API key: {reason}; check BRAZE_API_KEY "
                                 "(it needs users.track) and instance")
        if status == 404:
            return Verdict.fatal(f"Braze has no such endpoint: {reason}; check instance")
        if status == 413:
            return Verdict.too_large(reason)
        if 400 <= status < 500:
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected answer from Braze: {reason}")

    def _per_object(self, errors: list[Any], count: int) -> Verdict:
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


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        return str(error.get("type") or error.get("message") or error)
    return str(error)
