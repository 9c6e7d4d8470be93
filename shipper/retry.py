"""The one retry policy: HTTP requests, the UID2 identity map, Google's token
requests (through the HTTP session) and SFTP uploads all retry through it.

What it decides, and nothing else (no network, no logging of its own):

- which answers are worth another attempt: the caller's attempt says so by
  returning `Retry` (HTTP: a timeout, a dropped or refused connection, 429,
  5xx, a destination's own retryable answer; SFTP: a TransportError that is
  not fatal); `retryable_status` is the HTTP part every caller shares;
- how long to wait: what the server asked for (`wait_from_headers`:
  `Retry-After` in seconds or as an HTTP date, `X-RateLimit-Retry-After`, or
  `X-RateLimit-Reset` as a unix time), exactly; otherwise exponential backoff
  with full jitter, uniform in [0, min(backoff_max, backoff_base * 2**(n-1))]
  before retry n;
- when to stop: after `max_attempts` attempts (the first included), or when
  the wait would end past `give_up_after` seconds from the start of the first
  attempt (a Retry-After beyond the budget gives up at once rather than
  sleeping in vain). A file upload (`wait_may_end_past_budget`) is instead
  retried as long as the budget is not spent when it fails: an upload's own
  time dwarfs the waits;
- two hooks around the attempts (`AttemptHooks`): `before_attempt` right
  before every attempt, the first and each retry (Klaviyo takes a pacing token
  there), and `on_throttled` when the server answered "too many requests"
  and a retry will follow after `wait` seconds (Klaviyo holds every thread
  sending to that endpoint off for as long).

The clock, the sleep and the random source are injected, so the waits are
asserted without waiting (tests/shipper/test_retry_policy.py).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RetrySettings(Protocol):
    """The four settings every destination has (shipper.settings.DestinationSettings)."""

    @property
    def give_up_after_seconds(self) -> float: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def backoff_base_seconds(self) -> float: ...

    @property
    def backoff_max_seconds(self) -> float: ...


@dataclass(frozen=True)
class Decision:
    """After a failed attempt: wait `wait` seconds and try again, or give up (`wait` None;
    `past_budget` is then the wait that would have ended past the budget, if that was it)."""

    wait: float | None
    past_budget: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    give_up_after: float
    max_attempts: int
    backoff_base: float
    backoff_max: float

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(
            give_up_after=settings.give_up_after_seconds,
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base_seconds,
            backoff_max=settings.backoff_max_seconds,
        )

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(retry_number - 1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (retry_number - 1)))
        return rng.uniform(0.0, ceiling)

    def next_wait(self, attempts: int, elapsed: float, asked: float | None,
                  rng: random.Random, *, wait_may_end_past_budget: bool = False) -> Decision:
        """What to do after `attempts` failed attempts, `elapsed` seconds after the first
        began, the server having asked for `asked` seconds (None: it did not say)."""
        if attempts >= self.max_attempts:
            return Decision(None)
        if wait_may_end_past_budget and elapsed >= self.give_up_after:
            return Decision(None)
        wait = asked if asked is not None else self.backoff(attempts, rng)
        if not wait_may_end_past_budget and elapsed + wait > self.give_up_after:
            return Decision(None, past_budget=wait)
        return Decision(wait)


@dataclass(frozen=True)
class Retry:
    """An attempt's answer that is worth another attempt."""

    reason: str
    # What the server asked for (Retry-After and the like); None: back off with jitter.
    wait: float | None = None
    # The server said "too many requests" (HTTP 429): `AttemptHooks.on_throttled`.
    throttled: bool = False


@dataclass(frozen=True)
class GaveUp:
    """The budget is spent: `attempts` attempts in `elapsed` seconds, the last for `reason`."""

    attempts: int
    elapsed: float
    reason: str
    # Set when the next wait would have ended past the budget.
    next_wait: float | None = None

    def describe(self) -> str:
        detail = f"gave up after {self.attempts} attempt(s) in {self.elapsed:.1f} s: {self.reason}"
        if self.next_wait is not None:
            detail += f" (next wait {self.next_wait:.1f} s is past give_up_after)"
        return detail


class AttemptHooks(Protocol):
    """What a caller may do around each attempt; `subject` is what is retried (the
    HTTP session passes the request). It stays `Any`: each caller retries its own kind
    of thing, and a hook (Klaviyo's) takes the caller's kind, not any object."""

    def before_attempt(self, subject: Any) -> None: ...

    def on_throttled(self, subject: Any, wait: float) -> None: ...


class Retrier:
    """Runs attempts under a `RetryPolicy`, with the clock, sleep and randomness given."""

    def __init__(self, policy: RetryPolicy, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None,
                 hooks: AttemptHooks | None = None,
                 wait_may_end_past_budget: bool = False) -> None:
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.hooks = hooks
        self.wait_may_end_past_budget = wait_may_end_past_budget

    def run(self, attempt: Callable[[int], T | Retry], *, subject: object = None,
            on_retry: Callable[[Retry, float, int], None] | None = None) -> T | GaveUp:
        """Call `attempt(n)` for n = 1, 2, ... until it returns something else than a
        `Retry` (returned as it is) or the policy gives up (`GaveUp`). An exception from
        `attempt` ends the loop: that is how a caller says no retry can help.
        `on_retry(retry, wait, attempts)` is called before each wait (to log it)."""
        started = self.clock()
        attempts = 0
        while True:
            attempts += 1
            if self.hooks is not None:
                self.hooks.before_attempt(subject)
            outcome = attempt(attempts)
            if not isinstance(outcome, Retry):
                return outcome
            elapsed = self.clock() - started
            decision = self.policy.next_wait(
                attempts, elapsed, outcome.wait, self.rng,
                wait_may_end_past_budget=self.wait_may_end_past_budget)
            if decision.wait is None:
                return GaveUp(attempts, elapsed, outcome.reason, decision.past_budget)
            if outcome.throttled and self.hooks is not None:
                self.hooks.on_throttled(subject, decision.wait)
            if on_retry is not None:
                on_retry(outcome, decision.wait, attempts)
            self.sleep(decision.wait)


def retryable_status(status: int) -> bool:
    """An HTTP status that is retried whoever answered it: 429 and every 5xx."""
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def wait_from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """The wait a response asks for: `Retry-After`, else the rate-limit headers
    some platforms send instead (Braze: `X-RateLimit-Reset`, a unix time).
    `now` is the wall clock (unix seconds)."""
    wait = parse_retry_after(headers.get("Retry-After"), now)
    if wait is None:
        wait = parse_retry_after(headers.get("X-RateLimit-Retry-After"), now)
    if wait is None:
        reset = (headers.get("X-RateLimit-Reset") or "").strip()
        if reset.isdigit() and int(reset) > 1_000_000_000:
            wait = max(0.0, int(reset) - now)
    return wait
