"""Pacing: spreading requests out so a platform's rate limits are never reached.

A platform states a limit as "N requests in W seconds" (Klaviyo: 10 a second
burst and 150 a minute steady, each counted in fixed windows). `TokenBucket`
holds N tokens for it: a request takes one, and that token comes back W
seconds (plus a margin) after the request went. So no stretch of W seconds
ever holds more than N requests, wherever the platform's windows start: a
fixed window, a sliding one or a bucket of the platform's own all let them
through. A bucket refilled steadily at N/W would not: full at the start of a
fixed window and refilled during it, it lets nearly 2N requests into one.

The margin is for the time between taking a token and the request reaching
the platform, which varies (threads, the network): a window is counted from
the platform's side.

`Pacer` paces one endpoint under several limits: each request takes a token
from every bucket at the same instant, the earliest at which all of them have
one. It is shared by every sender thread; callers are served in the order
they ask (no reservation is earlier than the one before it), and each sleeps
outside the lock until its own time comes. The clock and the sleep are
injected: `reserve` only does the bookkeeping, `acquire` reserves and sleeps.

A platform that answers 429 anyway (Klaviyo counts per account, and other
clients of the account spend the same quota) says how long to keep quiet:
`hold_off` makes every reservation from then on start after that, so every
thread waits it out, not only the one that met the 429. Klaviyo calls
`acquire` and `hold_off` from `shipper.retry`'s attempt hooks, so a retry
takes its token like a first attempt.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NEVER_USED = float("-inf")


@dataclass(frozen=True)
class Limit:
    """At most `requests` requests in any `seconds` seconds."""

    requests: int
    seconds: float

    def __post_init__(self) -> None:
        if self.requests < 1 or not self.seconds > 0:
            raise ValueError(f"a rate limit needs at least 1 request in more than 0 s, "
                             f"not {self.requests} in {self.seconds} s")

    def __str__(self) -> str:
        return f"{self.requests} per {self.seconds:g} s"


class TokenBucket:
    """`limit.requests` tokens, each back `limit.seconds + margin` after it was taken.

    Not thread-safe on its own: a `Pacer` holds the lock."""

    def __init__(self, limit: Limit, margin: float = 0.0) -> None:
        if margin < 0:
            raise ValueError(f"the margin must not be negative, not {margin}")
        self.limit = limit
        self.refill_after = limit.seconds + margin
        # When each of the last N tokens was taken, oldest first (times only grow).
        self._taken: deque[float] = deque(maxlen=limit.requests)

    def next_token(self) -> float:
        """When a token is free: at once while fewer than N were ever taken, else when
        the oldest of the last N comes back."""
        if len(self._taken) < self.limit.requests:
            return NEVER_USED
        return self._taken[0] + self.refill_after

    def take(self, at: float) -> None:
        self._taken.append(at)


class Pacer:
    """One endpoint's buckets, shared by every thread that sends to it."""

    def __init__(self, limits: Sequence[Limit], *, margin: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.buckets = [TokenBucket(limit, margin) for limit in limits]
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last = NEVER_USED
        # What pacing cost, for a summary: requests that had to wait, and how long in all.
        self.requests = 0
        self.delayed = 0
        self.waited = 0.0
        # 429s that held every thread off (`hold_off`).
        self.held_off = 0

    def reserve(self) -> tuple[float, float]:
        """(now, when the caller's request may go), the latter reserved in every bucket."""
        with self._lock:
            now = self._clock()
            at = max(now, self._last, *(bucket.next_token() for bucket in self.buckets))
            for bucket in self.buckets:
                bucket.take(at)
            self._last = at
            self.requests += 1
            if at > now:
                self.delayed += 1
                self.waited += at - now
            return now, at

    def acquire(self) -> float:
        """Wait until the next request may go; returns the seconds waited."""
        now, at = self.reserve()
        if at <= now:
            return 0.0
        self._sleep(at - now)
        return at - now

    def hold_off(self, seconds: float) -> None:
        """The platform asked for `seconds` of quiet (a 429's Retry-After): no request
        reserved from now on goes before then, whichever thread asks."""
        with self._lock:
            self._last = max(self._last, self._clock() + seconds)
            self.held_off += 1

    def describe(self) -> str:
        return ", ".join(str(bucket.limit) for bucket in self.buckets)


class EndpointPacers:
    """A `Pacer` per endpoint, each under the same limits (Klaviyo states the same two for
    every endpoint of a job, each counted on its own), made on first use."""

    def __init__(self, limits: Sequence[Limit], *, margin: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limits = tuple(limits)
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.pacers: dict[str, Pacer] = {}

    def pacer(self, endpoint: str) -> Pacer:
        with self._lock:
            pacer = self.pacers.get(endpoint)
            if pacer is None:
                pacer = self.pacers[endpoint] = Pacer(self.limits, margin=self.margin,
                                                      clock=self._clock, sleep=self._sleep)
            return pacer

    def acquire(self, endpoint: str) -> float:
        """Wait until the next request to `endpoint` may go; returns the seconds waited."""
        return self.pacer(endpoint).acquire()

    def hold_off(self, endpoint: str, seconds: float) -> None:
        """No request to `endpoint` goes in the next `seconds` (`Pacer.hold_off`)."""
        self.pacer(endpoint).hold_off(seconds)

    def summary(self) -> list[str]:
        """One line per endpoint whose requests had to wait."""
        return [f"{pacer.delayed} of {pacer.requests} requests to {endpoint} waited "
                f"{pacer.waited:.1f} s in all ({pacer.describe()})"
                + (f", {pacer.held_off} time(s) held off by a 429" if pacer.held_off else "")
                for endpoint, pacer in self.pacers.items() if pacer.delayed or pacer.held_off]
