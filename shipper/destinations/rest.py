"""`RestDestination`: the base class of the destination modules whose rows travel as
HTTP requests, which the REST loop (`shipper.delivery`) ships.

A module subclasses it, fills its class attributes and implements
`build_request` and `parse_response` (and, where the platform needs them, the
follow-up and prepare steps); the REST loop does the rest (`shipper.loops` hands
it every RestDestination).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from shipper.destinations.base import (
    EVENTS,
    SECONDS_PER_DAY,
    Destination,
    Payload,
    PrepareContext,
    Request,
    Rows,
    Verdict,
)
from shipper.jsontypes import JsonValue

if TYPE_CHECKING:
    from shipper.retry import AttemptHooks

__all__ = ["RestDestination"]


class RestDestination(Destination):
    """A destination that receives the mart's payloads over HTTP.

    `kind` decides the ledger policy and the mart's third column:
      events    `event_time` (unix seconds, what the platform ages the event by): a
                key once delivered is never sent again, and a row older than the
                platform's hard limit at send time is recorded `expired`, not sent:
                the `max_event_age_days` setting, or, where the platform's limit
                differs by event (`age_limit_column`), the limit the mart's row
                names;
      profiles  `payload_sha256`: a key is sent again whenever it changes.
    """

    kind: ClassVar[str] = EVENTS
    # A mart column holding each event's own hard age limit in days, decided in SQL
    # (Meta: `max_event_age_days`, 62 for physical_store events and 7 for the others),
    # or None: every event is held to the `max_event_age_days` setting, which also
    # holds a row whose limit is NULL.
    age_limit_column: ClassVar[str | None] = None
    # Mart columns beyond delivery_key, payload and event_time / payload_sha256 that
    # the module's prepare step reads (The Trade Desk: the hashes it maps to UID2s).
    extra_columns: ClassVar[tuple[str, ...]] = ()
    # True when `prepare` rewrites payloads: the loop then fingerprints the mart's
    # payloads first, since the ledger compares fingerprints with the mart's.
    rewrites_payloads: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        third = "event_time" if cls.kind == EVENTS else "payload_sha256"
        age_limit = (cls.age_limit_column,) if cls.age_limit_column else ()
        cls.columns = ("delivery_key", "payload", third, *age_limit, *cls.extra_columns)

    # -- what a module implements ---------------------------------------------------------

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        """One request carrying `payloads` (use `envelope`), credentials outside the body."""
        raise NotImplementedError

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        """Turn the platform's answer (`body` is parsed JSON, or text) into a verdict
        about the rows the request carried."""
        raise NotImplementedError

    # -- asynchronous platforms (a job to poll after the send) ------------------------------

    def follow_up_request(self, follow_up: object, rows: Rows) -> Request:
        """The request that asks about a pending job (`Verdict.pending(follow_up)`)."""
        raise NotImplementedError

    def parse_follow_up(self, status: int, body: JsonValue, follow_up: object,
                        rows: Rows) -> Verdict:
        """Turn the answer to `follow_up_request` into a verdict (or another pending)."""
        raise NotImplementedError

    # -- a step before sending (The Trade Desk maps hashes to UID2s) -------------------------

    def open_prepare(self, context: PrepareContext) -> None:
        """Called once before the mart is read; may raise PrepareError."""

    def prepare(self, rows: Rows) -> list[str | None]:
        """Called with each read batch of rows to send. May rewrite `rows.payloads`;
        returns, per row, None (send it) or why it cannot be sent (recorded as a
        rejection). May raise PrepareError."""
        return [None] * len(rows)

    def close_prepare(self) -> None:
        """Called once after the last batch, whatever happened."""

    def attempt_hooks(self) -> AttemptHooks | None:
        """What the retrying session calls around each attempt of a request
        (shipper.retry: Klaviyo paces every attempt and holds off after a 429); asked
        once the prepare step is open. None: nothing."""
        return None

    # -- overridable helpers ----------------------------------------------------------------

    def request_byte_limit(self) -> int | None:
        """Largest request body the platform takes, in bytes; batches are cut to stay
        under it as well as under batch_size. None: only batch_size counts."""
        return None

    @property
    def max_age_seconds(self) -> int | None:
        """The platform's hard age limit of an event (of one whose row names none, with
        `age_limit_column`), or None (profiles)."""
        if self.kind != EVENTS:
            return None
        return self.settings.max_event_age_days * SECONDS_PER_DAY

    @property
    def expired_reason(self) -> str:
        """Why an expired event was not sent, as the ledger records it."""
        if self.age_limit_column:
            return (f"older than the platform's age limit for this event (the mart's "
                    f"{self.age_limit_column})")
        return f"older than the platform's age limit ({self.settings.max_event_age_days} days)"
