"""Braze /users/track and /users/track/bulk: a profile destination sent again only when
a profile changes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.braze import BULK, BULK_MAX_BYTES, TRACK, FakeBraze
from tests.fakes.server import Reply, Reset, Stall
from tests.shipper.marts import payload_of, write_mart

KEY = "braze-test-key-0123456789abcdef"
BRAZE_ATTRIBUTES = {
    "delivery_key": "varchar",
    "external_id": "varchar",
    "last_offline_purchase_date": "varchar",
    "offline_orders_365d": "integer",
    "offline_revenue_365d": "decimal(18, 2)",
    "offline_revenue_currency": "varchar",
    "last_store_id": "varchar",
    "favourite_category": "varchar",
    "payload": "varchar",
    "payload_sha256": "varchar",
}


def braze_row(index: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "delivery_key": f"cust-{index}",
        "external_id": f"cust-{index}",
        "last_offline_purchase_date": f"2026-11-{1 + index % 27:02d}",
        "offline_orders_365d": 1 + index % 4,
        "offline_revenue_365d": Decimal("150.00") if index % 3 else Decimal("80.00"),
        "offline_revenue_currency": "EUR",
        "last_store_id": f"store-{index % 5}",
        "favourite_category": None if index % 7 == 0 else "kitchen",
    }
    row.update(overrides)
    return row


def braze(workspace, *, endpoint: str | None = None, **options: Any) -> FakeBraze:
    """Start a fake Braze and point the shipper at it; `endpoint` sets BRAZE_ENDPOINT."""
    fake = FakeBraze(**options)
    server = workspace.servers(fake)
    workspace.env(BRAZE_BASE_URL=server.url, BRAZE_API_KEY=fake.api_key,
                  BRAZE_TIMEOUT_SECONDS="5")
    if endpoint is not None:
        workspace.env(BRAZE_ENDPOINT=endpoint)
    return fake


BOTH_ENDPOINTS = pytest.mark.parametrize("endpoint, path", [("track", TRACK), ("bulk", BULK)])


def with_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the mart holds it: its payload (unless the test gives one) and the
    payload's SHA-256, the fingerprint that decides whether a profile is sent again."""
    payload = row.get("payload") or payload_of("braze_attributes", row)
    fingerprint = row.get("payload_sha256") or hashlib.sha256(payload.encode()).hexdigest()
    return {**row, "payload": payload, "payload_sha256": fingerprint}


def mart(workspace, rows) -> None:
    write_mart(workspace.mart_path, "braze_attributes", BRAZE_ATTRIBUTES,
               (with_payload(row) for row in rows))


@BOTH_ENDPOINTS
def test_happy_path_and_request_shape(workspace, endpoint, path):
    fake = braze(workspace, endpoint=endpoint)
    mart(workspace, (braze_row(i) for i in range(20)))

    assert workspace.ship("run", "braze") == 0

    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(20))
    (request,) = fake.requests
    assert request.path == path
    assert request.header("authorization") == f"Bearer {KEY}"
    assert KEY not in request.body.decode()
    body = request.json()
    assert set(body) == {"attributes"}
    first = next(item for item in body["attributes"] if item["external_id"] == "cust-0")
    # Every column but delivery_key; a NULL goes as null (Braze removes the attribute);
    # the date as a full ISO 8601 time, which Braze stores as a time.
    assert first == {
        "external_id": "cust-0",
        "last_offline_purchase_date": "2026-11-01T00:00:00Z",
        "offline_orders_365d": 1,
        "offline_revenue_365d": 80.0,
        "offline_revenue_currency": "EUR",
        "last_store_id": "store-0",
        "favourite_category": None,
    }
    assert fake.profiles["cust-1"]["offline_revenue_365d"] == 150.0
    assert fake.profiles["cust-0"]["last_offline_purchase_date"] == dt.datetime(
        2026, 11, 1, tzinfo=dt.UTC)
    assert workspace.statuses("braze") == {"delivered": 20}


def test_the_attributes_are_the_marts_payloads_byte_for_byte(workspace):
    """The shipper adds only Braze's envelope: `attributes` is the mart's payloads as they
    are, including an attribute the mart added that the shipper knows nothing about."""
    fake = braze(workspace)
    rows = [braze_row(i) for i in range(3)]
    payloads = [payload_of("braze_attributes", row) for row in rows]
    # An attribute the analyst added in SQL, and JSON written with other spacing and
    # escapes: both travel as they are.
    profile = json.loads(payloads[1])
    profile["store_name"] = 'Zoë\'s "Main St" \u00e9'
    payloads[1] = json.dumps(profile)
    mart(workspace, ({**row, "payload": payload}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "braze") == 0

    (request,) = fake.requests
    assert request.body == ('{"attributes":[' + ",".join(payloads) + "]}").encode()
    assert fake.profiles["cust-1"]["store_name"] == 'Zoë\'s "Main St" \u00e9'


def test_batches_hold_at_most_75_objects(workspace):
    fake = braze(workspace)
    mart(workspace, (braze_row(i) for i in range(160)))

    assert workspace.ship("run", "braze") == 0

    assert sorted(fake.batch_sizes) == [10, 75, 75]
    assert fake.paths == [TRACK] * 3
    assert fake.duplicates() == {}
    assert len(fake.profiles) == 160


def test_only_changed_profiles_are_sent_again(workspace, capsys):
    fake = braze(workspace)
    mart(workspace, (braze_row(i) for i in range(30)))
    assert workspace.ship("run", "braze") == 0
    assert len(fake.objects) == 30

    # Unchanged mart: nothing to send.
    assert workspace.ship("run", "braze") == 0
    assert len(fake.requests) == 1

    # One attribute of one customer changes: exactly that object goes out.
    mart(workspace, (braze_row(i, offline_orders_365d=9) if i == 12 else braze_row(i)
                     for i in range(30)))
    capsys.readouterr()
    assert workspace.ship("run", "braze") == 0
    assert len(fake.requests) == 2
    (last,) = fake.requests[1:]
    assert [item["external_id"] for item in last.json()["attributes"]] == ["cust-12"]
    assert fake.profiles["cust-12"]["offline_orders_365d"] == 9
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["braze"])
    assert (run["rows_read"], run["rows_skipped"], run["rows_sent"]) == (30, 29, 1)


@BOTH_ENDPOINTS
def test_partial_failure_rejects_by_index_and_keeps_the_rest(workspace, endpoint, path):
    fake = braze(workspace, endpoint=endpoint)
    fake.refuse = {"cust-4", "cust-40"}
    mart(workspace, (braze_row(i) for i in range(50)))

    assert workspace.ship("run", "braze") == 1

    assert len(fake.requests) == 1
    assert fake.paths == [path]
    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(50)
                                               if i not in (4, 40))
    with workspace.ledger() as ledger:
        rejected = {row["delivery_key"]: row["reason"] for row in ledger.rejections(["braze"])}
    assert rejected == {
        "cust-4": "Invalid value for custom attribute on user cust-4",
        "cust-40": "Invalid value for custom attribute on user cust-40",
    }
    # Unchanged and refused: not sent again. Changed: sent again.
    assert workspace.ship("run", "braze") == 0
    assert len(fake.requests) == 1
    fake.refuse = set()
    mart(workspace, (braze_row(i, last_store_id="store-9") if i == 4 else braze_row(i)
                     for i in range(50)))
    assert workspace.ship("run", "braze") == 0
    assert [item["external_id"] for item in fake.requests[-1].json()["attributes"]] == [
        "cust-4"]


def test_rate_limit_and_transient_errors_are_retried(workspace):
    fake = braze(workspace)
    workspace.env(BRAZE_TIMEOUT_SECONDS="0.3")
    fake.misbehave(fake.rate_limited("1"), fake.rate_limited(), Reply(503, "busy"),
                   Stall(1.0), Reset())
    mart(workspace, (braze_row(i) for i in range(5)))

    assert workspace.ship("run", "braze") == 0

    assert len(fake.requests) == 6
    assert workspace.clock.waits[0] == 1.0
    assert len(workspace.clock.waits) == 5
    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(5))
    with workspace.ledger() as ledger:
        assert ledger.delivery("braze", "cust-0")["attempts"] == 6


@BOTH_ENDPOINTS
def test_a_refused_key_stops_the_destination(workspace, capsys, endpoint, path):
    fake = braze(workspace, endpoint=endpoint)
    workspace.env(BRAZE_API_KEY="braze-wrong-key-000000")
    mart(workspace, (braze_row(i) for i in range(5)))

    assert workspace.ship("run", "braze") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("braze") == {"failed": 5}
    captured = capsys.readouterr()
    assert "check BRAZE_API_KEY" in captured.out + captured.err


def test_the_instance_setting_builds_the_endpoint(workspace, capsys):
    braze(workspace)
    workspace.monkeypatch.delenv("BRAZE_BASE_URL")
    mart(workspace, [braze_row(1)])

    # No instance and no base_url: one sentence naming the variable.
    assert workspace.ship("run", "braze") == 2
    assert "BRAZE_INSTANCE" in capsys.readouterr().err

    # An instance that answers nothing: the request went to https://<instance>/users/track.
    workspace.env(BRAZE_INSTANCE="127.0.0.1:9", BRAZE_MAX_ATTEMPTS="1")
    assert workspace.ship("run", "braze") == 2
    with workspace.ledger() as ledger:
        assert "failed" in ledger.status_counts("braze")


def test_dry_run_writes_bodies_and_a_missing_key_skips(workspace, capsys):
    fake = braze(workspace)
    workspace.env(BRAZE_BATCH_SIZE="4")
    mart(workspace, (braze_row(i) for i in range(10)))

    assert workspace.ship("run", "braze", "--dry-run") == 0

    files = sorted((workspace.outbox / "braze").glob("*.json"))
    assert [len(json.loads(path.read_text())["attributes"]) for path in files] == [4, 4, 2]
    assert all(KEY not in path.read_text() for path in files)
    assert fake.requests == []
    assert workspace.statuses("braze") == {}

    workspace.monkeypatch.delenv("BRAZE_API_KEY")
    workspace.meta()
    workspace.meta_mart([])
    capsys.readouterr()
    assert workspace.ship("run", "meta", "braze") == 2
    assert "braze cannot be sent without BRAZE_API_KEY" in capsys.readouterr().err


# -- /users/track/bulk ------------------------------------------------------------------------


def test_bulk_sends_1000_objects_a_request(workspace):
    fake = braze(workspace, endpoint="bulk")
    mart(workspace, (braze_row(i) for i in range(2_500)))

    assert workspace.ship("run", "braze") == 0

    assert sorted(fake.batch_sizes) == [500, 1_000, 1_000]
    assert fake.paths == [BULK] * 3
    assert fake.duplicates() == {}
    assert len(fake.profiles) == 2_500
    assert workspace.statuses("braze") == {"delivered": 2_500}


def test_bulk_batches_stay_under_2_mb(workspace):
    """1,000 objects of ~2.6 KB would be a 2.6 MB body: the batches are cut by bytes
    as well, each body at most 2,000,000 bytes, none refused as too large."""
    fake = braze(workspace, endpoint="bulk")
    rows = [braze_row(i) for i in range(1_000)]
    payloads = []
    for row in rows:
        profile = json.loads(payload_of("braze_attributes", row))
        profile["notes"] = "x" * 2_400  # an attribute an analyst added in SQL
        payloads.append(json.dumps(profile, separators=(",", ":")))
    mart(workspace, ({**row, "payload": payload}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "braze") == 0

    assert len(fake.requests) == len(fake.paths) == 2  # every request processed: no 413
    assert max(fake.body_sizes) <= BULK_MAX_BYTES
    assert max(fake.body_sizes) > BULK_MAX_BYTES * 0.95  # full batches, not tiny ones
    assert sum(fake.batch_sizes) == 1_000
    assert fake.duplicates() == {}
    assert workspace.statuses("braze") == {"delivered": 1_000}


def test_bulk_max_request_bytes_cuts_smaller_batches(workspace):
    fake = braze(workspace, endpoint="bulk")
    workspace.env(BRAZE_BULK_MAX_REQUEST_BYTES="5000")
    mart(workspace, (braze_row(i) for i in range(200)))

    assert workspace.ship("run", "braze") == 0

    assert max(fake.body_sizes) <= 5_000
    assert sum(fake.batch_sizes) == 200
    assert len(fake.requests) == len(fake.paths)
    assert workspace.statuses("braze") == {"delivered": 200}


def test_bulk_payload_too_large_is_split_until_it_fits(workspace):
    """Braze answering 413 (here: an account whose limit is below what was set) splits the
    batch in halves until each part goes through; nothing is lost or sent twice."""
    fake = braze(workspace, endpoint="bulk", bulk_max_bytes=20_000)
    mart(workspace, (braze_row(i) for i in range(300)))

    assert workspace.ship("run", "braze") == 0

    refused = len(fake.requests) - len(fake.paths)
    assert refused >= 1
    assert max(fake.body_sizes) <= 20_000
    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(300))
    assert workspace.statuses("braze") == {"delivered": 300}


def test_bulk_rate_limit_waits_for_x_ratelimit_reset(workspace):
    """Braze's 429 names the end of the window in X-RateLimit-Reset (unix seconds), not
    Retry-After: the shipper waits until then. A Retry-After, when sent, is obeyed."""
    fake = braze(workspace, endpoint="bulk")
    fake.misbehave(fake.rate_limited(reset_in=10), fake.rate_limited("4"), Reply(503, "busy"))
    mart(workspace, (braze_row(i) for i in range(5)))

    assert workspace.ship("run", "braze") == 0

    assert len(fake.requests) == 4
    waits = [wait for wait in workspace.clock.waits if wait >= 0.5]  # not the limiter's
    # Until the reset, read from the header: a whole unix second, so 9 to 10 s away (a
    # little less by the time the answer is read); a first backoff is at most 1 s.
    assert 8.0 <= waits[0] <= 10.0
    assert waits[1] == 4.0
    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(5))
    with workspace.ledger() as ledger:
        assert ledger.delivery("braze", "cust-0")["attempts"] == 4


def test_bulk_keeps_to_50_requests_a_second_unless_set(workspace):
    fake = braze(workspace, endpoint="bulk")
    workspace.env(BRAZE_BULK_BATCH_SIZE="10", BRAZE_CONCURRENCY="1")
    mart(workspace, (braze_row(i) for i in range(50)))

    assert workspace.ship("run", "braze") == 0

    assert len(fake.requests) == 5
    # Requests 2 to 5 each waited for their slot, 1/50 s after the one before.
    assert workspace.clock.waits == pytest.approx([0.02] * 4)


def test_bulk_without_the_permission_stops_with_a_hint(workspace, capsys):
    fake = braze(workspace, endpoint="bulk", bulk_allowed=False)
    mart(workspace, (braze_row(i) for i in range(5)))

    assert workspace.ship("run", "braze") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("braze") == {"failed": 5}
    captured = capsys.readouterr()
    assert "users.track.bulk" in captured.out + captured.err
    assert 'endpoint = "track"' in captured.out + captured.err


@pytest.mark.parametrize("setting, value, words", [
    ("BRAZE_ENDPOINT", "fast", 'must be "track" or "bulk"'),
    ("BRAZE_BULK_BATCH_SIZE", "1001", "bulk_batch_size 1001"),
    ("BRAZE_BULK_MAX_REQUEST_BYTES", "3000000", "bulk_max_request_bytes 3000000"),
])
def test_bulk_settings_out_of_braze_limits_are_refused(workspace, capsys, setting, value,
                                                      words):
    fake = braze(workspace, endpoint="bulk")
    workspace.env(**{setting: value})
    mart(workspace, [braze_row(1)])

    assert workspace.ship("run", "braze") == 2

    assert fake.requests == []
    assert words in capsys.readouterr().err


def test_batch_size_over_75_is_refused_for_track(workspace, capsys):
    """batch_size is /users/track's; a bulk-sized one is a configuration error."""
    braze(workspace)
    workspace.env(BRAZE_BATCH_SIZE="1000")
    mart(workspace, [braze_row(1)])

    assert workspace.ship("run", "braze") == 2

    assert "maximum of 75" in capsys.readouterr().err


def test_bulk_dry_run_writes_bodies_of_up_to_1000_objects(workspace):
    fake = braze(workspace, endpoint="bulk")
    mart(workspace, (braze_row(i) for i in range(1_200)))

    assert workspace.ship("run", "braze", "--dry-run") == 0

    files = sorted((workspace.outbox / "braze").glob("*.json"))
    assert [len(json.loads(path.read_text())["attributes"]) for path in files] == [1_000, 200]
    assert fake.requests == []
