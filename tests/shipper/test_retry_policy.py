"""shipper.retry on its own: the waits, the budget, the attempts and the hooks, on a fake
clock and a seeded random source; nothing is sent and nothing sleeps."""

from __future__ import annotations

import email.utils
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.retry import (
    GaveUp,
    Retrier,
    Retry,
    RetryPolicy,
    parse_retry_after,
    retryable_status,
    wait_from_headers,
)
from shipper.settings import DestinationSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Recorder:
    """AttemptHooks that write down what they were called with, and when."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, Any, float]] = []

    def before_attempt(self, subject: Any) -> None:
        self.calls.append(("before_attempt", subject, self.clock.now))

    def on_throttled(self, subject: Any, wait: float) -> None:
        self.calls.append(("on_throttled", subject, wait))


def retrier(clock: Clock, policy: RetryPolicy | None = None, **options: Any) -> Retrier:
    return Retrier(policy or RetryPolicy(300.0, 8, 1.0, 60.0), clock=clock.monotonic,
                   sleep=clock.sleep, rng=random.Random(7), **options)


def scripted(clock: Clock, *outcomes: Any, took: float = 0.0):
    """An attempt that returns `outcomes` in turn, each attempt taking `took` seconds."""
    numbers: list[int] = []

    def attempt(number: int) -> Any:
        numbers.append(number)
        clock.now += took
        return outcomes[min(number, len(outcomes)) - 1]

    return attempt, numbers


def test_settings_mean_what_they_say():
    settings = DestinationSettings(give_up_after_seconds=42.0, max_attempts=3,
                                   backoff_base_seconds=0.5, backoff_max_seconds=9.0)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(42.0, 3, 0.5, 9.0)


@given(retry=st.integers(min_value=1, max_value=40), seed=st.integers())
def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling(retry, seed):
    policy = RetryPolicy(give_up_after=300, max_attempts=8, backoff_base=0.5, backoff_max=20)
    assert 0 <= policy.backoff(retry, random.Random(seed)) <= min(20, 0.5 * 2 ** (retry - 1))


def test_backoff_ceilings_double_then_stay_at_the_cap():
    policy = RetryPolicy(300.0, 8, 1.0, 10.0)

    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    assert [policy.backoff(n, Top()) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_the_first_answer_that_is_not_a_retry_is_returned_as_it_is():
    clock = Clock()
    attempt, numbers = scripted(clock, Retry("HTTP 503"), Retry("HTTP 502"), "done")

    assert retrier(clock).run(attempt) == "done"

    assert numbers == [1, 2, 3]
    assert len(clock.waits) == 2
    assert 0 <= clock.waits[0] <= 1.0 and 0 <= clock.waits[1] <= 2.0


def test_a_wait_the_server_asks_for_is_honoured_exactly():
    clock = Clock()
    attempt, _ = scripted(clock, Retry("HTTP 429", wait=17.0), Retry("HTTP 503", wait=0.0), "ok")

    assert retrier(clock).run(attempt) == "ok"

    assert clock.waits == [17.0, 0.0]


def test_max_attempts_counts_the_first_attempt():
    clock = Clock()
    attempt, numbers = scripted(clock, Retry("HTTP 500"))

    outcome = retrier(clock, RetryPolicy(300.0, 3, 1.0, 60.0)).run(attempt)

    assert isinstance(outcome, GaveUp)
    assert (outcome.attempts, outcome.reason, outcome.next_wait) == (3, "HTTP 500", None)
    assert numbers == [1, 2, 3] and len(clock.waits) == 2
    assert outcome.describe().startswith("gave up after 3 attempt(s) in ")


def test_a_wait_that_would_end_past_the_budget_gives_up_without_sleeping():
    clock = Clock()
    attempt, numbers = scripted(clock, Retry("HTTP 429", wait=3600.0))

    outcome = retrier(clock, RetryPolicy(60.0, 8, 1.0, 60.0)).run(attempt)

    assert isinstance(outcome, GaveUp)
    assert numbers == [1] and clock.waits == []
    assert outcome.next_wait == 3600.0
    assert "(next wait 3600.0 s is past give_up_after)" in outcome.describe()


def test_the_budget_counts_the_attempts_time_and_the_waits():
    clock = Clock()
    attempt, numbers = scripted(clock, Retry("timeout", wait=4.0), took=3.0)

    outcome = retrier(clock, RetryPolicy(20.0, 100, 1.0, 60.0)).run(attempt)

    # 3 s, wait 4, 3 s (10), wait 4, 3 s (17): a wait of 4 would end at 21, past 20.
    assert isinstance(outcome, GaveUp)
    assert numbers == [1, 2, 3] and clock.waits == [4.0, 4.0]
    assert outcome.elapsed == 17.0


def test_an_upload_is_retried_while_the_budget_is_not_spent():
    clock = Clock()
    attempt, numbers = scripted(clock, Retry("broken pipe", wait=4.0), took=3.0)

    outcome = retrier(clock, RetryPolicy(20.0, 100, 1.0, 60.0),
                      wait_may_end_past_budget=True).run(attempt)

    # Failures at 3, 10, 17 (< 20: a wait that ends past it is still taken), 24 (spent).
    assert isinstance(outcome, GaveUp)
    assert numbers == [1, 2, 3, 4] and clock.waits == [4.0, 4.0, 4.0]


def test_an_exception_ends_the_loop_at_once():
    clock = Clock()

    def attempt(number: int) -> Any:
        raise ValueError("no retry can help")

    with pytest.raises(ValueError):
        retrier(clock).run(attempt)
    assert clock.waits == []


def test_before_attempt_runs_before_every_attempt_the_retries_too():
    clock = Clock()
    hooks = Recorder(clock)
    attempt, _ = scripted(clock, Retry("HTTP 503", wait=2.0), Retry("HTTP 503", wait=3.0), "ok")

    assert retrier(clock, hooks=hooks).run(attempt, subject="request") == "ok"

    assert hooks.calls == [("before_attempt", "request", 100.0),
                           ("before_attempt", "request", 102.0),
                           ("before_attempt", "request", 105.0)]


def test_on_throttled_gets_the_wait_before_it_is_slept_and_only_for_a_throttle():
    clock = Clock()
    hooks = Recorder(clock)
    attempt, _ = scripted(clock, Retry("HTTP 429", wait=17.0, throttled=True),
                          Retry("HTTP 503", wait=1.0), "ok")

    assert retrier(clock, hooks=hooks).run(attempt, subject="create") == "ok"

    assert [call for call in hooks.calls if call[0] == "on_throttled"] == [
        ("on_throttled", "create", 17.0)]
    # Called before the wait: the second attempt comes 17 s after the hook.
    assert hooks.calls[1] == ("on_throttled", "create", 17.0)
    assert hooks.calls[2] == ("before_attempt", "create", 117.0)


def test_a_throttle_the_policy_gives_up_on_holds_nobody_off():
    clock = Clock()
    hooks = Recorder(clock)
    attempt, _ = scripted(clock, Retry("HTTP 429", wait=3600.0, throttled=True))

    assert isinstance(retrier(clock, RetryPolicy(60.0, 8, 1.0, 60.0), hooks=hooks)
                      .run(attempt), GaveUp)
    assert [call[0] for call in hooks.calls] == ["before_attempt"]


def test_a_throttle_without_a_wait_holds_off_for_the_backoff():
    clock = Clock()
    hooks = Recorder(clock)
    attempt, _ = scripted(clock, Retry("HTTP 429", throttled=True), "ok")

    retrier(clock, hooks=hooks).run(attempt)

    ((_, _, held),) = [call for call in hooks.calls if call[0] == "on_throttled"]
    assert clock.waits == [held] and 0 <= held <= 1.0


def test_on_retry_sees_each_wait_and_the_attempt_that_failed():
    clock = Clock()
    seen: list[tuple[str, float, int]] = []
    attempt, _ = scripted(clock, Retry("a", wait=1.0), Retry("b", wait=2.0), "ok")

    retrier(clock).run(attempt, on_retry=lambda retry, wait, n: seen.append(
        (retry.reason, wait, n)))

    assert seen == [("a", 1.0, 1), ("b", 2.0, 2)]


def test_a_seeded_random_source_gives_the_same_waits():
    def waits(seed: int) -> list[float]:
        clock = Clock()
        attempt, _ = scripted(clock, Retry("HTTP 500"))
        Retrier(RetryPolicy(300.0, 6, 1.0, 60.0), clock=clock.monotonic, sleep=clock.sleep,
                rng=random.Random(seed)).run(attempt)
        return clock.waits

    assert waits(3) == waits(3) and len(waits(3)) == 5


# -- what is retried, and the waits servers ask for ----------------------------------------


@pytest.mark.parametrize(("status", "retried"), [
    (200, False), (400, False), (401, False), (404, False), (413, False),
    (429, True), (500, True), (502, True), (503, True), (504, True),
])
def test_429_and_5xx_are_retried_whoever_answers(status, retried):
    assert retryable_status(status) is retried


@pytest.mark.parametrize(("header", "expected"), [
    ("7", 7.0), (" 0 ", 0.0), ("", None), (None, None), ("soon", None), ("-5", None),
])
def test_retry_after_in_seconds(header, expected):
    assert parse_retry_after(header, now=1_700_000_000) == expected


def test_retry_after_as_an_http_date_never_negative():
    now = 1_700_000_000
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0


def test_rate_limit_headers_when_there_is_no_retry_after():
    now = 1_800_000_000.0
    assert wait_from_headers({"Retry-After": "7", "X-RateLimit-Reset": "1800000099"}, now) == 7
    assert wait_from_headers({"X-RateLimit-Retry-After": "5"}, now) == 5.0
    assert wait_from_headers({"X-RateLimit-Reset": "1800000012"}, now) == 12.0
    assert wait_from_headers({"X-RateLimit-Reset": "12"}, now) is None  # not a unix time
    assert wait_from_headers({}, now) is None
