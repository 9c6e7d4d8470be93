"""TikTok Events API 2.0, offline events.

Reads `tiktok_conversions` (docs/marts.md). Contract followed (PLATFORMS.md):

- `POST {base_url}/open_api/{api_version}/event/track/` with the `Access-Token`
  header; body `{"event_source": "offline", "event_source_id": ..., "test_event_code"?,
  "data": [...]}`, at most 1,000 events.
- Errors come back inside HTTP 200 as `{"code": != 0, "message", "request_id"}`;
  one bad event fails the whole batch, so the delivery loop splits it.
- Window: the last `max_event_age_days` (28 by default, a partner-documented limit).

Which non-zero codes mean "throttled" or "bad credentials" is not confirmed by a
vendor page we could read, so both lists are settings (`retryable_codes`,
`fatal_codes`) with defaults taken from TikTok's published code table:
40100 too many requests, 50000/50002 system errors; 40001 no permission,
40102 token expired, 40104 token empty, 40105 token invalid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipper.config import DestinationSettings, setting
from shipper.destinations import sql
from shipper.destinations.base import (
    Destination,
    Request,
    Verdict,
    check_event,
    drop_none,
    money,
    parse_json_array,
    register,
)

USER_KEYS = ("email", "phone", "external_id")


@dataclass(frozen=True)
class TikTokSettings(DestinationSettings):
    mart: str = setting("tiktok_conversions", "The mart this destination reads.")
    base_url: str = setting("https://business-api.tiktok.com", "Business API host.")
    api_version: str = setting("v1.3", "Business API version segment.")
    event_source_id: str | None = setting(None, "Offline event set id (event_source_id).")
    max_event_age_days: int = setting(28, "Rolling window; TikTok drops older events.")
    retryable_codes: tuple[int, ...] = setting(
        (40100, 50000, 50002), "Response codes (inside HTTP 200) that mean: try again later."
    )
    fatal_codes: tuple[int, ...] = setting(
        (40001, 40102, 40104, 40105), "Response codes that mean: the credentials are wrong."
    )


@register
class TikTok(Destination):
    name = "tiktok"
    title = "TikTok"
    settings_class = TikTokSettings
    max_batch_size = 1000
    credential_env = ("TIKTOK_ACCESS_TOKEN",)
    required_settings = ("event_source_id",)
    columns = (
        "delivery_key", "event", "event_time", "event_id",
        *USER_KEYS,
        "value", "currency", "order_id", "shop_id", "content_type", "contents",
    )
    settings: TikTokSettings

    def validate(self, row: Mapping[str, Any]) -> str | None:
        return check_event(row, required=("event", "event_id"), now=self.now(),
                           max_age_days=self.settings.max_event_age_days,
                           identifier_keys=USER_KEYS, purchase=("event", "CompletePayment"),
                           json_array="contents")

    def to_wire(self, row: Mapping[str, Any]) -> dict[str, Any]:
        properties = drop_none({
            "value": money(row.get("value")),
            "currency": row.get("currency"),
            "order_id": row.get("order_id"),
            "shop_id": row.get("shop_id"),
            "content_type": row.get("content_type"),
            "contents": parse_json_array(row.get("contents")) or None,
        })
        return drop_none({
            "event": row["event"],
            "event_time": row["event_time"],
            "event_id": row["event_id"],
            "user": {key: row[key] for key in USER_KEYS if row.get(key) is not None},
            "properties": properties or None,
        })

    def sql_events(self, columns: sql.Columns) -> sql.SqlEvents:
        checks = sql.event_checks(
            columns, required=("event", "event_id"), now=self.now(),
            max_age_days=self.settings.max_event_age_days, identifier_keys=USER_KEYS,
            purchase=("event", "CompletePayment"), json_array="contents",
        )
        checks.append((columns.not_number("value"), "row cannot become an event (ValueError)"))
        # event, event_time and event_id are required by the reason, and user is always
        # there (possibly {}), as in to_wire.
        event = sql.event_object(
            [
                ("event", sql.value(columns, "event")),
                ("event_time", sql.value(columns, "event_time")),
                ("event_id", sql.value(columns, "event_id")),
                ("user", sql.ObjectOf(tuple(columns.hex_member(key, key) for key in USER_KEYS))),
            ],
            [
                sql.object_member("properties", [
                    columns.money_member("value", "value"),
                    columns.member("currency", "currency"),
                    columns.member("order_id", "order_id"),
                    columns.member("shop_id", "shop_id"),
                    columns.member("content_type", "content_type"),
                    columns.json_array_member("contents", "contents"),
                ]),
            ],
        )
        return sql.SqlEvents(sql.first_reason(checks), event,
                             python_rows=(f"{columns.json_needs_python('contents')} or "
                                          f"{columns.number_needs_python('value')}"),
                             hex_columns=USER_KEYS)

    def build_request(self, events: Sequence[Mapping[str, Any]]) -> Request:
        url = f"{self.base_url}/open_api/{self.settings.api_version}/event/track/"
        body: dict[str, Any] = {
            "event_source": "offline",
            "event_source_id": self.settings.event_source_id,
        }
        if self.settings.test_event_code:
            body["test_event_code"] = self.settings.test_event_code
        body["data"] = list(events)
        headers = {
            "Content-Type": "application/json",
            "Access-Token": self.credentials.get("TIKTOK_ACCESS_TOKEN", ""),
        }
        return Request("POST", url, headers, body)

    def parse_response(self, status: int, body: Any,
                       events: Sequence[Mapping[str, Any]]) -> Verdict:
        if status == 200 and isinstance(body, Mapping) and "code" in body:
            code = body.get("code")
            if code == 0:
                return Verdict.all_accepted(len(events))
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
        if 400 <= status < 500 and status != 429:
            return Verdict.reject_batch(f"HTTP {status} from TikTok")
        return Verdict.retry(f"unexpected HTTP {status} from TikTok")
