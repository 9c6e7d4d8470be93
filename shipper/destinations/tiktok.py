"""TikTok Events API 2.0, offline events.

Reads `delivery_key`, `payload` (one event, built by the mart) and `event_time`
of `tiktok_conversions` (docs/marts.md). Contract followed (PLATFORMS.md):

- `POST {base_url}/open_api/{api_version}/event/track/` with the `Access-Token`
  header; body `{"event_source": "offline", "event_source_id": ..., "test_event_code"?,
  "data": [...]}`, at most 1,000 events.
- Errors come back inside HTTP 200 as `{"code": != 0, "message", "request_id"}`;
  one bad event fails the whole batch, so the delivery loop splits it.
- Age limit: `max_event_age_days` (28, a partner-documented limit); the mart's
  window (dbt var `tiktok_window_days`) stays inside it.

Which non-zero codes mean "throttled" or "bad credentials" is not confirmed by a
vendor page we could read, so both lists are settings (`retryable_codes`,
`fatal_codes`) with defaults taken from TikTok's published code table:
40100 too many requests, 50000/50002 system errors; 40001 no permission,
40102 token expired, 40104 token empty, 40105 token invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    Request,
    Rows,
    Template,
    Verdict,
    envelope,
    not_the_platforms,
    register,
)
from shipper.destinations.rest import RestDestination
from shipper.jsontypes import JsonValue
from shipper.settings import DestinationSettings, setting


@dataclass(frozen=True)
class TikTokSettings(DestinationSettings):
    mart: str = setting("tiktok_conversions", "The mart this destination reads.")
    base_url: str = setting("https://business-api.tiktok.com", "Business API host.")
    api_version: str = setting("v1.3", "Business API version segment.")
    event_source_id: str | None = setting(None, "Offline event set id (event_source_id).")
    max_event_age_days: int = setting(
        28, "TikTok's age limit (partner-documented): an older event is recorded as expired, "
            "not sent.")
    retryable_codes: tuple[int, ...] = setting(
        (40100, 50000, 50002), "Response codes (inside HTTP 200) that mean: try again later."
    )
    fatal_codes: tuple[int, ...] = setting(
        (40001, 40102, 40104, 40105), "Response codes that mean: the credentials are wrong."
    )


@register
class TikTok(RestDestination):
    name = "tiktok"
    title = "TikTok"
    settings_class = TikTokSettings
    max_batch_size = 1000
    credential_env = ("TIKTOK_ACCESS_TOKEN",)
    required_settings = ("event_source_id",)
    settings: TikTokSettings

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        url = f"{self.base_url}/open_api/{self.settings.api_version}/event/track/"
        template: dict[str, Template] = {
            "event_source": "offline",
            "event_source_id": self.settings.event_source_id,
        }
        if self.settings.test_event_code:
            template["test_event_code"] = self.settings.test_event_code
        template["data"] = PAYLOADS
        headers = {
            "Content-Type": "application/json",
            "Access-Token": self.credentials.get("TIKTOK_ACCESS_TOKEN", ""),
        }
        return Request("POST", url, headers, envelope(template, payloads))

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        if status == 200 and isinstance(body, Mapping) and "code" in body:
            code = body.get("code")
            if code == 0:
                return Verdict.all_accepted(len(rows))
            reason = f"{body.get('message') or 'no message'} (code {code})"
            if code in self.settings.retryable_codes:
                return Verdict.retry(f"TikTok asked to retry: {reason}")
            if code in self.settings.fatal_codes:
                return Verdict.fatal(
                    f"TikTok refused the credentials: {reason}; check TIKTOK_ACCESS_TOKEN "
                    "and event_source_id"
                )
            return Verdict.reject_batch(reason)
        if status in (401, 403):
            return Verdict.fatal(f"TikTok answered HTTP {status}: check TIKTOK_ACCESS_TOKEN")
        # TikTok answers in its envelope (`code`); anything else is not TikTok's answer.
        return not_the_platforms(self.title, status, body)
