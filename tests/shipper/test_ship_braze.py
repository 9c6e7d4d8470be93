"""Braze /users/track: a profile destination sent again only when a profile changes."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from tests.fakes.braze import FakeBraze
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


def braze(workspace, **options: Any) -> FakeBraze:
    fake = FakeBraze(**options)
    server = workspace.servers(fake)
    workspace.env(BRAZE_BASE_URL=server.url, BRAZE_API_KEY=fake.api_key,
                  BRAZE_TIMEOUT_SECONDS="5")
    return fake


def with_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the mart holds it: its payload (unless the test gives one) and the
    payload's SHA-256, the fingerprint that decides whether a profile is sent again."""
    payload = row.get("payload") or payload_of("braze_attributes", row)
    fingerprint = row.get("payload_sha256") or hashlib.sha256(payload.encode()).hexdigest()
    return {**row, "payload": payload, "payload_sha256": fingerprint}


def mart(workspace, rows) -> None:
    write_mart(workspace.mart_path, "braze_attributes", BRAZE_ATTRIBUTES,
               (with_payload(row) for row in rows))


def test_happy_path_and_request_shape(workspace):
    fake = braze(workspace)
    mart(workspace, (braze_row(i) for i in range(20)))

    assert workspace.ship("run", "braze") == 0

    assert sorted(fake.external_ids) == sorted(f"cust-{i}" for i in range(20))
    (request,) = fake.requests
    assert request.path == "/users/track"
    assert request.header("authorization") == f"Bearer {KEY}"
    assert KEY not in request.body.decode()
    body = request.json()
    assert set(body) == {"attributes"}
    first = next(item for item in body["attributes"] if item["external_id"] == "cust-0")
    # Every column but delivery_key; a NULL goes as null (Braze removes the attribute).
    assert first == {
        "external_id": "cust-0",
        "last_offline_purchase_date": "2026-11-01",
        "offline_orders_365d": 1,
        "offline_revenue_365d": 80.0,
        "offline_revenue_currency": "EUR",
        "last_store_id": "store-0",
        "favourite_category": None,
    }
    assert fake.profiles["cust-1"]["offline_revenue_365d"] == 150.0
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


def test_partial_failure_rejects_by_index_and_keeps_the_rest(workspace):
    fake = braze(workspace)
    fake.refuse = {"cust-4", "cust-40"}
    mart(workspace, (braze_row(i) for i in range(50)))

    assert workspace.ship("run", "braze") == 1

    assert len(fake.requests) == 1
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


def test_a_refused_key_stops_the_destination(workspace, capsys):
    fake = braze(workspace)
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
