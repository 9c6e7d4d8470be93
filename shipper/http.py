"""One way to build a `requests` session, and one retrying session per destination.

`new_session` is how every HTTP client of the shipper is made (the REST
destinations, the UID2 identity map, Google's token requests): pooled, our
User-Agent, urllib3's own retries off (they would retry POSTs behind our
back), TLS verification always on. Nothing here turns certificate checks off
(a private CA can be given with REQUESTS_CA_BUNDLE).

`RetryingSession.send` sends one request until it gets an answer that is not
transient, or until the batch's budget runs out, under `shipper.retry`'s one
policy (which answers are retried, the waits, the budget). Transient means: a
timeout, a dropped or refused connection, HTTP 429 or 5xx, an answer too slow
or too large to be the platform's, or a response the destination's
`parse_response` calls retryable (Meta's throttling codes inside a 400,
TikTok's inside a 200). `answer` is one attempt and `retrying` the policy's
loop, for a caller whose request changes per attempt (UID2's envelope).

A destination may give the session `AttemptHooks` (Klaviyo's pacing): each
attempt, a retry as much as the first, calls `before_attempt(request)`, and a
429 calls `on_throttled(request, wait)` before the wait. The clock, the sleep
and the random source are injected so tests can assert the waits without
waiting.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, Unpack

import requests
import urllib3
from requests.adapters import HTTPAdapter

from shipper import __version__
from shipper.destinations.base import Request
from shipper.hooks import SessionHooks
from shipper.jsontypes import JsonValue
from shipper.redact import get_logger, guard_third_party_loggers, scrub
from shipper.retry import (
    AttemptHooks,
    GaveUp,
    Retrier,
    Retry,
    RetryPolicy,
    parse_retry_after,
    retryable_status,
    wait_from_headers,
)
from shipper.settings import DestinationSettings

# What other modules and tests import from here; the policy itself is shipper.retry's.
__all__ = [
    "MAX_RESPONSE_BYTES",
    "USER_AGENT",
    "Answer",
    "NoAnswer",
    "RateLimiter",
    "RetryPolicy",
    "RetryingSession",
    "SendResult",
    "new_session",
    "parse_retry_after",
    "wait_from_headers",
]

log = get_logger(__name__)
guard_third_party_loggers()

T = TypeVar("T")

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


def new_session(pool_size: int = 1) -> requests.Session:
    """A `requests.Session` as the shipper uses them: `pool_size` pooled connections per
    host, our User-Agent, no urllib3 retries (the retrying is shipper.retry's), TLS
    verified."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.verify = True
    return session


class Interpretation(Protocol):
    """What a destination's parse_response returns, as far as retrying is concerned."""

    @property
    def retryable(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...


# What `interpret` made of the answer: a destination's Verdict, a StatusAnswer.
VerdictT = TypeVar("VerdictT", bound=Interpretation)


@dataclass(frozen=True)
class SendResult(Generic[VerdictT]):
    """The final answer for one batch: a verdict, or why there is none."""

    verdict: VerdictT | None
    attempts: int
    # Set when there is no verdict: "gave_up" (budget spent; retry next run)
    # or "fatal" (no retry can help: TLS, URL).
    failure: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, its body read whole (within the time and size limits)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    encoding: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def payload(self) -> JsonValue:
        """The body as JSON; the first 1000 bytes as text when it is not JSON; None when
        empty."""
        if not self.content:
            return None
        try:
            return json.loads(self.content)
        except ValueError:
            return self.content[:1000].decode(self.encoding or "utf-8", errors="replace")


class NoAnswer(Exception):
    """An attempt that got no answer: `fatal` when no retry can help (TLS, the URL, a
    header that cannot be built), otherwise transient (timeout, connection)."""

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal


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


class RetryingSession:
    """A pooled session (`new_session`) with a default timeout, retried under the policy."""

    def __init__(
        self,
        name: str,
        *,
        policy: RetryPolicy,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 4,
        rate_limiter: RateLimiter | None = None,
        hooks: AttemptHooks | None = None,
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
        self.wallclock = wallclock
        self.retrier = Retrier(policy, clock=clock, sleep=sleep, rng=rng, hooks=hooks)
        self._session = new_session(pool_size)

    @classmethod
    def for_destination(cls, name: str, settings: DestinationSettings, *,
                        hooks: AttemptHooks | None = None, pool_size: int | None = None,
                        rate_limited: bool = True,
                        **injected: Unpack[SessionHooks]) -> RetryingSession:
        """The session of a destination's settings (policy, timeouts, `concurrency`
        connections, `requests_per_second`), with the hooks and the clocks given."""
        limiter = None
        if rate_limited and settings.requests_per_second > 0:
            limiter = RateLimiter(settings.requests_per_second,
                                  clock=injected.get("clock", time.monotonic),
                                  sleep=injected.get("sleep", time.sleep))
        return cls(
            name,
            policy=RetryPolicy.from_settings(settings),
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.timeout_seconds,
            pool_size=settings.concurrency if pool_size is None else pool_size,
            rate_limiter=limiter,
            hooks=hooks,
            **injected,
        )

    def close(self) -> None:
        self._session.close()

    def send(self, request: Request,
             interpret: Callable[[int, JsonValue], VerdictT]) -> SendResult[VerdictT]:
        """Send `request` until `interpret` gives a non-retryable answer or the budget is spent."""

        def attempt(number: int) -> SendResult[VerdictT] | Retry:
            try:
                answer = self.answer(request)
            except NoAnswer as exc:
                if exc.fatal:
                    return SendResult(None, number, "fatal", exc.reason)
                return Retry(exc.reason)
            status, payload = answer.status, answer.payload()
            asked = self.asked_wait(answer)
            if retryable_status(status):
                return Retry(f"HTTP {status}" + _snippet(payload), asked,
                             throttled=status == 429)
            verdict = interpret(status, payload)
            if not verdict.retryable:
                return SendResult(verdict, number)
            return Retry(verdict.reason or f"HTTP {status}", asked)

        outcome = self.retrying(attempt, subject=request)
        if isinstance(outcome, GaveUp):
            detail = outcome.describe()
            log.warning("%s: %s", self.name, detail)
            return SendResult(None, outcome.attempts, "gave_up", scrub(detail))
        return outcome

    def retrying(self, attempt: Callable[[int], T | Retry], *, subject: Request | None = None
                 ) -> T | GaveUp:
        """`attempt(n)` under the session's policy, hooks and clocks (shipper.retry), each
        retry logged."""
        return self.retrier.run(attempt, subject=subject, on_retry=self._log_retry)

    def answer(self, request: Request) -> Answer:
        """One attempt at `request` (after the rate limiter): its answer, or NoAnswer."""
        if self.rate_limiter is not None:
            self.rate_limiter.acquire()
        try:
            response = self._session.request(
                request.method, request.url, params=dict(request.params) or None,
                headers=dict(request.headers), data=request.body, timeout=self.timeout,
                stream=True,
            )
            try:
                content = _read_body(response, self.deadline)
            finally:
                response.close()
        except _NOT_RETRYABLE as exc:
            raise NoAnswer(scrub(f"{type(exc).__name__}: {exc}"), fatal=True) from None
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
            raise NoAnswer(f"no response within {self.timeout[1]:g} s") from None
        except _BadAnswer as exc:
            raise NoAnswer(str(exc)) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise NoAnswer(scrub(f"connection failed ({type(exc).__name__}: {_short(exc)})")) \
                from None
        return Answer(response.status_code, response.headers, content, response.encoding)

    def asked_wait(self, answer: Answer) -> float | None:
        """The wait `answer` asks for (Retry-After and the like), None when it does not say."""
        return wait_from_headers(answer.headers, self.wallclock())

    def _log_retry(self, retry: Retry, wait: float, attempts: int) -> None:
        log.info("%s: %s; retrying in %.1f s (attempt %d of %d)", self.name, retry.reason,
                 wait, attempts + 1, self.policy.max_attempts)


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


def _snippet(payload: JsonValue) -> str:
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
