"""What a destination module provides, and the registry it joins.

A destination knows its platform and nothing else: which mart columns it
reads, when a row is not sendable, how rows become the platform's events, how
a batch of events becomes one HTTP request, and how a response becomes a
verdict. Retries, rate limits, threads, the ledger and the outbox live in
`shipper.http` and `shipper.delivery`.

Adding a platform means one module in this package that defines a subclass
and decorates it with `@register`; `shipper.destinations` imports every module
of the package, so nothing else has to change.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from shipper.config import DestinationSettings

if TYPE_CHECKING:  # sql.py takes is_sha256_hex from here
    from shipper.destinations.sql import Columns, SqlEvents

_REGISTRY: dict[str, type[Destination]] = {}

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
SECONDS_PER_DAY = 86_400


def register(cls: type[Destination]) -> type[Destination]:
    """Class decorator: make a destination available to `ship` under `cls.name`."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"destination {cls.name!r} is already registered by {existing!r}")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget a destination (tests register throwaway ones)."""
    _REGISTRY.pop(name, None)


@dataclass(frozen=True)
class Request:
    """One HTTP request, as the destination wants it sent.

    Credentials go in `headers` or `params` only, never in `json_body`: the
    dry run writes `json_body` to the outbox and logs never print the other two.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    json_body: Any
    params: Mapping[str, str] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        """The exact bytes sent on the wire (and written by the dry run); none for a
        request without a body (json_body None: a GET polling a job)."""
        return b"" if self.json_body is None else encode_body(self.json_body)


# Where encode_body collects the bytes values of the body it is encoding (per thread:
# sender threads encode their bodies at the same time).
_raw_values = threading.local()
# What the encoder writes in place of a bytes value, to be replaced by those bytes: a
# string no JSON text the shipper writes contains (NUL characters are escaped as \u0000).
_RAW_MARK = "\x00raw-json\x00"
_RAW_MARK_ENCODED = json.dumps(_RAW_MARK)


def _encode_default(value: Any) -> Any:
    if isinstance(value, (bytes, memoryview)):
        _raw_values.collected.append(value)
        return _RAW_MARK
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# Built once: json.dumps with options builds a new encoder per call.
_BODY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                              default=_encode_default)


def encode_body(body: Any) -> bytes:
    """The body as compact UTF-8 JSON.

    A `bytes` (or memoryview) value is JSON text already (an event DuckDB built,
    `Destination.sql_events`) and is written as it is. Only those events are bytes: a row-by-row event holding
    bytes (a BLOB column) never gets here, `ledger.fingerprint` refuses it first.
    """
    collected: list[bytes | memoryview] = []
    _raw_values.collected = collected
    try:
        text = _BODY_JSON.encode(body)
    finally:
        _raw_values.collected = None
    if not collected:
        return text.encode()
    parts = text.split(_RAW_MARK_ENCODED)
    if len(parts) != len(collected) + 1:
        raise ValueError("a value of the body is the shipper's own placeholder text")
    pieces: list[bytes | memoryview] = [parts[0].encode()]
    for raw, part in zip(collected, parts[1:], strict=True):
        pieces.append(raw)
        pieces.append(part.encode())
    return b"".join(pieces)


@dataclass(frozen=True)
class RowOutcome:
    """What the platform said about one event of a batch."""

    status: str  # "accepted" | "rejected" | "retryable"
    reason: str | None = None


ACCEPTED = RowOutcome("accepted")


@dataclass(frozen=True)
class Verdict:
    """What a response means for the whole batch.

    kinds:
      rows          per-row outcomes in request order (`rows`);
      retry         transient (throttled, platform hiccup): send the same batch again;
      reject_batch  the platform refused the whole batch because of some event(s):
                    the delivery loop splits the batch to find them;
      fatal         nothing this batch could fix (bad token, unknown dataset):
                    stop the destination, keep the rows for the next run;
      pending       the platform took the batch as an asynchronous job: after `wait`
                    seconds the delivery loop sends `follow_up_request(follow_up)` and
                    reads the answer with `parse_follow_up`, until a final verdict.

    An accepted RowOutcome may carry a reason: the platform's id for the request or
    job (Google's requestId, Klaviyo's job id), kept with the delivered row.
    """

    kind: str
    reason: str | None = None
    rows: tuple[RowOutcome, ...] = ()
    follow_up: Any = None
    wait: float = 0.0

    @property
    def retryable(self) -> bool:
        return self.kind == "retry"

    @classmethod
    def all_accepted(cls, count: int) -> Verdict:
        return cls("rows", rows=(ACCEPTED,) * count)

    @classmethod
    def per_row(cls, outcomes: Sequence[RowOutcome]) -> Verdict:
        return cls("rows", rows=tuple(outcomes))

    @classmethod
    def retry(cls, reason: str) -> Verdict:
        return cls("retry", reason)

    @classmethod
    def reject_batch(cls, reason: str) -> Verdict:
        return cls("reject_batch", reason)

    @classmethod
    def fatal(cls, reason: str) -> Verdict:
        return cls("fatal", reason)

    @classmethod
    def pending(cls, follow_up: Any, wait: float = 0.0, reason: str | None = None) -> Verdict:
        return cls("pending", reason, follow_up=follow_up, wait=wait)


class PrepareError(Exception):
    """A destination's prepare step cannot go on (an identity service refused or gave up):
    the destination stops and its unsent rows wait for the next run."""


@dataclass(frozen=True)
class PrepareContext:
    """What a prepare step may use (`Destination.open_prepare`)."""

    ledger: Any  # shipper.ledger.Ledger: a step may keep a cache table in it
    run_id: str
    dry_run: bool
    outbox_dir: Path  # <outbox>/<destination>: where a dry run writes what it would send
    hooks: Any  # shipper.delivery.Hooks: clock, sleep, wallclock, rng for retries


class Destination:
    """Base class of a destination module. Subclass, fill the class attributes, `@register`."""

    # The name used on the command line, in shipper.toml and as env prefix (`META_`).
    name: ClassVar[str]
    # How people write the platform's name, for messages.
    title: ClassVar[str]
    settings_class: ClassVar[type[DestinationSettings]] = DestinationSettings
    # The platform's maximum events per request; batch_size may not exceed it.
    max_batch_size: ClassVar[int]
    # Environment variables holding the credentials; all must be set to send.
    credential_env: ClassVar[tuple[str, ...]] = ()
    # Settings that must be non-empty for a live send (ids of datasets, pixels ...).
    required_settings: ClassVar[tuple[str, ...]] = ()
    # Mart columns the module reads; `delivery_key` first.
    columns: ClassVar[tuple[str, ...]]
    # Ledger policy. False (events): a key once delivered, or rejected by the platform
    # with the same content, is never sent again. True (profiles): a key is sent again
    # whenever the fingerprint of what would be sent differs from the recorded one.
    resend_when_changed: ClassVar[bool] = False

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.credentials = dict(credentials or {})
        self.now = now

    # -- the four things a module must implement ---------------------------------------

    def validate(self, row: Mapping[str, Any]) -> str | None:
        """Why `row` cannot be sent (a short, stable reason), or None when it can."""
        raise NotImplementedError

    def to_wire(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The event exactly as it goes in the request body (also what is fingerprinted)."""
        raise NotImplementedError

    def build_request(self, events: Sequence[Mapping[str, Any]]) -> Request:
        """One request carrying `events` (outputs of `to_wire`), credentials outside the body."""
        raise NotImplementedError

    def parse_response(self, status: int, body: Any,
                       events: Sequence[Mapping[str, Any]]) -> Verdict:
        """Turn the platform's answer (`body` is parsed JSON, or text) into a verdict."""
        raise NotImplementedError

    # -- the vectorised path (optional) ----------------------------------------------------

    def sql_events(self, columns: Columns) -> SqlEvents | None:
        """`validate` and `to_wire` as DuckDB SQL expressions over the mart's columns
        (shipper.destinations.sql), so a whole read batch is checked and built at once.
        None (the default): rows go through `validate` and `to_wire` one by one. A
        destination with a `prepare` step must return None: prepare works on row dicts."""
        return None

    # -- asynchronous platforms (a job to poll after the send) ------------------------------

    def follow_up_request(self, follow_up: Any, events: Sequence[Mapping[str, Any]]) -> Request:
        """The request that asks about a pending job (`Verdict.pending(follow_up)`)."""
        raise NotImplementedError

    def parse_follow_up(self, status: int, body: Any, follow_up: Any,
                        events: Sequence[Mapping[str, Any]]) -> Verdict:
        """Turn the answer to `follow_up_request` into a verdict (or another pending)."""
        raise NotImplementedError

    # -- a step before validation (The Trade Desk maps hashes to UID2s) ----------------------

    def open_prepare(self, context: PrepareContext) -> None:
        """Called once before the mart is read; may raise PrepareError."""

    def prepare(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Called with each read batch of pending rows before they are skipped, validated
        and fingerprinted; may add fields to_wire and validate read. May raise PrepareError."""
        return rows

    def close_prepare(self) -> None:
        """Called once after the last batch, whatever happened."""

    # -- overridable helpers ----------------------------------------------------------------

    def request_byte_limit(self) -> int | None:
        """Largest request body the platform takes, in bytes; batches are cut to stay
        under it as well as under batch_size. None: only batch_size counts."""
        return None

    def outbox_body(self, request: Request) -> Any:
        """What the dry run writes: the body as sent. Override if a platform puts
        credentials in the body."""
        return request.json_body

    @property
    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/")

    @classmethod
    def credential_hint(cls) -> str:
        return " and ".join(cls.credential_env)


# -- validation helpers shared by modules ----------------------------------------------------


def is_sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and _SHA256_HEX.fullmatch(value) is not None


def check_hashes(row: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """Reason when a present identifier is not a 64-character lower-case hex digest."""
    for key in keys:
        value = row.get(key)
        if value is not None and not is_sha256_hex(value):
            return f"{key} is not a 64-character lower-case hex SHA-256"
    return None


def check_event_time(value: Any, now: float, max_age_days: int) -> str | None:
    """Reason when `value` (unix seconds) is missing, in the future, or too old."""
    if value is None:
        return "event_time is missing"
    if isinstance(value, bool) or not isinstance(value, int):
        return "event_time is not unix seconds"
    if value > now:
        return "event_time is in the future"
    if value < now - max_age_days * SECONDS_PER_DAY:
        return f"event_time is older than {max_age_days} days"
    return None


def check_money(value: Any, currency: Any) -> str | None:
    if value is None:
        return "value is missing"
    if currency is None or currency == "":
        return "currency is missing"
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return "currency is not a 3-letter upper-case ISO 4217 code"
    return None


def check_event(row: Mapping[str, Any], *, required: Sequence[str], now: float,
                max_age_days: int, identifier_keys: Sequence[str],
                purchase: tuple[str, str] | None = None,
                json_array: str | None = None) -> str | None:
    """The checks event destinations share, in order: the first failure's reason.

    `purchase` is (event-name column, purchase event name): a purchase, or any
    row with a value, needs value and currency. `json_array` names a column
    that must hold a JSON array.
    """
    for key in required:
        if not row.get(key):
            return f"{key} is missing"
    reason = check_event_time(row.get("event_time"), now, max_age_days)
    if reason:
        return reason
    if purchase is not None:
        name_column, purchase_name = purchase
        if row.get(name_column) == purchase_name or row.get("value") is not None:
            reason = check_money(row.get("value"), row.get("currency"))
            if reason:
                return reason
    if all(row.get(key) is None for key in identifier_keys):
        return "no user data (every identifier is NULL)"
    reason = check_hashes(row, identifier_keys)
    if reason:
        return reason
    if json_array is not None and parse_json_array(row.get(json_array)) is None:
        return f"{json_array} is not a JSON array"
    return None


def parse_json_array(text: Any) -> list[Any] | None:
    """The JSON array held in a varchar mart column, or None when it is not one."""
    if text is None:
        return []
    if isinstance(text, list):  # Parquet exports may hold a real list
        return text
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def money(value: Any) -> float | None:
    """A decimal from the mart as a JSON number (repr of a float prints 12.34 as 12.34)."""
    return None if value is None else float(value)


def json_error_field(body: Any, *path: str) -> Any:
    """body[path0][path1]... or None when the body is not shaped that way."""
    current = body
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def drop_none(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}
