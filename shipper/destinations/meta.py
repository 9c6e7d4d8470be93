"""Meta Conversions API, offline (physical store) events.

Reads `meta_conversions` (docs/marts.md). Contract followed (PLATFORMS.md):

- `POST {base_url}/{api_version}/{dataset_id}/events?access_token=...`; the
  token travels as the `access_token` query parameter, so it is never part of
  the body the dry run writes.
- Body `{"data": [...], "test_event_code"?: ..., "partner_agent"?: ...}`, at most
  1,000 events.
- `user_data` values are one-element lists of hashes; a NULL hash is left out.
- Meta rejects the whole request for one bad event (HTTP 400 with the error
  envelope); the delivery loop splits such a batch to isolate the event.
- Throttling (codes 4, 17, 32, 613, HTTP 429) and transient errors (codes 1, 2 or
  `is_transient`) are retried; token, permission and unknown-dataset errors stop
  the destination (nothing is marked rejected because of our own credentials).

The window is a rolling `max_event_age_days` (7 by default): Meta documents both
7 days and 62 days for physical-store events, and a request holding one event
older than its limit fails entirely, so the conservative value is the default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shipper.config import DestinationSettings, setting
from shipper.destinations import sql
from shipper.destinations.base import (
    Destination,
    Request,
    Verdict,
    check_event,
    drop_none,
    json_error_field,
    money,
    parse_json_array,
    register,
)

USER_DATA_KEYS = ("em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country", "external_id")

THROTTLING_CODES = frozenset({4, 17, 32, 613, 80004})
TRANSIENT_CODES = frozenset({1, 2})
# 190 invalid/expired token, 102 session, 10 and 200-299 permissions.
AUTH_CODES = frozenset({10, 102, 190})
UNKNOWN_OBJECT_SUBCODE = 33


@dataclass(frozen=True)
class MetaSettings(DestinationSettings):
    mart: str = setting("meta_conversions", "The mart this destination reads.")
    base_url: str = setting("https://graph.facebook.com", "Graph API host.")
    api_version: str = setting("v25.0", "Graph API version (the official SDK pins v25.0).")
    dataset_id: str | None = setting(None, "Dataset (pixel / offline event set) id.")
    partner_agent: str | None = setting(None, "Optional partner_agent sent with each request.")
    max_event_age_days: int = setting(7, "Rolling window; Meta rejects older events.")


@register
class Meta(Destination):
    name = "meta"
    title = "Meta"
    settings_class = MetaSettings
    max_batch_size = 1000
    credential_env = ("META_ACCESS_TOKEN",)
    required_settings = ("dataset_id",)
    columns = (
        "delivery_key", "event_name", "event_time", "event_id", "action_source",
        *USER_DATA_KEYS,
        "value", "currency", "order_id", "contents", "num_items",
    )
    settings: MetaSettings

    def validate(self, row: Mapping[str, Any]) -> str | None:
        return check_event(row, required=("event_name", "event_id", "action_source"), now=self.now(),
                           max_age_days=self.settings.max_event_age_days,
                           identifier_keys=USER_DATA_KEYS, purchase=("event_name", "Purchase"),
                           json_array="contents")

    def to_wire(self, row: Mapping[str, Any]) -> dict[str, Any]:
        user_data = {key: [row[key]] for key in USER_DATA_KEYS if row.get(key) is not None}
        custom_data = drop_none({
            "value": money(row.get("value")),
            "currency": row.get("currency"),
            "order_id": row.get("order_id"),
            "contents": parse_json_array(row.get("contents")) or None,
            "num_items": row.get("num_items"),
        })
        return drop_none({
            "event_name": row["event_name"],
            "event_time": row["event_time"],
            "event_id": row["event_id"],
            "action_source": row["action_source"],
            "user_data": user_data,
            "custom_data": custom_data or None,
        })

    def sql_events(self, columns: sql.Columns) -> sql.SqlEvents:
        checks = sql.event_checks(
            columns, required=("event_name", "event_id", "action_source"), now=self.now(),
            max_age_days=self.settings.max_event_age_days, identifier_keys=USER_DATA_KEYS,
            purchase=("event_name", "Purchase"), json_array="contents",
        )
        checks.append((columns.not_number("value"), "row cannot become an event (ValueError)"))
        # event_name, event_time, event_id and action_source are required by the
        # reason, and user_data is always there (possibly {}), as in to_wire.
        event = sql.event_object(
            [
                ("event_name", sql.value(columns, "event_name")),
                ("event_time", sql.value(columns, "event_time")),
                ("event_id", sql.value(columns, "event_id")),
                ("action_source", sql.value(columns, "action_source")),
                ("user_data", sql.ObjectOf(tuple(
                    columns.hex_member(key, key, as_list=True) for key in USER_DATA_KEYS
                ))),
            ],
            [
                sql.object_member("custom_data", [
                    columns.money_member("value", "value"),
                    columns.member("currency", "currency"),
                    columns.member("order_id", "order_id"),
                    columns.json_array_member("contents", "contents"),
                    columns.member("num_items", "num_items"),
                ]),
            ],
        )
        return sql.SqlEvents(sql.first_reason(checks), event,
                             python_rows=(f"{columns.json_needs_python('contents')} or "
                                          f"{columns.number_needs_python('value')}"),
                             hex_columns=USER_DATA_KEYS)

    def build_request(self, events: Sequence[Mapping[str, Any]]) -> Request:
        dataset = quote(self.settings.dataset_id or "unset-dataset-id", safe="")
        url = f"{self.base_url}/{self.settings.api_version}/{dataset}/events"
        body: dict[str, Any] = {"data": list(events)}
        if self.settings.test_event_code:
            body["test_event_code"] = self.settings.test_event_code
        if self.settings.partner_agent:
            body["partner_agent"] = self.settings.partner_agent
        token = self.credentials.get("META_ACCESS_TOKEN", "")
        return Request("POST", url, {"Content-Type": "application/json"}, body,
                       params={"access_token": token})

    def parse_response(self, status: int, body: Any,
                       events: Sequence[Mapping[str, Any]]) -> Verdict:
        error = json_error_field(body, "error")
        if 200 <= status < 300 and not error:
            # Meta accepts or refuses a request as a whole; events_received below the
            # number sent has not been seen, and resending could only duplicate.
            return Verdict.all_accepted(len(events))
        if not isinstance(error, Mapping):
            if status == 429:
                return Verdict.retry("HTTP 429 from Meta")
            if status in (401, 403):
                return Verdict.fatal(f"Meta answered HTTP {status}: check META_ACCESS_TOKEN")
            if 400 <= status < 500:
                return Verdict.reject_batch(f"HTTP {status} from Meta without an error body")
            return Verdict.retry(f"unexpected HTTP {status} from Meta")
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
        if 400 <= status < 500:
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected HTTP {status} from Meta: {reason}")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
