"""What a destination module provides, and the registry it joins.

The mart decides everything about a row: the shipper reads `delivery_key` and
`payload` (the JSON object the platform receives, built in SQL) and sends it.
A REST destination module (a `RestDestination`, `shipper.destinations.rest`)
knows only its platform's side of that: the envelope a batch of payloads
travels in (URL, headers, auth, the wrapper object), its limits, and how an
answer becomes a verdict per row, in the types defined here. Retries, rate
limits, threads, the ledger and the outbox live in `shipper.http` and
`shipper.delivery`.

Adding a platform means one module in this package that defines a subclass
and decorates it with `@register`; `shipper.destinations` imports every module
of the package, so nothing else has to change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias

from shipper.jsontypes import JsonValue
from shipper.settings import DestinationSettings, secrets_from_env

if TYPE_CHECKING:
    from shipper.hooks import Hooks
    from shipper.ledger import Ledger

_REGISTRY: dict[str, type[Destination]] = {}

SECONDS_PER_DAY = 86_400

# A payload as read from the mart: the JSON text's UTF-8 bytes, usually a view into
# the Arrow buffer it was read into (no copy per event).
Payload = bytes | memoryview


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

    Credentials go in `headers` or `params` only, never in `body`: the dry run
    writes `body` to the outbox and logs never print the other two.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    params: Mapping[str, str] = field(default_factory=dict)


class _Payloads:
    """Marks where a batch's payloads go in an envelope (see `envelope`)."""

    def __repr__(self) -> str:
        return "PAYLOADS"


PAYLOADS = _Payloads()

# An envelope's template (see `envelope`): JSON values, with PAYLOADS where the batch's
# payloads go.
Template: TypeAlias = (
    None | bool | int | float | str | _Payloads
    | list["Template"] | tuple["Template", ...] | Mapping[str, "Template"]
)

# Built once: json.dumps with options builds a new encoder per call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def envelope(template: Template, payloads: Sequence[Payload]) -> bytes:
    """The request body: `template` as compact JSON, with the JSON array of `payloads`
    (each already JSON text, written byte for byte) where `PAYLOADS` stands.

    `{"data": PAYLOADS, "test_event_code": "T1"}` with two payloads gives
    `{"data":[{...},{...}],"test_event_code":"T1"}`. The marker is an object, not a
    string, so no value of the template or of a payload can be mistaken for it.
    """
    parts: list[Payload] = []
    _encode(template, payloads, parts)
    return b"".join(parts)


def _encode(value: Template, payloads: Sequence[Payload], parts: list[Payload]) -> None:
    if value is PAYLOADS:
        parts.append(b"[")
        parts.append(b",".join(payloads))
        parts.append(b"]")
    elif isinstance(value, Mapping):
        parts.append(b"{")
        for index, (key, member) in enumerate(value.items()):
            if index:
                parts.append(b",")
            parts.append(_JSON.encode(str(key)).encode())
            parts.append(b":")
            _encode(member, payloads, parts)
        parts.append(b"}")
    elif isinstance(value, (list, tuple)):
        parts.append(b"[")
        for index, member in enumerate(value):
            if index:
                parts.append(b",")
            _encode(member, payloads, parts)
        parts.append(b"]")
    else:
        parts.append(_JSON.encode(value).encode())


@dataclass
class Rows:
    """Rows on their way, column by column: a read batch of pending rows, or the rows
    of one request. `extra` holds the module's `extra_columns`, when it has any."""

    keys: list[str] = field(default_factory=list)
    payloads: list[Payload] = field(default_factory=list)
    # The mart's payload fingerprint where the row has one (profiles), else None until
    # something needs it (a rejected event, a prepare step that rewrites payloads).
    fingerprints: list[str | None] = field(default_factory=list)
    # Mart values, of whatever SQL type the module's column has (`to_pylist`).
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def part(self, start: int, stop: int) -> Rows:
        return Rows(self.keys[start:stop], self.payloads[start:stop],
                    self.fingerprints[start:stop],
                    {name: values[start:stop] for name, values in self.extra.items()})

    def take(self, indices: Sequence[int]) -> Rows:
        return Rows([self.keys[i] for i in indices], [self.payloads[i] for i in indices],
                    [self.fingerprints[i] for i in indices],
                    {name: [values[i] for i in indices] for name, values in self.extra.items()})

    def parsed(self) -> list[JsonValue]:
        """The payloads as Python values, for a module that reads into its events (to
        place a per-row error); the hot path never calls this."""
        return [json.loads(bytes(payload)) for payload in self.payloads]


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
      reject_batch  the platform refused the whole batch, in its own error envelope,
                    because of some event(s): the delivery loop splits the batch to
                    find them, and an event refused alone is rejected;
      too_large     the request was too large (HTTP 413): the loop splits it, and a
                    single event still too large is failed (sent again next run),
                    since nothing says the platform refused it;
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
    # What the module's follow_up_request needs (Klaviyo: the job); only it reads it.
    follow_up: object = None
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
    def too_large(cls, reason: str) -> Verdict:
        return cls("too_large", reason)

    @classmethod
    def fatal(cls, reason: str) -> Verdict:
        return cls("fatal", reason)

    @classmethod
    def pending(cls, follow_up: object, wait: float = 0.0, reason: str | None = None) -> Verdict:
        return cls("pending", reason, follow_up=follow_up, wait=wait)


class PrepareError(Exception):
    """A destination's prepare step cannot go on (an identity service refused or gave up):
    the destination stops and its unsent rows wait for the next run."""


@dataclass(frozen=True)
class PrepareContext:
    """What a prepare step may use (`RestDestination.open_prepare`)."""

    ledger: Ledger  # a step may keep a cache table in it
    run_id: str
    dry_run: bool
    outbox_dir: Path  # <outbox>/<destination>: where a dry run writes what it would send
    hooks: Hooks  # clock, sleep, wallclock, rng for retries


class RequestCheck(Protocol):
    """What asking a platform about the requests it processes after answering found
    (`Destination.refresh_request_status`)."""

    @property
    def problem(self) -> str | None: ...

    def describe(self, name: str) -> str: ...


class Destination:
    """What every destination has, REST or file. Subclass RestDestination
    (`shipper.destinations.rest`) or FileDestination (`shipper.files.destination`),
    fill the class attributes, `@register`.

    What the CLI asks of every destination, and nothing more:
      credentials_from_env     its credentials, or None when they are not all set;
      credential_hint          what to set, for a message;
      required_settings        what a live send needs;
      follows_requests /       whether the platform processes requests after answering,
      refresh_request_status   and asking it how (`ship status --refresh`);
      close                    release what it holds (token sessions).
    How a destination's rows travel (HTTP or files) is its delivery loop's business
    (`shipper.loops` picks the loop by the destination's base class).
    """

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
    # Mart columns the shipper reads; `delivery_key` first.
    columns: ClassVar[tuple[str, ...]]

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.credentials = dict(credentials or {})
        self.now = now

    @property
    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/")

    # True when the platform processes requests after answering them and
    # `refresh_request_status` asks it how (Google Data Manager).
    follows_requests: ClassVar[bool] = False

    @classmethod
    def credential_hint(cls) -> str:
        return " and ".join(cls.credential_env)

    @classmethod
    def credentials_from_env(cls, settings: DestinationSettings,
                             env: Mapping[str, str]) -> dict[str, str] | None:
        """The credentials a live send needs, from `env`, or None when any is missing.
        By default every variable of `credential_env`; a module whose credentials come
        in more than one form overrides this."""
        return secrets_from_env(cls.credential_env, env)

    def refresh_request_status(self, ledger: Ledger, hooks: Hooks) -> RequestCheck:
        """Ask the platform how it processed the requests that have no final status yet,
        and record it; only where `follows_requests`."""
        raise NotImplementedError(f"{self.name} has no requests processed after the answer")

    def close(self) -> None:
        """Release what the destination holds once it is done (token sessions)."""


EVENTS = "events"
PROFILES = "profiles"


def not_the_platforms(title: str, status: int, body: JsonValue) -> Verdict:
    """An answer without the platform's own success or error body (a proxy's HTML page,
    an empty or cut-off body): nothing says what happened to the events.

    A 2xx is retried (and, should it persist, the rows fail and go out again next
    run: never delivered); a 413 splits the batch; any other 4xx stops the
    destination with the rows kept, since every batch would meet the same.
    """
    what = f"HTTP {status} from {title} without {title}'s own body ({describe_body(body)})"
    if 200 <= status < 300 or status == 429 or status >= 500:
        return Verdict.retry(what)
    if status == 413:
        return Verdict.too_large(what)
    return Verdict.fatal(f"{what}: check base_url, and any proxy between here and {title}")


def describe_body(body: JsonValue) -> str:
    """A few words on an answer's body, for a reason."""
    if body is None:
        return "an empty body"
    if isinstance(body, str):
        text = " ".join(body.split())
        return "a body that is not JSON: " + (text[:80] + "..." if len(text) > 80 else text) \
            if text else "a blank body"
    return "a JSON body of another shape"


def json_error_field(body: JsonValue, *path: str) -> JsonValue:
    """body[path0][path1]... or None when the body is not shaped that way."""
    current = body
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current
