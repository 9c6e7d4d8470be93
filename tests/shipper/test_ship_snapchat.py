"""Snapchat Conversions API v3: VALID / INVALID answers, /events/validate as the test mode,
and the API path refused together with the CSV path (snapchat_file) live."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fakes.server import Reply, Reset, Stall
from tests.fakes.snapchat import FakeSnapchat
from tests.files.conftest import SNAPCHAT_CONVERSIONS_CSV
from tests.shipper.marts import payload_of, sha, write_mart

DAY = 86_400
TOKEN = "snap-capi-test-token-0123456789"
PIXEL = "1ec32188-754e-4be2-8e55-c949a984a39f"
# snapchat_conversions, as its dbt contract types it.
SNAPCHAT_CONVERSIONS = {
    "delivery_key": "varchar",
    "event_type": "varchar",
    "hashed_email": "varchar",
    "hashed_phone": "varchar",
    "event_time": "bigint",
    "timestamp_utc": "varchar",
    "price": "decimal(18, 2)",
    "currency": "varchar",
    "transaction_id": "varchar",
    "item_ids": "varchar",
    "number_items": "integer",
    "action_source": "varchar",
    "event_id": "varchar",
    "hashed_first_name": "varchar",
    "hashed_last_name": "varchar",
    "content_ids": "varchar",
    "payload": "varchar",
}


def snapchat_row(index: int, *, age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    moment = int(time.time()) - age_seconds - index % 600
    row: dict[str, Any] = {key: None for key in SNAPCHAT_CONVERSIONS}
    row.update({
        "delivery_key": f"evt-{index}",
        "event_type": "PURCHASE",
        "hashed_email": sha(f"customer{index}@example.com"),
        "hashed_phone": sha(f"1650555{index:04d}"),
        "event_time": moment,
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
        "price": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "transaction_id": f"SO-{index}",
        "item_ids": f"sku-{index % 7};sku-9",
        "number_items": 2,
        "action_source": "OFFLINE",
        "event_id": f"evt-{index}",
        "content_ids": json.dumps([f"sku-{index % 7}", "sku-9"]),
    })
    row.update(overrides)
    return row


def snapchat(workspace, **options: Any) -> FakeSnapchat:
    fake = FakeSnapchat(**options)
    server = workspace.servers(fake)
    workspace.env(SNAPCHAT_BASE_URL=server.url, SNAPCHAT_ACCESS_TOKEN=fake.token,
                  SNAPCHAT_PIXEL_ID=fake.pixel_id, SNAPCHAT_TIMEOUT_SECONDS="5")
    return fake


def mart(workspace, rows) -> None:
    write_mart(workspace.mart_path, "snapchat_conversions", SNAPCHAT_CONVERSIONS, rows)


def rejections(workspace) -> dict[str, tuple[str, str]]:
    with workspace.ledger() as ledger:
        return {row["delivery_key"]: (row["rejected_by"], row["reason"])
                for row in ledger.rejections(["snapchat"])}


def test_happy_path_and_request_shape(workspace):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i, hashed_first_name=sha("valéry") if i == 1 else None)
                     for i in range(20)))

    assert workspace.ship("run", "snapchat") == 0

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(20))
    assert fake.duplicates() == {}
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v3/{PIXEL}/events"
    assert request.query == {"access_token": [TOKEN]}
    assert request.header("authorization") is None
    assert request.header("content-type") == "application/json"
    assert TOKEN not in request.body.decode()
    body = request.json()
    assert set(body) == {"data"}
    event = next(event for event in body["data"] if event["event_id"] == "evt-1")
    assert event == {
        "event_name": "PURCHASE",
        "action_source": "OFFLINE",
        "event_time": event["event_time"],
        "event_id": "evt-1",
        "user_data": {"em": [sha("customer1@example.com")], "ph": [sha("16505550001")],
                      "fn": [sha("valéry")]},
        "custom_data": {"currency": "USD", "value": 11.01, "order_id": "SO-1", "num_items": 2,
                        "content_ids": ["sku-1", "sku-9"]},
    }
    assert isinstance(event["event_time"], int)
    assert workspace.statuses("snapchat") == {"delivered": 20}


def test_batches_hold_1000_events_by_default_and_at_most_2000(workspace, capsys):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(2300)))
    assert workspace.ship("run", "snapchat") == 0
    assert sorted(fake.batch_sizes) == [300, 1000, 1000]

    mart(workspace, (snapchat_row(i) for i in range(2300, 4600)))
    workspace.env(SNAPCHAT_BATCH_SIZE="2000")
    assert workspace.ship("run", "snapchat") == 0
    assert sorted(fake.batch_sizes) == [300, 300, 1000, 1000, 2000]
    assert len(set(fake.accepted_ids)) == 4600

    workspace.env(SNAPCHAT_BATCH_SIZE="2001")
    capsys.readouterr()
    assert workspace.ship("run", "snapchat") == 2
    assert "over the platform maximum of 2000" in capsys.readouterr().err


def test_an_invalid_event_is_rejected_per_row_with_snaps_message_and_the_rest_delivered(
        workspace):
    fake = snapchat(workspace)
    fake.failing = {"evt-3", "evt-11"}
    workspace.env(SNAPCHAT_BATCH_SIZE="16")
    mart(workspace, (snapchat_row(i) for i in range(16)))

    assert workspace.ship("run", "snapchat") == 1

    # Snap refused the request naming an event: the batch was split until each bad
    # event was alone; the good ones landed once each.
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(16) if i not in (3, 11))
    assert fake.duplicates() == {}
    rejected = rejections(workspace)
    assert set(rejected) == {"evt-3", "evt-11"}
    for rejected_by, reason in rejected.values():
        assert rejected_by == "platform"
        assert "Event could not be processed" in reason
        assert "EVENT_REJECTED" in reason
    assert workspace.statuses("snapchat") == {"delivered": 14, "rejected": 2}

    # The rerun sends nothing: the accepted are delivered, the rejected unchanged.
    sent = len(fake.requests)
    assert workspace.ship("run", "snapchat") == 0
    assert len(fake.requests) == sent


BROKEN_EVENTS = {
    "a purchase without value": (
        lambda event: event["custom_data"].pop("value"),
        "Missing price and/or currency in Purchase events"),
    "value as a string": (
        lambda event: event["custom_data"].update(value="10.50"),
        "custom_data.value has the wrong type"),
    "an unhashed email": (
        lambda event: event["user_data"].update(em=["customer@example.com"]),
        "Unhashed PII in user_data.em"),
    "no email or phone": (
        lambda event: event.update(user_data={"fn": [sha("mary")]}),
        "Insufficient PII"),
    "an unknown member": (
        lambda event: event.update(price=10.5),
        "Unknown parameter 'price'"),
    "an unknown custom_data member": (
        lambda event: event["custom_data"].update(transaction_id="SO-1"),
        "Unknown parameter 'custom_data.transaction_id'"),
    "num_items as text": (
        lambda event: event["custom_data"].update(num_items="2"),
        "custom_data.num_items has the wrong type"),
    "event_time in milliseconds": (
        lambda event: event.update(event_time=event["event_time"] * 1000),
        "Timestamp invalid or out of range"),
    "a lower-case action source": (
        lambda event: event.update(action_source="offline"),
        "'offline' is not an action_source"),
}


@pytest.mark.parametrize(("breaks", "message"), BROKEN_EVENTS.values(), ids=BROKEN_EVENTS.keys())
def test_the_fake_checks_every_member_and_its_type(workspace, breaks, message):
    """A payload Snap would refuse (the fake as strict as Snap's pages): that event is
    rejected with Snap's message, the others of its batch are delivered."""
    fake = snapchat(workspace)
    rows = [snapchat_row(i) for i in range(4)]
    event = json.loads(payload_of("snapchat_conversions", rows[2]))
    breaks(event)
    rows[2]["payload"] = json.dumps(event)
    mart(workspace, rows)

    assert workspace.ship("run", "snapchat") == 1

    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-3"]
    ((rejected_by, reason),) = rejections(workspace).values()
    assert rejected_by == "platform"
    assert message in reason


def test_retries_429_5xx_stalls_resets_and_a_proxys_html(workspace):
    fake = snapchat(workspace)
    workspace.env(SNAPCHAT_TIMEOUT_SECONDS="0.3")
    fake.misbehave(fake.throttled("2"), Reply(500, {"status": "INVALID", "reason": "oops"}),
                   Stall(1.0), Reset(),
                   Reply(502, "<html><body>Bad Gateway</body></html>",
                         {"Content-Type": "text/html"}))
    mart(workspace, (snapchat_row(i) for i in range(8)))

    assert workspace.ship("run", "snapchat") == 0

    assert len(fake.requests) == 6
    assert workspace.clock.waits[0] == 2.0  # Retry-After honoured
    assert len(workspace.clock.waits) == 5
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(8))
    assert fake.duplicates() == {}


def test_a_200_html_page_from_a_proxy_delivers_nothing(workspace):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(3)))
    fake.fail_always(Reply(200, "<html><body><h1>200 OK</h1>Welcome to nginx</body></html>",
                           {"Content-Type": "text/html"}))

    assert workspace.ship("run", "snapchat") == 2

    assert fake.accepted_ids == []
    assert workspace.statuses("snapchat") == {"failed": 3}
    with workspace.ledger() as ledger:
        reason = ledger.delivery("snapchat", "evt-0")["error"]
    assert "HTTP 200 from Snapchat without Snapchat's own body" in reason

    fake.fail_always(None)
    assert workspace.ship("run", "snapchat") == 0
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-2"]


def test_events_past_snaps_37_days_expire_without_changing_the_exit_code(workspace):
    fake = snapchat(workspace)
    mart(workspace, [
        snapchat_row(1, age_seconds=36 * DAY),
        snapchat_row(2, age_seconds=38 * DAY),
        snapchat_row(3, age_seconds=60 * DAY),
    ])

    assert workspace.ship("run", "snapchat") == 0

    assert fake.accepted_ids == ["evt-1"]
    assert workspace.statuses("snapchat") == {"delivered": 1, "expired": 2}
    with workspace.ledger() as ledger:
        assert ledger.rejections(["snapchat"]) == []
        assert ledger.delivery("snapchat", "evt-2")["status"] == "expired"


def test_the_events_are_the_marts_payloads_byte_for_byte(workspace):
    fake = snapchat(workspace)
    rows = [snapchat_row(i) for i in range(3)]
    payloads = [payload_of("snapchat_conversions", row) for row in rows]
    # A member the analyst added in SQL, written with other spacing: sent as it is.
    event = json.loads(payloads[1])
    event["custom_data"]["brands"] = 'Zoë\'s "Main St" \u00e9'
    payloads[1] = json.dumps(event)
    mart(workspace, ({**row, "payload": payload}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "snapchat") == 0

    (request,) = fake.requests
    assert request.body == ('{"data":[' + ",".join(payloads) + "]}").encode()
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-2"]


def test_test_mode_sends_to_validate_and_keeps_the_rows_pending(workspace):
    fake = snapchat(workspace)
    fake.failing = {"evt-2"}
    workspace.env(SNAPCHAT_TEST_MODE="true")
    mart(workspace, (snapchat_row(i) for i in range(5)))

    assert workspace.ship("run", "snapchat") == 2

    (request,) = fake.requests  # the validate answer is per event: no split
    assert request.path == f"/v3/{PIXEL}/events/validate"
    assert request.query == {"access_token": [TOKEN]}
    assert fake.validate_requests == 1
    assert fake.accepted_ids == []
    assert workspace.statuses("snapchat") == {"failed": 4, "rejected": 1}
    assert "Event could not be processed" in rejections(workspace)["evt-2"][1]
    with workspace.ledger() as ledger:
        assert "test mode" in ledger.delivery("snapchat", "evt-0")["error"]

    workspace.env(SNAPCHAT_TEST_MODE="false")
    fake.failing = set()
    assert workspace.ship("run", "snapchat") == 0
    assert fake.requests[-1].path == f"/v3/{PIXEL}/events"
    # The event Snap found invalid is not sent again while its payload is unchanged.
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-3", "evt-4"]


def test_a_test_event_code_also_keeps_events_away_from_reporting(workspace):
    fake = snapchat(workspace)
    workspace.env(SNAPCHAT_TEST_EVENT_CODE="TEST123")
    mart(workspace, (snapchat_row(i) for i in range(2)))

    assert workspace.ship("run", "snapchat") == 2

    (request,) = fake.requests
    assert request.path.endswith("/events/validate")
    assert set(request.json()) == {"data"}
    assert fake.accepted_ids == []
    assert workspace.statuses("snapchat") == {"failed": 2}


@pytest.mark.parametrize(("variable", "value", "status"), [
    ("SNAPCHAT_ACCESS_TOKEN", "snap-wrong-token-000000", 401),
    ("SNAPCHAT_PIXEL_ID", "00000000-0000-0000-0000-000000000000", 403),
])
def test_a_refused_token_or_pixel_stops_the_destination(workspace, capsys, variable, value,
                                                         status):
    fake = snapchat(workspace)
    workspace.env(**{variable: value})
    mart(workspace, (snapchat_row(i) for i in range(4)))

    assert workspace.ship("run", "snapchat") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("snapchat") == {"failed": 4}
    captured = capsys.readouterr()
    assert "check SNAPCHAT_ACCESS_TOKEN and pixel_id" in captured.out + captured.err
    assert f"HTTP {status}" in captured.out + captured.err


def test_an_invalid_answer_about_the_token_is_not_split_into_rejections(workspace):
    fake = snapchat(workspace)
    fake.fail_always(fake.invalid(400, "Invalid access token"))
    mart(workspace, (snapchat_row(i) for i in range(8)))

    assert workspace.ship("run", "snapchat") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("snapchat") == {"failed": 8}


def test_rerun_sends_only_new_rows(workspace):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(10)))
    assert workspace.ship("run", "snapchat") == 0
    mart(workspace, (snapchat_row(i) for i in range(13)))
    assert workspace.ship("run", "snapchat") == 0
    assert fake.batch_sizes == [10, 3]
    assert fake.duplicates() == {}


def _both_paths(workspace) -> None:
    mart(workspace, (snapchat_row(i) for i in range(3)))
    write_mart(workspace.mart_path, "snapchat_conversions_csv", SNAPCHAT_CONVERSIONS_CSV, [
        {"delivery_key": f"evt-{i}", "hashed_email": sha(f"customer{i}@example.com"),
         "hashed_phone_number": None, "event_type": "PURCHASE",
         "timestamp": "2026-11-27T10:00:00Z", "price": "10.50", "currency": "USD",
         "transaction_id": f"SO-{i}", "item_ids": "sku-1", "number_items": 1}
        for i in range(3)])
    workspace.env(SNAPCHAT_FILE_TRANSPORT="directory",
                  SNAPCHAT_FILE_DIRECTORY=str(workspace.root / "drop"))


def test_the_api_and_the_csv_path_are_refused_together_live(workspace, capsys):
    fake = snapchat(workspace)
    _both_paths(workspace)

    assert workspace.ship("run", "snapchat", "snapchat_file") == 2

    err = capsys.readouterr().err
    assert "snapchat and snapchat_file would both send the same conversions" in err
    assert "count every sale twice" in err
    assert fake.requests == []
    assert not (workspace.root / "drop").exists() or not any((workspace.root / "drop").iterdir())

    # Each alone goes; a dry run writes both.
    assert workspace.ship("run", "snapchat", "snapchat_file", "--dry-run") == 0
    assert len(list((workspace.outbox / "snapchat").glob("*.json"))) == 1
    assert list((workspace.outbox / "snapchat_file").iterdir())
    assert fake.requests == []
    assert workspace.ship("run", "snapchat") == 0
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-2"]


def test_dry_run_writes_the_body_without_the_token(workspace):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(3)))

    assert workspace.ship("run", "snapchat", "--dry-run") == 0

    (path,) = sorted((workspace.outbox / "snapchat").glob("*.json"))
    text = path.read_text()
    assert TOKEN not in text
    assert [event["event_id"] for event in json.loads(text)["data"]] == [
        "evt-0", "evt-1", "evt-2"]
    assert fake.requests == []


def test_a_missing_credential_stops_with_one_sentence(workspace, capsys):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(3)))
    workspace.monkeypatch.delenv("SNAPCHAT_ACCESS_TOKEN")
    capsys.readouterr()

    assert workspace.ship("run", "snapchat") == 2

    err = capsys.readouterr().err.strip()
    assert err == ("ship: snapchat cannot be sent without SNAPCHAT_ACCESS_TOKEN: set it in the "
                   "environment, disable snapchat in shipper.toml, or use --dry-run.")
    assert fake.requests == []


def test_a_missing_pixel_id_stops_before_sending(workspace, capsys):
    fake = snapchat(workspace)
    mart(workspace, (snapchat_row(i) for i in range(3)))
    workspace.monkeypatch.delenv("SNAPCHAT_PIXEL_ID")
    capsys.readouterr()

    assert workspace.ship("run", "snapchat") == 2

    assert "snapchat needs pixel_id to send" in capsys.readouterr().err
    assert fake.requests == []
