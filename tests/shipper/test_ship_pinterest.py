"""Pinterest API for Conversions: per-event statuses, HTTP 422 for partial failures."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.pinterest import FakePinterest
from tests.fakes.server import Reply, Reset, Stall
from tests.shipper.marts import payload_of, sha, write_mart

DAY = 86_400
TOKEN = "pina_pinterest-test-token-0123456789"
USER_KEYS = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "external_id")
PINTEREST_CONVERSIONS = {
    "delivery_key": "varchar",
    "event_name": "varchar",
    "action_source": "varchar",
    "event_time": "bigint",
    "event_id": "varchar",
    **{key: "varchar" for key in USER_KEYS},
    "value": "varchar",
    "currency": "varchar",
    "order_id": "varchar",
    "num_items": "integer",
    "content_ids": "varchar",
    "payload": "varchar",
}


def pinterest_row(index: int, *, age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {key: None for key in PINTEREST_CONVERSIONS}
    row.update({
        "delivery_key": f"evt-{index}",
        "event_name": "checkout",
        "action_source": "offline",
        "event_time": int(time.time()) - age_seconds - index % 600,
        "event_id": f"evt-{index}",
        "em": sha(f"customer{index}@example.com"),
        "ph": sha(f"1650555{index:04d}"),
        "country": sha("us"),
        "value": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "order_id": f"SO-{index}",
        "num_items": 2,
        "content_ids": json.dumps([f"sku-{index % 7}", "sku-9"]),
    })
    row.update(overrides)
    return row


def pinterest(workspace, **options: Any) -> FakePinterest:
    fake = FakePinterest(**options)
    server = workspace.servers(fake)
    workspace.env(PINTEREST_BASE_URL=server.url, PINTEREST_ACCESS_TOKEN=fake.token,
                  PINTEREST_AD_ACCOUNT_ID=fake.ad_account_id, PINTEREST_TIMEOUT_SECONDS="5",
                  PINTEREST_REQUESTS_PER_SECOND="0")
    return fake


def mart(workspace, rows) -> None:
    write_mart(workspace.mart_path, "pinterest_conversions", PINTEREST_CONVERSIONS, rows)


def test_happy_path_and_request_shape(workspace):
    fake = pinterest(workspace)
    mart(workspace, (pinterest_row(i, fn=sha("mary") if i == 1 else None) for i in range(20)))

    assert workspace.ship("run", "pinterest") == 0

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(20))
    assert fake.duplicates() == {}
    (request,) = fake.requests
    assert request.path == "/v5/ad_accounts/549755885175/events"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert request.param("test") is None
    assert TOKEN not in request.body.decode()
    body = request.json()
    assert set(body) == {"data"}
    event = next(event for event in body["data"] if event["event_id"] == "evt-1")
    assert event == {
        "event_name": "checkout",
        "action_source": "offline",
        "event_time": event["event_time"],
        "event_id": "evt-1",
        "user_data": {"em": [sha("customer1@example.com")], "ph": [sha("16505550001")],
                      "fn": [sha("mary")], "country": [sha("us")]},
        "custom_data": {"currency": "USD", "value": "11.01", "order_id": "SO-1",
                        "num_items": 2, "content_ids": ["sku-1", "sku-9"]},
    }
    assert workspace.statuses("pinterest") == {"delivered": 20}


def test_batches_hold_at_most_1000_events(workspace):
    fake = pinterest(workspace)
    mart(workspace, (pinterest_row(i) for i in range(2300)))

    assert workspace.ship("run", "pinterest") == 0

    assert sorted(fake.batch_sizes) == [300, 1000, 1000]
    assert len(set(fake.accepted_ids)) == 2300


def test_422_rejects_the_failed_events_with_pinterests_message_and_keeps_the_rest(workspace):
    fake = pinterest(workspace)
    fake.failing = {"evt-3", "evt-17"}
    mart(workspace, (pinterest_row(i) for i in range(25)))

    assert workspace.ship("run", "pinterest") == 1

    assert len(fake.requests) == 1  # one request: no split, no resend
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(25)
                                               if i not in (3, 17))
    with workspace.ledger() as ledger:
        rejected = {row["delivery_key"]: (row["rejected_by"], row["reason"])
                    for row in ledger.rejections(["pinterest"])}
    assert rejected == {"evt-3": ("platform", "Event could not be processed"),
                        "evt-17": ("platform", "Event could not be processed")}
    assert workspace.statuses("pinterest") == {"delivered": 23, "rejected": 2}

    # The rerun sends nothing: the accepted are delivered, the rejected unchanged.
    assert workspace.ship("run", "pinterest") == 0
    assert len(fake.requests) == 1


def test_a_request_refused_as_a_whole_is_split(workspace):
    fake = pinterest(workspace)
    fake.poison = {"evt-6"}
    workspace.env(PINTEREST_BATCH_SIZE="16")
    mart(workspace, (pinterest_row(i) for i in range(16)))

    assert workspace.ship("run", "pinterest") == 1

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(16) if i != 6)
    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["pinterest"])
    assert rejection["delivery_key"] == "evt-6"
    assert "the request was refused" in rejection["reason"]


def test_retries_429_500_timeout_and_reset(workspace):
    fake = pinterest(workspace)
    workspace.env(PINTEREST_TIMEOUT_SECONDS="0.3")
    fake.misbehave(fake.throttled("2"), Reply(500, {"code": 0, "message": "oops"}),
                   Stall(1.0), Reset())
    mart(workspace, (pinterest_row(i) for i in range(8)))

    assert workspace.ship("run", "pinterest") == 0

    assert len(fake.requests) == 5
    assert workspace.clock.waits[0] == 2.0
    assert len(workspace.clock.waits) == 4
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(8))


def test_events_past_the_7_day_api_window_expire_without_changing_the_exit_code(workspace,
                                                                               capsys):
    fake = pinterest(workspace)
    mart(workspace, [
        pinterest_row(1, age_seconds=6 * DAY),
        pinterest_row(2, age_seconds=8 * DAY),
        pinterest_row(3, age_seconds=30 * DAY),
    ])

    assert workspace.ship("run", "pinterest") == 0

    assert fake.accepted_ids == ["evt-1"]
    assert workspace.statuses("pinterest") == {"delivered": 1, "expired": 2}
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["pinterest"])
        assert ledger.rejections(["pinterest"]) == []
        assert ledger.delivery("pinterest", "evt-2")["status"] == "expired"
    assert (run["rows_sent"], run["rows_expired"], run["status"]) == (1, 2, "ok")
    assert "expired" in capsys.readouterr().out

    # An expired event stays expired: a rerun skips it, sends nothing, exits 0.
    assert workspace.ship("run", "pinterest") == 0
    assert len(fake.requests) == 1
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["pinterest"])
    assert (run["rows_skipped"], run["rows_expired"]) == (3, 0)


def test_the_events_are_the_marts_payloads_byte_for_byte(workspace):
    """The shipper adds only Pinterest's envelope: `data` is the mart's payloads as they
    are, including a field the mart added that the shipper knows nothing about."""
    fake = pinterest(workspace)
    rows = [pinterest_row(i) for i in range(3)]
    payloads = [payload_of("pinterest_conversions", row) for row in rows]
    # A field the analyst added in SQL, and JSON written with other spacing and escapes:
    # both travel as they are.
    event = json.loads(payloads[1])
    event["custom_data"]["content_name"] = 'Zoë\'s "Main St" \u00e9'
    payloads[1] = json.dumps(event)
    mart(workspace, ({**row, "payload": payload}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "pinterest") == 0

    (request,) = fake.requests
    assert request.body == ('{"data":[' + ",".join(payloads) + "]}").encode()
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-2"]


def test_test_mode_sends_test_true_and_keeps_the_rows_pending(workspace):
    fake = pinterest(workspace)
    fake.failing = {"evt-2"}
    workspace.env(PINTEREST_TEST_MODE="true")
    mart(workspace, (pinterest_row(i) for i in range(5)))

    assert workspace.ship("run", "pinterest") == 2

    assert fake.requests[0].param("test") == "true"
    assert fake.test_requests == 1
    assert fake.accepted_ids == []
    assert workspace.statuses("pinterest") == {"failed": 4, "rejected": 1}

    workspace.env(PINTEREST_TEST_MODE="false")
    fake.failing = set()
    assert workspace.ship("run", "pinterest") == 0
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(5) if i != 2)


def test_a_refused_token_stops_the_destination(workspace, capsys):
    fake = pinterest(workspace)
    workspace.env(PINTEREST_ACCESS_TOKEN="pina_wrong-token-000000")
    mart(workspace, (pinterest_row(i) for i in range(4)))

    assert workspace.ship("run", "pinterest") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("pinterest") == {"failed": 4}
    captured = capsys.readouterr()
    assert "check PINTEREST_ACCESS_TOKEN" in captured.out + captured.err


def test_rerun_sends_only_new_rows(workspace):
    fake = pinterest(workspace)
    mart(workspace, (pinterest_row(i) for i in range(10)))
    assert workspace.ship("run", "pinterest") == 0
    mart(workspace, (pinterest_row(i) for i in range(13)))
    assert workspace.ship("run", "pinterest") == 0
    assert fake.batch_sizes == [10, 3]
    assert fake.duplicates() == {}


def test_dry_run_body_without_the_token_and_skip_without_it(workspace, capsys):
    fake = pinterest(workspace)
    mart(workspace, (pinterest_row(i) for i in range(3)))
    assert workspace.ship("run", "pinterest", "--dry-run") == 0
    (path,) = sorted((workspace.outbox / "pinterest").glob("*.json"))
    assert TOKEN not in path.read_text()
    assert [event["event_id"] for event in json.loads(path.read_text())["data"]] == [
        "evt-0", "evt-1", "evt-2"]
    assert fake.requests == []

    workspace.monkeypatch.delenv("PINTEREST_ACCESS_TOKEN")
    workspace.meta()
    workspace.meta_mart([])
    capsys.readouterr()
    assert workspace.ship("run", "meta", "pinterest") == 2
    assert "pinterest cannot be sent without PINTEREST_ACCESS_TOKEN" in capsys.readouterr().err
    assert fake.requests == []
