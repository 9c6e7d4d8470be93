"""shipper.pacing: token buckets that keep every window within its limit, on a fake clock."""

from __future__ import annotations

import bisect
import random
import threading

import pytest

from shipper.pacing import EndpointPacers, Limit, Pacer, TokenBucket

KLAVIYO = (Limit(10, 1.0), Limit(150, 60.0))


class Clock:
    """Time that moves only when told to (or when the pacer sleeps)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of `times` inside any [t, t + seconds): what a fixed-window counter,
    wherever its windows start, or a sliding one, would count at worst."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, start + seconds) - index
                for index, start in enumerate(ordered)), default=0)


def test_a_bucket_lets_its_limit_through_then_each_token_comes_back_a_window_later():
    clock = Clock()
    pacer = Pacer([Limit(3, 10.0)], margin=0.5, clock=clock, sleep=clock.sleep)

    times = [pacer.reserve()[1] for _ in range(8)]

    assert times == [0.0, 0.0, 0.0, 10.5, 10.5, 10.5, 21.0, 21.0]


def test_burst_and_steady_limits_pace_a_caller_in_a_hurry():
    clock = Clock()
    pacer = Pacer(KLAVIYO, margin=0.25, clock=clock, sleep=clock.sleep)

    times = [pacer.reserve()[1] for _ in range(400)]

    assert most_in_any_window(times, 1.0) == 10
    assert most_in_any_window(times, 60.0) == 150
    # Ten at once, ten more a burst window (and the margin) later...
    assert times[9] == 0.0 and times[10] == 1.25
    # ... the 151st a steady window (and the margin) after the first, and so on: no
    # sooner, and no later than the limits make it.
    assert times[149] == 14 * 1.25
    assert times[150] == 60.25
    assert times[300] == 120.5
    assert times == sorted(times)


def test_requests_that_come_slowly_never_wait():
    clock = Clock()
    pacer = Pacer(KLAVIYO, margin=0.25, clock=clock, sleep=clock.sleep)

    for _ in range(300):
        assert pacer.acquire() == 0.0
        clock.now += 0.5  # 2 a second: under 10 a second, and 120 a minute

    assert clock.sleeps == []
    assert (pacer.requests, pacer.delayed, pacer.waited) == (300, 0, 0.0)


def test_acquire_sleeps_until_the_reserved_time_and_counts_what_it_cost():
    clock = Clock(1000.0)
    pacer = Pacer([Limit(2, 1.0)], margin=0.25, clock=clock, sleep=clock.sleep)

    waits = [pacer.acquire() for _ in range(5)]

    assert waits == [0.0, 0.0, 1.25, 0.0, 1.25]
    assert clock.sleeps == [1.25, 1.25]
    assert clock.now == 1002.5
    assert (pacer.requests, pacer.delayed, pacer.waited) == (5, 2, 2.5)


@pytest.mark.parametrize("seed", range(5))
def test_any_pattern_of_requests_stays_within_every_window(seed):
    rng = random.Random(seed)
    clock = Clock()
    limits = (Limit(4, 1.0), Limit(20, 10.0))
    pacer = Pacer(limits, margin=0.1, clock=clock, sleep=clock.sleep)
    asked, went = [], []

    for _ in range(500):
        # Bursts and lulls: most requests come at once, some after a pause.
        clock.now += rng.choice([0.0, 0.0, 0.0, rng.uniform(0, 0.5), rng.uniform(0, 15)])
        now, at = pacer.reserve()
        asked.append(now)
        went.append(at)

    for limit in limits:
        assert most_in_any_window(went, limit.seconds) <= limit.requests
    assert all(at >= now for now, at in zip(asked, went, strict=True))
    assert went == sorted(went)


def test_threads_share_the_buckets():
    # Real threads, a clock that never moves and a sleep that returns at once: what is
    # checked is the bookkeeping under the lock, each reservation once.
    limits = [Limit(5, 1.0), Limit(20, 10.0)]
    pacer = Pacer(limits, clock=lambda: 0.0, sleep=lambda _: None)
    went: list[float] = []
    lock = threading.Lock()

    def sender() -> None:
        for _ in range(50):
            _, at = pacer.reserve()
            with lock:
                went.append(at)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most_in_any_window(went, 1.0) == 5
    assert most_in_any_window(went, 10.0) == 20
    # Eight threads get, between them, the times one caller would have got alone.
    alone = Pacer(limits, clock=lambda: 0.0, sleep=lambda _: None)
    assert sorted(went) == [alone.reserve()[1] for _ in range(400)]
    assert max(went) == 193.0  # 20 steady windows of 10 s, each 4 bursts of 5 a second apart


def test_each_endpoint_has_its_own_buckets():
    clock = Clock()
    pacers = EndpointPacers([Limit(1, 5.0)], clock=clock, sleep=clock.sleep)

    assert [pacers.acquire("create"), pacers.acquire("read"), pacers.acquire("create")] == [
        0.0, 0.0, 5.0]
    assert pacers.summary() == ["1 of 2 requests to create waited 5.0 s in all (1 per 5 s)"]


def test_a_hold_off_keeps_every_caller_back_then_pacing_goes_on():
    # A 429 at 100 s asked for 17 s of quiet: whoever asks next (any thread) waits for it.
    clock = Clock(now=100.0)
    pacer = Pacer(KLAVIYO, clock=clock, sleep=clock.sleep)
    assert pacer.acquire() == 0.0

    pacer.hold_off(17.0)

    assert [pacer.reserve()[1] for _ in range(3)] == [117.0, 117.0, 117.0]
    # The thread that met the 429 slept its 17 s itself: it then goes at once.
    clock.now = 117.0
    assert pacer.acquire() == 0.0
    # Another 429 holds off from when it came (117 + 1); one asking for less quiet than
    # is already kept changes nothing.
    pacer.hold_off(1.0)
    pacer.hold_off(0.5)
    assert pacer.reserve()[1] == 118.0
    assert pacer.held_off == 3


def test_threads_held_off_all_wait_until_the_hold_off_ends():
    clock = Clock(now=50.0)
    lock = threading.Lock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            slept.append(seconds)

    pacer = Pacer([Limit(100, 1.0)], clock=clock, sleep=sleep)
    pacer.hold_off(5.0)
    threads = [threading.Thread(target=pacer.acquire) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert slept == [5.0] * 6


def test_a_hold_off_is_per_endpoint_and_summarised():
    clock = Clock()
    pacers = EndpointPacers(KLAVIYO, clock=clock, sleep=clock.sleep)

    pacers.hold_off("create", 17.0)

    assert pacers.acquire("read") == 0.0
    assert pacers.acquire("create") == 17.0
    line = ("1 of 1 requests to create waited 17.0 s in all (10 per 1 s, 150 per 60 s), "
            "1 time(s) held off by a 429")
    assert pacers.summary() == [line]


def test_limits_and_margins_are_checked():
    with pytest.raises(ValueError):
        Limit(0, 1.0)
    with pytest.raises(ValueError):
        Limit(10, 0.0)
    with pytest.raises(ValueError):
        TokenBucket(Limit(10, 1.0), margin=-0.1)
