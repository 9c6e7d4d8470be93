"""Klaviyo bulk profile import: a job per batch, polled to the end, import errors read back,
every request paced under Klaviyo's rate limits.

The mart's `payload` is built here by the oracle (tests.oracles.klaviyo, the Python
profile builder the shipper had before the mart built it) and `payload_sha256` from it,
as the mart's SQL does.

The fake enforces Klaviyo's limits (10 a second, 150 a minute, per endpoint, fixed
windows) on the clock the shipper sleeps on, so a run of hundreds of jobs takes minutes
of that clock and a second or two of real time; one test runs the sender threads in
real time against limits scaled down to fractions of a second."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shipper import cli
from shipper.destinations.klaviyo import KlaviyoSettings
from shipper.hooks import Hooks
from tests.fakes.klaviyo import (
    CREATE,
    DOCUMENTED_LIMITS,
    READ_ERRORS,
    READ_JOB,
    FakeKlaviyo,
)
from tests.fakes.server import Reply, Reset
from tests.shipper.marts import payload_of, write_mart

REPO = Path(__file__).resolve().parents[2]
KEY = "pk_klaviyo_test_key_0123456789abcdef"
KLAVIYO_PROFILES = {
    "delivery_key": "varchar",
    "external_id": "varchar",
    "email": "varchar",
    "phone_number": "varchar",
    "last_offline_purchase_date": "varchar",
    "offline_orders_365d": "integer",
    "offline_revenue_365d": "decimal(18, 2)",
    "offline_revenue_currency": "varchar",
    "last_store_id": "varchar",
    "favourite_category": "varchar",
    "payload": "varchar",
    "payload_sha256": "varchar",
}
# The bulk-import body around the profiles, as the shipper writes it (no list_id).
ENVELOPE = (b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":[',
            b"]}}}}")


def klaviyo_row(index: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "delivery_key": f"cust-{index}",
        "external_id": f"cust-{index}",
        "email": f"customer{index}@example.com",
        "phone_number": f"+1650555{index:04d}" if index % 2 else None,
        "last_offline_purchase_date": f"2026-11-{1 + index % 27:02d}",
        "offline_orders_365d": 1 + index % 4,
        "offline_revenue_365d": Decimal("150.00"),
        "offline_revenue_currency": "EUR",
        "last_store_id": f"store-{index % 5}",
        "favourite_category": "kitchen",
    }
    row.update(overrides)
    return row


def klaviyo(workspace, **options: Any) -> FakeKlaviyo:
    # The fake counts its rate-limit windows on the clock the shipper sleeps on.
    options.setdefault("clock", workspace.clock.monotonic)
    fake = FakeKlaviyo(**options)
    server = workspace.servers(fake)
    workspace.env(KLAVIYO_BASE_URL=server.url, KLAVIYO_API_KEY=fake.api_key,
                  KLAVIYO_TIMEOUT_SECONDS="5")
    return fake


def most_in_any_window(times: Sequence[float], seconds: float) -> int:
    """The most of `times` inside any [t, t + seconds), wherever t is: a window of a
    fixed-window counter, however its windows are aligned, never holds more."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, start + seconds) - index
                for index, start in enumerate(ordered)), default=0)


def with_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row as the mart holds it: its payload (the oracle's, unless the row brings
    one) and that payload's SHA-256."""
    payload = row.get("payload") or payload_of("klaviyo_profiles", row)
    return {**row, "payload": payload,
            "payload_sha256": hashlib.sha256(payload.encode()).hexdigest()}


def mart(workspace, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [with_payload(row) for row in rows]
    write_mart(workspace.mart_path, "klaviyo_profiles", KLAVIYO_PROFILES, rows)
    return rows


def test_happy_path_one_job_polled_to_complete(workspace):
    fake = klaviyo(workspace)
    mart(workspace, (klaviyo_row(i) for i in range(12)))

    assert workspace.ship("run", "klaviyo") == 0

    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(12))
    assert fake.duplicates() == {}
    post, first_poll, second_poll = fake.requests
    assert post.method == "POST" and post.path == "/api/profile-bulk-import-jobs"
    assert post.header("authorization") == f"Klaviyo-API-Key {KEY}"
    assert post.header("revision") == "2026-10-15"
    assert post.header("content-type") == "application/vnd.api+json"
    assert post.header("accept") == "application/vnd.api+json"
    assert KEY not in post.body.decode()
    body = post.json()
    assert body["data"]["type"] == "profile-bulk-import-job"
    profiles = body["data"]["attributes"]["profiles"]["data"]
    assert profiles[1] == {"type": "profile", "attributes": {
        "external_id": "cust-1", "email": "customer1@example.com",
        "phone_number": "+16505550001",
        "properties": {"last_offline_purchase_date": "2026-11-02", "offline_orders_365d": 2,
                       "offline_revenue_365d": 150.0, "offline_revenue_currency": "EUR",
                       "last_store_id": "store-1", "favourite_category": "kitchen"}}}
    assert "phone_number" not in profiles[0]["attributes"]
    (job_id,) = fake.job_order
    assert first_poll.method == second_poll.method == "GET"
    assert first_poll.path == f"/api/profile-bulk-import-jobs/{job_id}"
    assert first_poll.body == b""
    # The job is first read poll_interval_seconds (5 s) after the 202, then after twice
    # as long (poll_backoff 2), on the injected clock; nothing waited for the limits.
    assert workspace.clock.waits == [5.0, 10.0]
    assert workspace.statuses("klaviyo") == {"delivered": 12}
    with workspace.ledger() as ledger:
        assert ledger.delivery("klaviyo", "cust-3")["error"] == f"Klaviyo job {job_id}"
        assert ledger.delivery("klaviyo", "cust-3")["attempts"] == 1


def test_jobs_hold_at_most_10000_profiles(workspace):
    fake = klaviyo(workspace, polls_to_complete=1)
    mart(workspace, (klaviyo_row(i) for i in range(10_050)))

    assert workspace.ship("run", "klaviyo") == 0

    assert sorted(fake.job_sizes) == [50, 10_000]
    assert len(set(fake.imported)) == 10_050
    assert fake.duplicates() == {}


def test_jobs_are_cut_on_bytes_as_well(workspace):
    fake = klaviyo(workspace, max_bytes=20_000, polls_to_complete=1)
    workspace.env(KLAVIYO_MAX_REQUEST_BYTES="20000")
    mart(workspace, (klaviyo_row(i) for i in range(300)))

    assert workspace.ship("run", "klaviyo") == 0

    sizes = [job.body_bytes for job in fake.jobs.values()]
    assert len(sizes) > 3
    assert max(sizes) <= 20_000
    # Jobs are filled, not cut early: all but one (the rest; with two in flight it
    # need not arrive last).
    assert sorted(sizes)[1] > 15_000
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(300))


def test_import_errors_reject_those_profiles_and_the_rest_is_delivered(workspace):
    fake = klaviyo(workspace)
    fake.refuse = {"cust-2", "cust-9"}
    workspace.env(KLAVIYO_ERROR_PAGE_SIZE="2")  # three pages of errors
    mart(workspace, (klaviyo_row(i, email="shopper5@localhost") if i == 5 else klaviyo_row(i)
                     for i in range(20)))

    assert workspace.ship("run", "klaviyo") == 1

    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(20) if i not in (2, 5, 9))
    error_pages = [request for request in fake.requests if "import-errors" in request.path]
    assert len(error_pages) == 2
    assert error_pages[0].param("page[size]") == "2"
    with workspace.ledger() as ledger:
        rejected = {row["delivery_key"]: (row["rejected_by"], row["reason"])
                    for row in ledger.rejections(["klaviyo"])}
    refused = "Invalid input. - The profile <email> could not be imported (code invalid)"
    assert rejected == {
        "cust-2": ("platform", refused),
        "cust-5": ("platform", "Invalid input. - Invalid email address: <email> (code invalid)"),
        "cust-9": ("platform", refused),
    }
    assert workspace.statuses("klaviyo") == {"delivered": 17, "rejected": 3}


def test_errors_without_a_pointer_are_matched_by_their_payload(workspace):
    fake = klaviyo(workspace)
    fake.refuse = {"cust-7"}
    fake.pointerless = True
    mart(workspace, (klaviyo_row(i) for i in range(10)))

    assert workspace.ship("run", "klaviyo") == 1

    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["klaviyo"])
    assert rejection["delivery_key"] == "cust-7"
    assert workspace.statuses("klaviyo") == {"delivered": 9, "rejected": 1}


def test_addresses_and_numbers_never_reach_logs_output_or_the_ledger(workspace, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake = klaviyo(workspace)
    fake.refuse = {"cust-1", "cust-4"}
    rows = [klaviyo_row(i) for i in range(8)]
    mart(workspace, rows)
    # Klaviyo's answers quote addresses back, in errors and in throttling alike.
    fake.misbehave(Reply(500, {"errors": [{"id": "x", "code": "error", "title": "Error",
                                           "detail": "failed on customer3@example.com "
                                                     "+16505550003"}]}))

    assert workspace.ship("run", "klaviyo", "-v") == 1
    assert workspace.ship("status") == 0

    captured = capsys.readouterr()
    con = duckdb.connect(str(workspace.ledger_path), read_only=True)
    try:
        ledger_text = repr(con.execute("select * from deliveries").fetchall())
        ledger_text += repr(con.execute("select * from runs").fetchall())
    finally:
        con.close()
    everything = caplog.text + captured.out + captured.err + ledger_text
    for row in rows:
        assert row["email"] not in everything
        if row["phone_number"]:
            assert row["phone_number"] not in everything
    assert "<email>" in everything  # the reasons are there, masked


def test_throttling_and_transient_errors_on_the_job_request_are_retried(workspace):
    fake = klaviyo(workspace)
    fake.misbehave(fake.throttled("2"), Reply(503, "busy"), Reset())
    mart(workspace, (klaviyo_row(i) for i in range(6)))

    assert workspace.ship("run", "klaviyo") == 0

    assert workspace.clock.waits[0] == 2.0
    assert len([request for request in fake.requests if request.method == "POST"]) == 4
    assert len(fake.job_order) == 1
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(6))
    with workspace.ledger() as ledger:
        assert ledger.delivery("klaviyo", "cust-1")["attempts"] == 4


def test_failing_polls_and_error_pages_are_asked_again(workspace):
    fake = klaviyo(workspace)
    fake.refuse = {"cust-0"}
    fake.failing_reads.extend([Reply(502, "bad gateway"), fake.throttled("3")])
    mart(workspace, (klaviyo_row(i) for i in range(6)))

    assert workspace.ship("run", "klaviyo") == 1

    reads = [request.path for request in fake.requests if request.method == "GET"]
    (job_id,) = fake.job_order
    job = f"/api/profile-bulk-import-jobs/{job_id}"
    # Two failed reads retried, two real polls, one page of import errors.
    assert reads == [job, job, job, job, f"{job}/import-errors"]
    assert 3.0 in workspace.clock.waits
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(1, 6))
    with workspace.ledger() as ledger:
        # Polls carry no rows: the one POST is the only attempt.
        assert ledger.delivery("klaviyo", "cust-1")["attempts"] == 1
        assert ledger.delivery("klaviyo", "cust-0")["status"] == "rejected"


def test_a_job_that_never_finishes_is_polled_within_its_budget_then_sent_again(workspace):
    fake = klaviyo(workspace)
    fake.stuck = True
    workspace.env(KLAVIYO_POLL_TIMEOUT_SECONDS="20")
    mart(workspace, (klaviyo_row(i) for i in range(5)))

    assert workspace.ship("run", "klaviyo") == 2

    # 5 s, then 10 s, then the 5 s left of the 20 s budget: the last read is at 20 s.
    assert workspace.clock.waits == [5.0, 10.0, 5.0]
    assert fake.imported == []
    assert workspace.statuses("klaviyo") == {"failed": 5}
    with workspace.ledger() as ledger:
        assert "still processing after 20 s" in ledger.delivery("klaviyo", "cust-0")["error"]

    fake.stuck = False
    assert workspace.ship("run", "klaviyo") == 0
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(5))


def test_a_cancelled_job_leaves_its_profiles_for_the_next_run(workspace):
    fake = klaviyo(workspace)
    fake.cancel_jobs = True
    mart(workspace, (klaviyo_row(i) for i in range(3)))

    assert workspace.ship("run", "klaviyo") == 2
    assert workspace.statuses("klaviyo") == {"failed": 3}

    fake.cancel_jobs = False
    assert workspace.ship("run", "klaviyo") == 0
    assert len(fake.imported) == 3


def test_only_changed_profiles_are_imported_again(workspace):
    fake = klaviyo(workspace)
    mart(workspace, (klaviyo_row(i) for i in range(15)))
    assert workspace.ship("run", "klaviyo") == 0
    assert workspace.ship("run", "klaviyo") == 0
    assert len(fake.job_order) == 1

    mart(workspace, (klaviyo_row(i, last_store_id="store-42") if i == 6 else klaviyo_row(i)
                     for i in range(15)))
    assert workspace.ship("run", "klaviyo") == 0
    assert fake.job_sizes == [15, 1]
    assert fake.profiles["cust-6"]["properties"]["last_store_id"] == "store-42"


def test_a_refused_key_stops_the_destination(workspace, capsys):
    fake = klaviyo(workspace)
    workspace.env(KLAVIYO_API_KEY="pk_wrong_key_000000")
    mart(workspace, (klaviyo_row(i) for i in range(3)))

    assert workspace.ship("run", "klaviyo") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("klaviyo") == {"failed": 3}
    captured = capsys.readouterr()
    assert "check KLAVIYO_API_KEY" in captured.out + captured.err


def test_dry_run_writes_the_job_body_and_a_missing_key_skips(workspace, capsys):
    fake = klaviyo(workspace)
    mart(workspace, (klaviyo_row(i) for i in range(4)))

    assert workspace.ship("run", "klaviyo", "--dry-run") == 0

    (path,) = sorted((workspace.outbox / "klaviyo").glob("*.json"))
    text = path.read_text()
    assert KEY not in text
    body = json.loads(text)
    assert len(body["data"]["attributes"]["profiles"]["data"]) == 4
    assert fake.requests == []
    with workspace.ledger() as ledger:
        assert ledger.status_counts("klaviyo") == {}

    workspace.monkeypatch.delenv("KLAVIYO_API_KEY")
    workspace.meta()
    workspace.meta_mart([])
    capsys.readouterr()
    assert workspace.ship("run", "meta", "klaviyo") == 2
    assert "klaviyo cannot be sent without KLAVIYO_API_KEY" in capsys.readouterr().err
    assert fake.requests == []


def test_dry_run_body_is_the_mart_payloads_byte_for_byte_in_the_envelope(workspace):
    klaviyo(workspace)
    odd = klaviyo_row(3, favourite_category='Küche "Ölflaschen" \\ 5/8"')
    rows = mart(workspace, [
        klaviyo_row(0), klaviyo_row(1),
        # The shipper passes whatever text the mart holds: spacing, member order and
        # escapes are not written again.
        {**klaviyo_row(2), "payload": '{ "attributes" : {"external_id": "cust-2", '
                                      '"email": "customer2@example.com", '
                                      '"properties": {"n": 1.50, "u": "\\u00e9"}},'
                                      ' "type": "profile" }'},
        odd,
    ])

    assert workspace.ship("run", "klaviyo", "--dry-run") == 0

    (path,) = sorted((workspace.outbox / "klaviyo").glob("*.json"))
    body = path.read_bytes()
    sent = json.loads(body)["data"]["attributes"]["profiles"]["data"]
    by_key = {row["external_id"]: row["payload"].encode() for row in rows}
    order = [profile["attributes"]["external_id"] for profile in sent]
    assert sorted(order) == sorted(by_key)
    assert body == ENVELOPE[0] + b",".join(by_key[key] for key in order) + ENVELOPE[1]


def test_a_list_id_goes_in_the_envelope_beside_the_profiles(workspace):
    klaviyo(workspace)
    workspace.env(KLAVIYO_LIST_ID="LiSt42")
    rows = mart(workspace, [klaviyo_row(0)])

    assert workspace.ship("run", "klaviyo", "--dry-run") == 0

    (path,) = sorted((workspace.outbox / "klaviyo").glob("*.json"))
    assert path.read_bytes() == (
        b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
        + rows[0]["payload"].encode()
        + b']}},"relationships":{"lists":{"data":[{"type":"list","id":"LiSt42"}]}}}}')


def test_a_real_subprocess_waits_for_the_job(workspace):
    fake = klaviyo(workspace, clock=time.monotonic)  # the subprocess sleeps for real
    workspace.env(KLAVIYO_POLL_INTERVAL_SECONDS="0.05")
    mart(workspace, (klaviyo_row(i) for i in range(7)))
    env = dict(os.environ, PYTHONPATH=str(REPO))

    result = subprocess.run([sys.executable, "-m", "shipper", "run", "klaviyo"], env=env,
                            cwd=workspace.root, capture_output=True, text=True, timeout=60,
                            check=False)

    assert result.returncode == 0, result.stderr
    assert "klaviyo" in result.stdout and "ok" in result.stdout
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(7))
    assert "customer1@example.com" not in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# Polling backs off; every request is paced under Klaviyo's rate limits.


def test_polling_backs_off_up_to_its_cap(workspace):
    fake = klaviyo(workspace, processing_seconds=90)
    workspace.env(KLAVIYO_POLL_MAX_INTERVAL_SECONDS="20")
    mart(workspace, (klaviyo_row(i) for i in range(4)))

    assert workspace.ship("run", "klaviyo") == 0

    # 5 s after the 202, then twice as long each time up to 20 s: reads at 5, 15, 35,
    # 55, 75 s (processing) and 95 s (complete: it took 90 s).
    assert workspace.clock.waits == [5.0, 10.0, 20.0, 20.0, 20.0, 20.0]
    assert [request.method for request in fake.requests] == ["POST"] + ["GET"] * 6
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(4))


def test_more_jobs_than_klaviyo_takes_in_a_minute_are_paced_not_throttled(workspace):
    # Klaviyo's own limits, on the clock the shipper sleeps on: 200 one-profile jobs,
    # each created, read once and complete, one after the other as fast as allowed.
    fake = klaviyo(workspace, polls_to_complete=1)
    workspace.env(KLAVIYO_BATCH_SIZE="1", KLAVIYO_CONCURRENCY="1",
                  KLAVIYO_POLL_INTERVAL_SECONDS="0.05")
    mart(workspace, (klaviyo_row(i) for i in range(200)))

    assert workspace.ship("run", "klaviyo") == 0

    assert fake.throttles == []
    assert len(fake.job_order) == 200
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(200))
    assert workspace.statuses("klaviyo") == {"delivered": 200}
    creates, reads = fake.arrivals(CREATE), fake.arrivals(READ_JOB)
    assert len(creates) == len(reads) == 200
    for times in (creates, reads):
        # Within both limits in every window, wherever Klaviyo's windows start.
        assert most_in_any_window(times, 1.0) == 10
        assert most_in_any_window(times, 60.0) == 150
    # Paced: ten at once, the next ten a burst window and the margin later (1.25 s)...
    assert creates[10] - creates[0] == pytest.approx(1.25)
    # ... and the 151st a steady window and the margin after the first: not sooner, and
    # no later than it had to.
    assert creates[150] - creates[0] == pytest.approx(60.25)
    assert creates[-1] - creates[0] < 60.25 + 5 * 1.25 + 1


def test_a_429_with_retry_after_holds_the_request_back_that_long(workspace, caplog):
    caplog.set_level(logging.INFO)
    # Klaviyo counts per account: something else took most of this minute's job creations,
    # so Klaviyo allows three where the shipper counts on 150.
    fake = klaviyo(workspace, polls_to_complete=1,
                   limits={**DOCUMENTED_LIMITS, CREATE: ((10, 1.0), (3, 60.0))})
    workspace.env(KLAVIYO_BATCH_SIZE="2", KLAVIYO_CONCURRENCY="1",
                  KLAVIYO_POLL_INTERVAL_SECONDS="1")
    mart(workspace, (klaviyo_row(i) for i in range(10)))

    assert workspace.ship("run", "klaviyo") == 0

    # The fourth job, at 1003 s on the fake clock, met a full minute window [960, 1020):
    # 429, Retry-After 17 (whole seconds to the window's end), waited exactly that.
    assert fake.throttles == [17]
    assert 17.0 in workspace.clock.waits
    throttled_at = next(at for _, at, throttled in fake.seen if throttled)
    creates = fake.arrivals(CREATE)
    assert len(creates) == len(fake.job_order) == 5
    assert creates[3] == throttled_at + 17 == 1020.0
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(10))
    assert fake.duplicates() == {}
    fourth = [profile["attributes"]["external_id"]
              for profile in fake.jobs[fake.job_order[3]].profiles]
    with workspace.ledger() as ledger:
        assert [ledger.delivery("klaviyo", key)["attempts"] for key in fourth] == [2, 2]
    # The 429 held the endpoint off for every thread (shipper.pacing's summary says so).
    assert "1 time(s) held off by a 429" in caplog.text


def test_every_retry_takes_a_pacing_token(workspace):
    # One job creation in any 10 s (and the margin): the retry after a 503 waits for its
    # token like a first attempt, in the session's before_attempt hook.
    fake = klaviyo(workspace, polls_to_complete=1)
    workspace.env(KLAVIYO_CONCURRENCY="1", KLAVIYO_BURST_LIMIT="1",
                  KLAVIYO_BURST_WINDOW_SECONDS="10", KLAVIYO_POLL_INTERVAL_SECONDS="1")
    fake.misbehave(Reply(503, "busy"))
    mart(workspace, (klaviyo_row(i) for i in range(3)))

    assert workspace.ship("run", "klaviyo") == 0

    backoff, token, poll = workspace.clock.waits[:3]
    assert 0 <= backoff <= 1.0  # full jitter under backoff_base_seconds
    assert backoff + token == pytest.approx(10.25)  # the rest of the window, and the margin
    assert poll == 1.0
    # The 503 is not in the fake's rate-limit log; the retry is, a window after the first.
    assert fake.arrivals(CREATE) == [pytest.approx(1010.25)]
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(3))
    with workspace.ledger() as ledger:
        assert ledger.delivery("klaviyo", "cust-0")["attempts"] == 2


def test_a_429_holds_off_every_thread_sending_to_that_endpoint(workspace):
    # The hooks the retrying session calls, driven in the order two sender threads would:
    # thread A's job creation met a 429 asking for 17 s; thread B's next creation waits
    # them out before it goes, not only thread A's retry. Reading a job is not held off.
    from shipper.destinations.base import PrepareContext
    from shipper.destinations.klaviyo import Klaviyo

    clock = workspace.clock
    destination = Klaviyo(KlaviyoSettings(base_url="https://a.klaviyo.test"),
                          {"KLAVIYO_API_KEY": KEY})
    destination.open_prepare(PrepareContext(None, "run", False, workspace.outbox,
                                            Hooks(clock=clock.monotonic, sleep=clock.sleep)))
    hooks = destination.attempt_hooks()
    create = destination.build_request([b'{"type":"profile"}'])
    read = destination.follow_up_request(
        destination.parse_response(202, {"data": {"id": "job-1"}}, None).follow_up, None)

    hooks.before_attempt(create)  # thread A's first attempt: a token at once
    hooks.on_throttled(create, 17.0)  # ... answered 429, Retry-After 17
    hooks.before_attempt(read)  # a job read: its own endpoint, not held off
    assert clock.waits == []
    hooks.before_attempt(create)  # thread B: waits out the 17 s
    assert clock.waits == [17.0]
    hooks.before_attempt(create)  # thread A, its 17 s slept in the session: goes at once
    assert clock.waits == [17.0]

    destination.close_prepare()


def test_sender_threads_share_the_buckets(workspace):
    # Real time, with both limits scaled down (10 in 0.1 s, 100 in 2 s, fixed windows),
    # and eight sender threads: 200 jobs can only be created and read within them by
    # threads that take their turns from the same buckets.
    scaled = ((10, 0.1), (100, 2.0))
    fake = klaviyo(workspace, clock=time.monotonic, polls_to_complete=1,
                   limits=dict.fromkeys((CREATE, READ_JOB, READ_ERRORS), scaled))
    workspace.env(KLAVIYO_BATCH_SIZE="1", KLAVIYO_CONCURRENCY="8",
                  KLAVIYO_BURST_LIMIT="10", KLAVIYO_BURST_WINDOW_SECONDS="0.1",
                  KLAVIYO_STEADY_LIMIT="100", KLAVIYO_STEADY_WINDOW_SECONDS="2",
                  KLAVIYO_RATE_LIMIT_MARGIN_SECONDS="0.05",
                  KLAVIYO_POLL_INTERVAL_SECONDS="0.01", KLAVIYO_POLL_MAX_INTERVAL_SECONDS="0.1")
    mart(workspace, (klaviyo_row(i) for i in range(200)))

    assert cli.main(["run", "klaviyo"], hooks=Hooks(rng=random.Random(14))) == 0

    # Threads that each kept their own buckets would be throttled dozens of times. A loaded
    # machine may deliver a request later than it left, across a window's edge: that is
    # the one or two 429s tolerated here, and retried like any other.
    assert len(fake.throttles) <= 2
    assert sorted(fake.imported) == sorted(f"cust-{i}" for i in range(200))
    assert fake.duplicates() == {}
    # Several threads were at it: jobs were created with no read of a job between them.
    endpoints = [endpoint for endpoint, _, _ in fake.seen]
    assert any(a == b == CREATE for a, b in itertools.pairwise(endpoints))
    # The 101st job waited for the steady window rather than being throttled.
    creates = sorted(fake.arrivals(CREATE))
    assert creates[100] - creates[0] >= 1.9  # unpaced, 101 jobs would take about 1 s


@pytest.mark.parametrize("setting, value, problem", [
    ("STEADY_LIMIT", "0", "steady_limit for klaviyo must be at least 1"),
    ("BURST_WINDOW_SECONDS", "0", "burst_window_seconds for klaviyo must be above 0"),
    ("POLL_BACKOFF", "0.5", "poll_backoff for klaviyo must be at least 1"),
    ("POLL_MAX_INTERVAL_SECONDS", "1",
     "poll_max_interval_seconds for klaviyo must be at least poll_interval_seconds"),
])
def test_pacing_and_polling_settings_are_checked(workspace, capsys, setting, value, problem):
    fake = klaviyo(workspace)
    workspace.env(**{f"KLAVIYO_{setting}": value})
    mart(workspace, [klaviyo_row(0)])

    assert workspace.ship("run", "klaviyo") == 2

    assert problem in capsys.readouterr().err
    assert fake.requests == []


def test_the_default_limits_are_those_klaviyo_documents_for_each_endpoint():
    """klaviyo-api's docstring of each endpoint a job uses states its rate limits."""
    profiles_api = pytest.importorskip("openapi_client.api.profiles_api").ProfilesApi
    settings = KlaviyoSettings()
    for method in (profiles_api.bulk_import_profiles, profiles_api.get_bulk_import_profiles_job,
                   profiles_api.get_errors_for_bulk_import_profiles_job):
        text = method.__doc__ or ""
        burst = re.search(r"Burst: `(\d+)/s`", text)
        steady = re.search(r"Steady: `(\d+)/m`", text)
        assert burst and steady, f"klaviyo-api no longer states {method.__name__}'s limits"
        assert (int(burst[1]), int(steady[1])) == (settings.burst_limit, settings.steady_limit)
    assert (settings.burst_window_seconds, settings.steady_window_seconds) == (1.0, 60.0)
    assert settings.requests_per_second == 0
    documented = ((settings.burst_limit, 1.0), (settings.steady_limit, 60.0))
    assert DOCUMENTED_LIMITS == dict.fromkeys((CREATE, READ_JOB, READ_ERRORS), documented)
