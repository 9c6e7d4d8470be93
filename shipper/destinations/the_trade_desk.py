"""The Trade Desk offline conversions, with UID2 identity mapping.

Reads `delivery_key`, `payload`, `event_time`, `identifier_type` and
`uid2_hash` of `the_trade_desk_conversions` (docs/marts.md): one row per
eligible US store sale and identifier (email, phone). The payload is the item
as sent except `TrackingTagId` (a setting) and `UID2`: the prepare step maps
each (identifier_type, uid2_hash) to a raw UID2 with `shipper.uid2` (cache in
the ledger, identity map v3) and writes both members in front of the mart's
payload, byte for byte otherwise. A hash that maps to nothing (opted out,
invalid) makes its row a rejection 'uid2 unmapped: <UID2's reason>' that the
run summary counts by reason.

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
- Window: US sales of the last 25 days [P]; the mart holds nothing else (its
  window, country and row checks are SQL). An item older than
  `max_event_age_days` at send time is recorded expired, not sent.
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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    PrepareContext,
    PrepareError,
    Request,
    RowOutcome,
    Rows,
    Template,
    Verdict,
    envelope,
    not_the_platforms,
    register,
)
from shipper.destinations.rest import RestDestination
from shipper.jsontypes import JsonValue
from shipper.redact import get_logger, scrub
from shipper.settings import ConfigError, DestinationSettings, setting
from shipper.uid2 import MAX_HASHES_PER_REQUEST, IdentityMapService, MappingCache, Uid2Mapper

log = get_logger(__name__)

# json.dumps with options builds a new encoder per call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


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
    max_event_age_days: int = setting(
        25, "The Trade Desk's age limit (25 days): an older item is recorded as expired, not "
            "sent.")
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
class TheTradeDesk(RestDestination):
    name = "the_trade_desk"
    title = "The Trade Desk"
    settings_class = TheTradeDeskSettings
    # No published maximum; this only bounds what the config accepts.
    max_batch_size = 10_000
    credential_env = ("TTD_AUTH_TOKEN", "UID2_API_KEY", "UID2_SECRET_KEY")
    required_settings = ("data_provider_id", "tracking_tag_id")
    extra_columns = ("identifier_type", "uid2_hash")
    rewrites_payloads = True
    settings: TheTradeDeskSettings
    _mapper: Uid2Mapper | None = None

    # -- the UID2 step --------------------------------------------------------------------

    def open_prepare(self, context: PrepareContext) -> None:
        settings = self.settings
        service = None
        if not context.dry_run:
            # The shared session and retry policy (shipper.http, shipper.retry), under
            # this destination's settings.
            service = IdentityMapService.for_settings(
                settings.uid2_base_url, self.credentials.get("UID2_API_KEY", ""),
                self.credentials.get("UID2_SECRET_KEY", ""), f"{self.name} (UID2 identity map)",
                settings, **context.hooks.for_session())
        self._mapper = Uid2Mapper(
            MappingCache(context.ledger.cursor()), service=service,
            batch_size=settings.uid2_batch_size,
            unmapped_recheck_hours=settings.unmapped_recheck_hours, now=self.now,
            outbox=context.outbox_dir if context.dry_run else None, run_id=context.run_id,
        )

    def prepare(self, rows: Rows) -> list[str | None]:
        """Map each row's hash to its UID2 and write `TrackingTagId` and `UID2` in front
        of the mart's payload: `{"TrackingTagId":"tt","UID2":"u",<the payload's members>}`."""
        if self._mapper is None:
            raise PrepareError("the UID2 step was not opened")
        resolved = self._mapper.resolve(rows.extra["identifier_type"], rows.extra["uid2_hash"])
        tag = self.settings.tracking_tag_id
        # A dry run may go without a tracking tag (live runs require one): left out then.
        head = b"{" if tag is None else b'{"TrackingTagId":' + _JSON.encode(tag).encode() + b","
        reasons: list[str | None] = []
        payloads = rows.payloads
        for index, (uid2, unmapped) in enumerate(resolved):
            if uid2 is None:
                reasons.append(f"uid2 unmapped: {unmapped or 'no UID2'}")
                continue
            spliced = _splice(head + b'"UID2":' + _JSON.encode(uid2).encode(), payloads[index])
            if spliced is None:
                reasons.append("payload is not a JSON object")
                continue
            payloads[index] = spliced
            reasons.append(None)
        return reasons

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

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        template: dict[str, Template] = {"DataProviderId": self.settings.data_provider_id, "Items": PAYLOADS}
        headers = {
            "Content-Type": "application/json",
            "TTD-Auth": self.credentials.get("TTD_AUTH_TOKEN", ""),
        }
        return Request("POST", f"{self.base_url}/providerapi/offlineconversion", headers,
                       envelope(template, payloads))

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        failed_lines = body.get("FailedLines") if isinstance(body, Mapping) else None
        if failed_lines is not None and not isinstance(failed_lines, list):
            failed_lines = None
        if status == 413:
            return Verdict.too_large("HTTP 413 from The Trade Desk: the request is too large")
        if 200 <= status < 300 and not isinstance(body, Mapping):
            # The Trade Desk answers a JSON object (with FailedLines); an HTML page or a
            # cut-off body says nothing about the items.
            return not_the_platforms(self.title, status, body)
        if 200 <= status < 300 or (status == 400 and failed_lines):
            return self._read_failed_lines(failed_lines or [], rows, status)
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

    def _read_failed_lines(self, lines: list[JsonValue], rows: Rows, status: int) -> Verdict:
        outcomes: dict[int, str] = {}
        items: list[Mapping[str, JsonValue]] = []
        for line in lines:
            if not isinstance(line, Mapping):
                return Verdict.reject_batch(f"The Trade Desk answered a failed line {line!r}")
            code = str(line.get("ErrorCode") or "Unknown")
            reason = scrub(f"{code}: {line.get('Message') or 'no message'}")
            if code in self.settings.fatal_error_codes:
                return Verdict.fatal(
                    f"The Trade Desk refused the items ({reason}); check TTD_AUTH_TOKEN and "
                    "tracking_tag_id")
            index = _line_index(line, len(rows), items, rows)
            if index is None:
                return Verdict.reject_batch(
                    f"The Trade Desk reported a failed line it did not place ({reason})")
            outcomes.setdefault(index, reason)
        if not outcomes and status != 200:
            return Verdict.reject_batch(f"HTTP {status} from The Trade Desk")
        return Verdict.per_row([
            RowOutcome("rejected", outcomes[index]) if index in outcomes else RowOutcome("accepted")
            for index in range(len(rows))
        ])


def _splice(members: bytes, payload: Payload) -> bytes | None:
    """The JSON object `payload` with `members` (`{"Name":value,...`, without the
    closing brace) written first, the payload's own bytes unchanged after them; None
    when the payload is not a JSON object (the mart's payload test failed)."""
    text = bytes(payload)
    if text[:1] != b"{":
        text = text.lstrip()
        if text[:1] != b"{":
            return None
    rest = text[1:]
    if rest.lstrip()[:1] == b"}":  # {} or { }: nothing of its own to follow
        return members + rest
    return members + b"," + rest


def _line_index(line: Mapping[str, JsonValue], count: int, items: list[Mapping[str, JsonValue]],
                rows: Rows) -> int | None:
    """The index of the item a failed line is about, or None when it is not one item.
    `items` caches the request's items, parsed from `rows` only when a line has no
    usable ItemNumber."""
    number = line.get("ItemNumber")
    if number is not None and str(number).strip().isdigit():
        index = int(str(number).strip()) - 1
        if 0 <= index < count:
            return index
    if not items and count:
        items.extend(item if isinstance(item, Mapping) else {} for item in rows.parsed())
    original = line.get("OriginalRequest")
    if isinstance(original, Mapping) and original.get("OrderId"):
        matches = [index for index, item in enumerate(items)
                   if item.get("OrderId") == original.get("OrderId")
                   and item.get("UID2") == original.get("UID2")]
        if len(matches) == 1:
            return matches[0]
    if line.get("OrderId"):
        matches = [index for index, item in enumerate(items)
                   if item.get("OrderId") == line.get("OrderId")]
        if len(matches) == 1:
            return matches[0]
    return None


def _message(body: JsonValue) -> str:
    if isinstance(body, Mapping):
        for key in ("Message", "message", "error"):
            if body.get(key):
                return scrub(str(body[key]))[:300]
        return scrub(str(dict(body)))[:300]
    if body in (None, ""):
        return "no message"
    return scrub(str(body))[:300]
