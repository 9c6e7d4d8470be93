"""Transient failures are retried with backoff; a batch that never gets through is
recorded as failed and delivered by a later run. Waits are asserted on a fake clock."""

from __future__ import annotations

import email.utils
import random
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.destinations.base import Request
from shipper.http import RetryingSession, RetryPolicy, parse_retry_after
from tests.fakes import FakeApp, FakeServer, Later, Reply, Reset, Stall
from tests.shipper.marts import meta_row


def test_429_waits_exactly_what_retry_after_says(workspace):
    fake = workspace.meta()
    too_many = Reply(429, {"error": {"message": "slow down", "code": 4}}, {"Retry-After": "2"})
    fake.misbehave(too_many, too_many)
    workspace.meta_mart(meta_row(i) for i in range(10))

    assert workspace.ship("run", "meta") == 0

    assert workspace.clock.waits == [2.0, 2.0]
    assert len(fake.requests) == 3
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(10))
    with workspace.ledger() as ledger:
        assert ledger.delivery("meta", "order-0")["attempts"] == 3


def test_retry_after_as_an_http_date(workspace):
    fake = workspace.meta()
    # The date is written when the request arrives, as a server would write it.
    fake.misbehave(Later(lambda: Reply(
        503, "busy", {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)})))
    workspace.meta_mart([meta_row(1)])

    assert workspace.ship("run", "meta") == 0

    (wait,) = workspace.clock.waits
    assert 28 <= wait <= 31


def test_500_then_success(workspace):
    fake = workspace.meta()
    fake.misbehave(Reply(500, {"error": {"message": "An unknown error occurred", "code": 1}}))
    workspace.meta_mart(meta_row(i) for i in range(10))

    assert workspace.ship("run", "meta") == 0

    (wait,) = workspace.clock.waits
    assert 0 <= wait <= 1.0  # full jitter under the first ceiling (backoff_base_seconds)
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(10))


def test_timeout_then_success(workspace):
    fake = workspace.meta()
    workspace.env(META_TIMEOUT_SECONDS="0.3")
    fake.misbehave(Stall(10.0))
    workspace.meta_mart(meta_row(i) for i in range(10))

    started = time.monotonic()
    assert workspace.ship("run", "meta") == 0

    assert time.monotonic() - started < 8  # the 0.3 s timeout ended it, not the 10 s stall
    assert len(fake.requests) == 2
    assert len(workspace.clock.waits) == 1
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(10))


def test_connection_reset_then_success(workspace):
    fake = workspace.meta()
    fake.misbehave(Reset(), Reset())
    workspace.meta_mart(meta_row(i) for i in range(10))

    assert workspace.ship("run", "meta") == 0

    assert len(fake.requests) == 3
    assert len(workspace.clock.waits) == 2
    assert fake.duplicates() == {}
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(10))


def test_give_up_records_failed_and_the_next_run_delivers(workspace, capsys):
    fake = workspace.meta()
    fake.fail_always(Reply(500, "down"))
    workspace.env(META_GIVE_UP_AFTER_SECONDS="10", META_MAX_ATTEMPTS="100",
                  META_BATCH_SIZE="20")
    workspace.meta_mart(meta_row(i) for i in range(50))

    assert workspace.ship("run", "meta") == 2

    assert fake.accepted_ids == []
    assert workspace.statuses("meta") == {"failed": 50}
    # Per batch, the waits stay inside the budget.
    assert sum(workspace.clock.waits) <= 3 * 10
    out = capsys.readouterr().out
    assert "50 rows failed after every retry" in out
    with workspace.ledger() as ledger:
        record = ledger.delivery("meta", "order-0")
        (run,) = ledger.recent_runs(["meta"])
    assert record["status"] == "failed" and "gave up after" in record["error"]
    assert run["status"] == "incomplete" and run["rows_failed"] == 50

    fake.fail_always(None)
    assert workspace.ship("run", "meta") == 0
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(50))
    assert workspace.statuses("meta") == {"delivered": 50}


def test_retry_after_beyond_the_budget_gives_up_without_sleeping(workspace):
    fake = workspace.meta()
    fake.misbehave(Reply(429, "", {"Retry-After": "3600"}))
    workspace.env(META_GIVE_UP_AFTER_SECONDS="60")
    workspace.meta_mart([meta_row(1)])

    assert workspace.ship("run", "meta") == 2

    assert workspace.clock.waits == []
    assert workspace.statuses("meta") == {"failed": 1}


def test_max_attempts_bounds_the_requests(workspace):
    fake = workspace.meta()
    fake.fail_always(Reply(502, "bad gateway"))
    workspace.env(META_MAX_ATTEMPTS="3")
    workspace.meta_mart([meta_row(1)])

    assert workspace.ship("run", "meta") == 2

    assert len(fake.requests) == 3
    with workspace.ledger() as ledger:
        assert ledger.delivery("meta", "order-1")["attempts"] == 3


def test_connection_refused_is_retried_then_recorded_as_failed(workspace):
    workspace.meta()
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workspace.env(META_BASE_URL=f"http://127.0.0.1:{port}", META_MAX_ATTEMPTS="3")
    workspace.meta_mart([meta_row(1)])

    assert workspace.ship("run", "meta") == 2

    assert len(workspace.clock.waits) == 2
    with workspace.ledger() as ledger:
        assert "connection failed" in ledger.delivery("meta", "order-1")["error"]


# -- the pieces, without a server -------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("7", 7.0),
    (" 0 ", 0.0),
    ("", None),
    (None, None),
    ("soon", None),
    ("-5", None),
])
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header, now=1_700_000_000) == expected


def test_parse_retry_after_http_date():
    now = 1_700_000_000
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0


@given(retry=st.integers(min_value=1, max_value=30), seed=st.integers())
def test_backoff_is_full_jitter_under_a_capped_ceiling(retry, seed):
    policy = RetryPolicy(give_up_after=300, max_attempts=8, backoff_base=0.5, backoff_max=20)
    wait = policy.backoff(retry, random.Random(seed))
    assert 0 <= wait <= min(20, 0.5 * 2 ** (retry - 1))


def test_tls_verification_is_never_disabled():
    session = RetryingSession("x", policy=RetryPolicy(1, 1, 1, 1), connect_timeout=1,
                              read_timeout=1)
    assert session._session.verify is True
    session.close()
    sources = Path(__file__).resolve().parents[2] / "shipper"
    for path in sources.rglob("*.py"):
        assert "verify=False" not in path.read_text(), path


def test_rate_limit_reset_header_is_honoured_when_there_is_no_retry_after():
    from shipper.http import wait_from_headers

    assert wait_from_headers({"Retry-After": "7"}, now=1_800_000_000.0) == 7.0
    assert wait_from_headers({"X-RateLimit-Reset": "1800000012"}, now=1_800_000_000.0) == 12.0
    assert wait_from_headers({"X-RateLimit-Reset": "12"}, now=1_800_000_000.0) is None
    assert wait_from_headers({}, now=1_800_000_000.0) is None


class _Fine(FakeApp):
    def handle(self, request):
        return Reply(200, {"ok": True})


class _Verdict:
    retryable = False
    reason = None


def test_the_session_calls_the_attempt_hooks_around_every_attempt(workspace):
    clock = workspace.clock
    calls = []

    class Hooks:
        def before_attempt(self, subject):
            calls.append(("before_attempt", subject.url, clock.now))

        def on_throttled(self, subject, wait):
            calls.append(("on_throttled", subject.url, wait))

    app = _Fine()
    app.misbehave(Reply(429, "slow down", {"Retry-After": "5"}), Reply(503, "busy"))
    with FakeServer(app) as server:
        session = RetryingSession("x", policy=RetryPolicy(300, 8, 1, 60), connect_timeout=5,
                                  read_timeout=5, hooks=Hooks(), clock=clock.monotonic,
                                  sleep=clock.sleep)
        try:
            result = session.send(Request("POST", f"{server.url}/events", {}, b"{}"),
                                  lambda status, body: _Verdict())
        finally:
            session.close()

    assert result.attempts == 3 and result.failure is None
    url = f"{server.url}/events"
    backoff = clock.waits[1]
    # Every attempt first, the retries too; a 429 holds off for its Retry-After before the
    # wait; a 503 is no throttle.
    assert calls == [("before_attempt", url, 1000.0), ("on_throttled", url, 5.0),
                     ("before_attempt", url, 1005.0), ("before_attempt", url, 1005.0 + backoff)]
