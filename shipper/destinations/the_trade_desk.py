"""The Trade Desk offline conversions, with UID2 identity mapping.

Reads `the_trade_desk_conversions` (docs/marts.md): one row per eligible US
store sale and identifier (email, phone), each carrying a UID2 input hash.
Before validation every read batch goes through `shipper.uid2`, which maps
the hashes to raw UID2s (cache in the ledger, identity map v3); a hash that
maps to nothing (opted out, invalid) makes its row a rejection
'uid2 unmapped: <UID2's reason>' that the run summary counts by reason.

Contract followed (PLATFORMS.md, and The Trade Desk's own ttd-data SDK):

- `POST {base_url}/providerapi/offlineconversion` with the `TTD-Auth` header;
  body `{"DataProviderId", "Items": [...]}`; each item `TrackingTagId`,
  `TimestampUtc`, `UID2`, `OrderId` (<= 64 characters), `Value` (string),
  `ValueCurrency`, `EventName`, `Country`, `Region`, `City`, `MerchantId`,
  `LineItems: [{item_code, name, qty, price, cat}]` [V]. The SDK types every
  line item field as a string, so `qty` (an integer in the mart) is sent as
  a string.
- The default host is `https://offlineattrib.adsrvr.org`, the ttd-data SDK's
  server for this endpoint [V: thetradedesk/ttd-databricks-python README];
  PLATFORMS.md had no confirmed default.
- Batch size: no vendor maximum found [?]; 1,000 items by default (what
  partner connectors use), and an HTTP 413 splits the batch in halves.
- Window: US sales of the last 25 days [P]; the mart filters, `validate`
  refuses anything else (Country other than USA, older than
  `max_event_age_days`, in the future, no UID2).
- Answers [V: ttd-data SDK and TTD's own Databricks tooling]: HTTP 200
  `{"FailedLines": [{OrderId, ErrorCode, Message, ItemNumber, OriginalRequest,
  ...}]}`; HTTP 400 with the same body when lines failed, or without it when
  the request as a whole is refused; 403 forbidden for the data provider; 413
  too large; 429 (with `Retry-After`), 500, 503 transient.

How a failed line is matched to the item it is about: by `ItemNumber`, the
item's 1-based position in the request (what TTD's Databricks tooling relies
on); without it, by `OriginalRequest` (OrderId + UID2); without that, by
`OrderId` when only one item of the request has it. A line that matches no
single item makes the batch a `reject_batch`, so the delivery loop splits it
until the line can be placed; items not named by any line are accepted (as
TTD's tooling reads the answer). A line whose ErrorCode is in
`fatal_error_codes` (default Unauthorized, MissingOrInvalidTrackingTagId:
our token or tracking tag, nothing a row could fix) stops the destination with
the rows kept for the next run instead of rejecting them. A 400 without
FailedLines, 401, 403 and 404 stop the destination the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shipper.config import ConfigError, DestinationSettings, setting
from shipper.destinations.base import (
    Destination,
    PrepareContext,
    Request,
    RowOutcome,
    Verdict,
    check_money,
    drop_none,
    parse_json_array,
    register,
)
from shipper.http import RetryPolicy
from shipper.redact import get_logger, scrub
from shipper.uid2 import MAX_HASHES_PER_REQUEST, IdentityMapService, MappingCache, Uid2Mapper

log = get_logger(__name__)

IDENTIFIER_TYPES = ("email", "phone")
LINE_ITEM_KEYS = ("item_code", "name", "qty", "price", "cat")
MAX_ORDER_ID_LENGTH = 64
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_UID2_HASH = re.compile(r"[A-Za-z0-9+/]{43}=")
_SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class TheTradeDeskSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("the_trade_desk_conversions", "The mart this destination reads.")
    base_url: str = setting(
        "https://offlineattrib.adsrvr.org",
        "Offline conversion server (the ttd-data SDK's default for this endpoint).",
        env="TTD_BASE_URL",
    )
    data_provider_id: str | None = setting(
        None, "DataProviderId The Trade Desk assigned; required to send.",
        env="TTD_DATA_PROVIDER_ID",
    )
    tracking_tag_id: str | None = setting(
        None, "TrackingTagId of the offline conversion tag every item is reported under; "
              "required to send.",
        env="TTD_TRACKING_TAG_ID",
    )
    batch_size: int = setting(
        1000, "Items per request; no vendor maximum is published (a 413 splits the batch)."
    )
    max_event_age_days: int = setting(25, "Items older than this are refused (TTD: 25 days).")
    fatal_error_codes: tuple[str, ...] = setting(
        ("Unauthorized", "MissingOrInvalidTrackingTagId"),
        "FailedLines ErrorCodes that mean our token or tracking tag is wrong: stop, keep rows.",
    )
    uid2_base_url: str = setting(
        "https://prod.uidapi.com", "UID2 operator for the identity map (integration: "
        "https://operator-integ.uidapi.com).", env="UID2_BASE_URL",
    )
    uid2_batch_size: int = setting(
        MAX_HASHES_PER_REQUEST, "Hashes per identity-map request (UID2 allows at most 5,000)."
    )
    unmapped_recheck_hours: float = setting(
        24.0, "Hours before a hash that mapped to nothing (opt-out ...) is asked about again."
    )

    def __post_init__(self) -> None:
        where = "under [destinations.the_trade_desk] in shipper.toml"
        if not 1 <= self.uid2_batch_size <= MAX_HASHES_PER_REQUEST:
            raise ConfigError(
                f"uid2_batch_size for the_trade_desk must be between 1 and "
                f"{MAX_HASHES_PER_REQUEST} (the UID2 identity-map limit): set "
                f"THE_TRADE_DESK_UID2_BATCH_SIZE or uid2_batch_size {where}.")
        if self.unmapped_recheck_hours < 0:
            raise ConfigError(
                "unmapped_recheck_hours for the_trade_desk must not be negative: set "
                f"THE_TRADE_DESK_UNMAPPED_RECHECK_HOURS or unmapped_recheck_hours {where}.")
        if not self.uid2_base_url.startswith(("https://", "http://")):
            raise ConfigError(
                "uid2_base_url for the_trade_desk must start with https://: set UID2_BASE_URL "
                f"or uid2_base_url {where}.")


@register
class TheTradeDesk(Destination):
    name = "the_trade_desk"
    title = "The Trade Desk"
    settings_class = TheTradeDeskSettings
    # No published maximum; this only bounds what the config accepts.
    max_batch_size = 10_000
    credential_env = ("TTD_AUTH_TOKEN", "UID2_API_KEY", "UID2_SECRET_KEY")
    required_settings = ("data_provider_id", "tracking_tag_id")
    columns = (
        "delivery_key", "event_id", "order_id", "identifier_type", "uid2_hash",
        "timestamp_utc", "value", "value_currency", "event_name", "country", "region",
        "city", "merchant_id", "line_items",
    )
    settings: TheTradeDeskSettings
    _mapper: Uid2Mapper | None = None

    # -- the UID2 step --------------------------------------------------------------------

    def open_prepare(self, context: PrepareContext) -> None:
        settings = self.settings
        service = None
        if not context.dry_run:
            hooks = context.hooks
            service = IdentityMapService(
                settings.uid2_base_url, self.credentials.get("UID2_API_KEY", ""),
                self.credentials.get("UID2_SECRET_KEY", ""),
                policy=RetryPolicy.from_settings(settings),
                connect_timeout=settings.connect_timeout_seconds,
                read_timeout=settings.timeout_seconds,
                clock=hooks.clock, sleep=hooks.sleep, wallclock=hooks.wallclock, rng=hooks.rng,
            )
        self._mapper = Uid2Mapper(
            MappingCache(context.ledger.cursor()), service=service,
            batch_size=settings.uid2_batch_size,
            unmapped_recheck_hours=settings.unmapped_recheck_hours, now=self.now,
            outbox=context.outbox_dir if context.dry_run else None, run_id=context.run_id,
        )

    def prepare(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Rows that cannot be sent whatever their UID2 are not looked up at all.
        sendable = [row for row in rows if self._check_row(row) is None]
        if self._mapper is not None:
            self._mapper.resolve(sendable)
        return rows

    def close_prepare(self) -> None:
        mapper, self._mapper = self._mapper, None
        if mapper is None:
            return
        try:
            if mapper.counts.looked_up:
                log.info("%s: %s", self.name, mapper.summary())
        finally:
            mapper.close()
            mapper.cache.con.close()

    # -- the destination ------------------------------------------------------------------

    def validate(self, row: Mapping[str, Any]) -> str | None:
        reason = self._check_row(row)
        if reason:
            return reason
        # `uid2` is set by the prepare step; `ship validate` checks rows before mapping.
        if "uid2" in row and not row.get("uid2"):
            return f"uid2 unmapped: {row.get('uid2_unmapped') or 'no UID2'}"
        return None

    def _check_row(self, row: Mapping[str, Any]) -> str | None:
        order_id = row.get("order_id")
        if not order_id:
            return "order_id is missing"
        if len(str(order_id)) > MAX_ORDER_ID_LENGTH:
            return f"order_id is longer than {MAX_ORDER_ID_LENGTH} characters"
        if row.get("identifier_type") not in IDENTIFIER_TYPES:
            return "identifier_type is not 'email' or 'phone'"
        uid2_hash = row.get("uid2_hash")
        if not uid2_hash:
            return "uid2_hash is missing"
        if not isinstance(uid2_hash, str) or not _UID2_HASH.fullmatch(uid2_hash):
            return "uid2_hash is not a base64 SHA-256 (44 characters)"
        if row.get("country") != "USA":
            return "country is not USA (The Trade Desk takes US sales only)"
        reason = self._check_time(row.get("timestamp_utc"))
        if reason:
            return reason
        reason = check_money(row.get("value"), row.get("value_currency"))
        if reason:
            return reason.replace("currency", "value_currency")
        line_items = parse_json_array(row.get("line_items"))
        if line_items is None or not all(isinstance(item, Mapping) for item in line_items):
            return "line_items is not a JSON array of objects"
        return None

    def _check_time(self, value: Any) -> str | None:
        if not value:
            return "timestamp_utc is missing"
        if not isinstance(value, str) or not _ISO_UTC.fullmatch(value):
            return "timestamp_utc is not YYYY-MM-DDTHH:MM:SSZ"
        try:
            moment = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return "timestamp_utc is not a valid date and time"
        seconds, now = moment.timestamp(), self.now()
        if seconds > now:
            return "timestamp_utc is in the future"
        days = self.settings.max_event_age_days
        if seconds < now - days * _SECONDS_PER_DAY:
            return f"timestamp_utc is older than {days} days"
        return None

    def to_wire(self, row: Mapping[str, Any]) -> dict[str, Any]:
        line_items = [
            {key: str(item[key]) for key in LINE_ITEM_KEYS if item.get(key) is not None}
            for item in parse_json_array(row.get("line_items")) or []
        ]
        return drop_none({
            "TrackingTagId": self.settings.tracking_tag_id,
            "TimestampUtc": row["timestamp_utc"],
            "UID2": row.get("uid2"),
            "OrderId": row["order_id"],
            "Value": None if row.get("value") is None else str(row["value"]),
            "ValueCurrency": row.get("value_currency"),
            "EventName": row.get("event_name"),
            "Country": row.get("country"),
            "Region": row.get("region"),
            "City": row.get("city"),
            "MerchantId": row.get("merchant_id"),
            "LineItems": line_items or None,
        })

    def build_request(self, events: Sequence[Mapping[str, Any]]) -> Request:
        body = {"DataProviderId": self.settings.data_provider_id, "Items": list(events)}
        headers = {
            "Content-Type": "application/json",
            "TTD-Auth": self.credentials.get("TTD_AUTH_TOKEN", ""),
        }
        return Request("POST", f"{self.base_url}/providerapi/offlineconversion", headers, body)

    def parse_response(self, status: int, body: Any,
                       events: Sequence[Mapping[str, Any]]) -> Verdict:
        failed_lines = body.get("FailedLines") if isinstance(body, Mapping) else None
        if failed_lines is not None and not isinstance(failed_lines, list):
            failed_lines = None
        if status == 413:
            return Verdict.reject_batch("HTTP 413 from The Trade Desk: the request is too large")
        if 200 <= status < 300 or (status == 400 and failed_lines):
            return self._read_failed_lines(failed_lines or [], events, status)
        detail = _message(body)
        if status == 400:
            return Verdict.fatal(
                f"The Trade Desk refused the request (HTTP 400: {detail}); check "
                "data_provider_id and tracking_tag_id")
        if status in (401, 403):
            return Verdict.fatal(
                f"The Trade Desk answered HTTP {status} ({detail}): check TTD_AUTH_TOKEN and "
                "data_provider_id")
        if status == 429 or status >= 500:
            return Verdict.retry(f"HTTP {status} from The Trade Desk")
        return Verdict.fatal(
            f"unexpected HTTP {status} from The Trade Desk ({detail}): check base_url "
            "(TTD_BASE_URL)")

    def _read_failed_lines(self, lines: list[Any], events: Sequence[Mapping[str, Any]],
                           status: int) -> Verdict:
        outcomes: dict[int, str] = {}
        for line in lines:
            if not isinstance(line, Mapping):
                return Verdict.reject_batch(f"The Trade Desk answered a failed line {line!r}")
            code = str(line.get("ErrorCode") or "Unknown")
            reason = scrub(f"{code}: {line.get('Message') or 'no message'}")
            if code in self.settings.fatal_error_codes:
                return Verdict.fatal(
                    f"The Trade Desk refused the items ({reason}); check TTD_AUTH_TOKEN and "
                    "tracking_tag_id")
            index = _line_index(line, events)
            if index is None:
                return Verdict.reject_batch(
                    f"The Trade Desk reported a failed line it did not place ({reason})")
            outcomes.setdefault(index, reason)
        if not outcomes and status != 200:
            return Verdict.reject_batch(f"HTTP {status} from The Trade Desk")
        return Verdict.per_row([
            RowOutcome("rejected", outcomes[index]) if index in outcomes else RowOutcome("accepted")
            for index in range(len(events))
        ])


def _line_index(line: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> int | None:
    """The index of the item a failed line is about, or None when it is not one item."""
    number = line.get("ItemNumber")
    if number is not None and str(number).strip().isdigit():
        index = int(str(number).strip()) - 1
        if 0 <= index < len(events):
            return index
    original = line.get("OriginalRequest")
    if isinstance(original, Mapping) and original.get("OrderId"):
        matches = [index for index, event in enumerate(events)
                   if event.get("OrderId") == original.get("OrderId")
                   and event.get("UID2") == original.get("UID2")]
        if len(matches) == 1:
            return matches[0]
    if line.get("OrderId"):
        matches = [index for index, event in enumerate(events)
                   if event.get("OrderId") == line.get("OrderId")]
        if len(matches) == 1:
            return matches[0]
    return None


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        for key in ("Message", "message", "error"):
            if body.get(key):
                return scrub(str(body[key]))[:300]
        return scrub(str(dict(body)))[:300]
    if body in (None, ""):
        return "no message"
    return scrub(str(body))[:300]
