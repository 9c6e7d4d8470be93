"""One retrying HTTP session per destination.

`RetryingSession.send` sends one request until it gets an answer that is not
transient, or until the batch's budget (`give_up_after` seconds or
`max_attempts`) runs out. Transient means: a timeout, a dropped or refused
connection, HTTP 429 or 5xx, or a response the destination's `parse_response`
calls retryable (Meta's throttling codes inside a 400, TikTok's inside a 200).

Waits follow exponential backoff with full jitter (a uniform draw between 0
and min(backoff_max, backoff_base * 2**retry)), except when the server sends
`Retry-After` (seconds or an HTTP date): then exactly that long. A Retry-After
beyond the remaining budget gives up at once rather than sleeping in vain.

The clock, the sleep and the random source are injected so tests can assert
the waits without waiting. TLS verification is always on: nothing here turns
certificate checks off (a private CA can be given with REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import urllib3
from requests.adapters import HTTPAdapter

from shipper import __version__
from shipper.destinations.base import Request
from shipper.redact import get_logger, guard_third_party_loggers, scrub
from shipper.settings import DestinationSettings

log = get_logger(__name__)
guard_third_party_loggers()

# No platform's answer to a batch comes near this; a larger one is not the platform's.
MAX_RESPONSE_BYTES = 16 * 2**20

USER_AGENT = f"offline-conversions-shipper/{__version__} python-requests/{requests.__version__}"

# Raised for problems no retry can fix: a certificate that does not verify, a malformed URL.
_NOT_RETRYABLE = (
    requests.exceptions.SSLError,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


class Interpretation(Protocol):
    """What a destination's parse_response returns, as far as retrying is concerned."""

    @property
    def retryable(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class RetryPolicy:
    give_up_after: float
    max_attempts: int
    backoff_base: float
    backoff_max: float

    @classmethod
    def from_settings(cls, settings: DestinationSettings) -> RetryPolicy:
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


@dataclass(frozen=True)
class SendResult:
    """The final answer for one batch: a verdict, or why there is none."""

    verdict: Any | None
    attempts: int
    # Set when there is no verdict: "gave_up" (budget spent; retry next run)
    # or "fatal" (no retry can help: TLS, URL).
    failure: str | None = None
    failure_reason: str | None = None


class RateLimiter:
    """Spaces requests at most `per_second` apart across every thread of a destination."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


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


def wait_from_headers(headers: Any, now: float) -> float | None:
    """The wait a response asks for: `Retry-After`, else the rate-limit headers
    some platforms send instead (Braze: `X-RateLimit-Reset`, a unix time)."""
    wait = parse_retry_after(headers.get("Retry-After"), now)
    if wait is None:
        wait = parse_retry_after(headers.get("X-RateLimit-Retry-After"), now)
    if wait is None:
        reset = (headers.get("X-RateLimit-Reset") or "").strip()
        if reset.isdigit() and int(reset) > 1_000_000_000:
            wait = max(0.0, int(reset) - now)
    return wait


class RetryingSession:
    """A pooled `requests.Session` with a default timeout, a User-Agent and retries."""

    def __init__(
        self,
        name: str,
        *,
        policy: RetryPolicy,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 4,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wallclock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.timeout = (connect_timeout, read_timeout)
        # One attempt, headers and body, ends by then whatever the server does.
        self.deadline = connect_timeout + read_timeout
        self.rate_limiter = rate_limiter
        self._clock = clock
        self._sleep = sleep
        self._wallclock = wallclock
        self._rng = rng or random.Random()
        self._session = requests.Session()
        # Our own loop retries; urllib3's must not (it would retry POSTs behind our back).
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.verify = True

    @classmethod
    def for_destination(cls, name: str, settings: DestinationSettings, **injected: Any,
                        ) -> RetryingSession:
        clock = injected.get("clock", time.monotonic)
        sleep = injected.get("sleep", time.sleep)
        limiter = None
        if settings.requests_per_second > 0:
            limiter = RateLimiter(settings.requests_per_second, clock=clock, sleep=sleep)
        return cls(
            name,
            policy=RetryPolicy.from_settings(settings),
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.timeout_seconds,
            pool_size=settings.concurrency,
            rate_limiter=limiter,
            **injected,
        )

    def close(self) -> None:
        self._session.close()

    def send(self, request: Request,
             interpret: Callable[[int, Any], Interpretation]) -> SendResult:
        """Send `request` until `interpret` gives a non-retryable answer or the budget is spent."""
        body = request.body
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            retry_after: float | None = None
            try:
                response = self._session.request(
                    request.method, request.url, params=dict(request.params) or None,
                    headers=dict(request.headers), data=body, timeout=self.timeout,
                    stream=True,
                )
                try:
                    status = response.status_code
                    payload = _parse_body(response, _read_body(response, self.deadline))
                finally:
                    response.close()
            except _NOT_RETRYABLE as exc:
                return SendResult(None, attempt, "fatal", scrub(f"{type(exc).__name__}: {exc}"))
            except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
                reason = f"no response within {self.timeout[1]:g} s"
            except _BadAnswer as exc:
                reason = str(exc)
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
                reason = scrub(f"connection failed ({type(exc).__name__}: {_short(exc)})")
            else:
                retry_after = wait_from_headers(response.headers, self._wallclock())
                if status == 429 or status >= 500:
                    reason = f"HTTP {status}" + _snippet(payload)
                else:
                    verdict = interpret(status, payload)
                    if not verdict.retryable:
                        return SendResult(verdict, attempt)
                    reason = verdict.reason or f"HTTP {status}"

            elapsed = self._clock() - started
            if attempt >= self.policy.max_attempts:
                return self._give_up(attempt, elapsed, reason)
            if retry_after is not None:
                wait = retry_after
            else:
                wait = self.policy.backoff(attempt, self._rng)
            if elapsed + wait > self.policy.give_up_after:
                return self._give_up(attempt, elapsed, reason, wait)
            log.info("%s: %s; retrying in %.1f s (attempt %d of %d)", self.name, reason, wait,
                     attempt + 1, self.policy.max_attempts)
            self._sleep(wait)

    def _give_up(self, attempts: int, elapsed: float, reason: str,
                 next_wait: float | None = None) -> SendResult:
        detail = f"gave up after {attempts} attempt(s) in {elapsed:.1f} s: {reason}"
        if next_wait is not None:
            detail += f" (next wait {next_wait:.1f} s is past give_up_after)"
        log.warning("%s: %s", self.name, detail)
        return SendResult(None, attempts, "gave_up", scrub(detail))


class _BadAnswer(Exception):
    """An answer too slow or too large to be the platform's (a proxy, a drip)."""


def _read_body(response: requests.Response, seconds: float) -> bytes:
    """The whole body, within `seconds` of now and MAX_RESPONSE_BYTES: a server that
    drips a byte at a time defeats the per-read timeout, and one that sends hundreds
    of megabytes would take that much memory."""
    deadline = time.monotonic() + seconds  # the network's time, never a test's fake clock
    body = bytearray()
    while True:
        chunk = response.raw.read1(65_536, decode_content=True)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            raise _BadAnswer(f"an answer larger than {MAX_RESPONSE_BYTES // 2**20} MB")
        if time.monotonic() > deadline:
            raise _BadAnswer(f"the answer took longer than {seconds:g} s to arrive")


def _parse_body(response: requests.Response, content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content[:1000].decode(response.encoding or "utf-8", errors="replace")


def _snippet(payload: Any) -> str:
    if payload is None:
        return ""
    text = scrub(payload)
    return f" ({text[:200]})"


def _short(exc: BaseException) -> str:
    # urllib3 nests the cause several levels deep; the innermost message is the useful one.
    inner: BaseException = exc
    for _ in range(10):
        if inner.__context__ is None:
            break
        inner = inner.__context__
    text = str(inner) or str(exc)
    return text[:300]
