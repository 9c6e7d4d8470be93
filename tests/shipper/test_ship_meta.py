"""Meta end to end: a mart in DuckDB -> the real `ship run` -> the fake Conversions API."""

from __future__ import annotations

import json

from tests.shipper.marts import META_TOKEN, meta_row, payload_of, sha

DAY = 86_400


def test_happy_path_delivers_every_event_once(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(25))

    assert workspace.ship("run", "meta") == 0

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(25))
    assert fake.duplicates() == {}
    assert workspace.statuses("meta") == {"delivered": 25}
    out = capsys.readouterr().out
    assert "meta" in out and "ok" in out


def test_request_shape_follows_the_conversions_api(workspace):
    fake = workspace.meta()
    workspace.env(META_TEST_EVENT_CODE="TEST4242")
    workspace.meta_mart([meta_row(1, fn=sha("mary"), external_id=None, num_items=3)])

    assert workspace.ship("run", "meta") == 0

    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == "/v26.0/4242/events"
    assert request.param("access_token") == META_TOKEN
    assert request.header("user-agent").startswith("offline-conversions-shipper/")
    body = request.json()
    assert set(body) == {"data", "test_event_code"}
    assert body["test_event_code"] == "TEST4242"
    assert META_TOKEN not in request.body.decode()
    (event,) = body["data"]
    assert event["event_name"] == "Purchase"
    assert event["action_source"] == "physical_store"
    assert event["event_id"] == "evt-1"
    assert isinstance(event["event_time"], int)
    # One-element lists; NULL identifiers are left out, not sent as null.
    assert event["user_data"] == {
        "em": [sha("customer1@example.com")],
        "ph": [sha("16505550001")],
        "fn": [sha("mary")],
        "country": [sha("us")],
    }
    assert event["custom_data"] == {
        "value": 11.01,
        "currency": "USD",
        "order_id": "SO-1",
        "contents": [{"id": "sku-1", "quantity": 1, "item_price": 10.5}],
        "num_items": 3,
    }


def test_batches_hold_at_most_1000_events(workspace):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(2500))

    assert workspace.ship("run", "meta") == 0

    assert sorted(fake.batch_sizes) == [500, 1000, 1000]
    assert len(set(fake.accepted_ids)) == 2500
    assert fake.duplicates() == {}


def test_rerun_sends_nothing_new_and_new_rows_only(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(30))
    assert workspace.ship("run", "meta") == 0
    requests_after_first_run = len(fake.requests)

    assert workspace.ship("run", "meta") == 0
    assert len(fake.requests) == requests_after_first_run
    out = capsys.readouterr().out
    assert "30  " in out  # 30 read and 30 skipped on the second run

    workspace.meta_mart(meta_row(i) for i in range(35))
    assert workspace.ship("run", "meta") == 0
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(35))
    assert fake.duplicates() == {}
    with workspace.ledger() as ledger:
        (last_run, *_) = ledger.recent_runs(["meta"])
    assert (last_run["rows_read"], last_run["rows_skipped"], last_run["rows_sent"]) == (35, 30, 5)


def test_each_event_is_held_to_its_own_action_sources_age_limit(workspace, capsys):
    """Meta takes a physical_store event up to 62 days old and any other up to 7 (its
    "Using the API" page), and refuses a whole request holding one older event. The
    mart names each event's limit: a 30-day store event is sent, an 8-day phone event
    and a 63-day store event are recorded expired, not sent, and the exit code is 0."""
    fake = workspace.meta()
    workspace.meta_mart([
        *(meta_row(i) for i in range(10)),
        meta_row(100, age_seconds=30 * DAY),  # physical_store: within 62 days
        meta_row(101, age_seconds=6 * DAY, action_source="phone_call"),  # within 7
        meta_row(102, age_seconds=8 * DAY, action_source="phone_call"),  # past 7
        meta_row(103, age_seconds=63 * DAY),  # past 62
    ])

    assert workspace.ship("run", "meta") == 0

    assert sorted(fake.accepted_ids) == sorted(
        [f"evt-{i}" for i in range(10)] + ["evt-100", "evt-101"])
    sent = {event["event_id"]: event["action_source"] for event in fake.accepted}
    assert (sent["evt-100"], sent["evt-101"]) == ("physical_store", "phone_call")
    # One request: nothing Meta would refuse went with the others.
    assert len(fake.requests) == 1
    assert workspace.statuses("meta") == {"delivered": 12, "expired": 2}
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["meta"])
        assert ledger.rejections(["meta"]) == []
        expired = ledger.delivery("meta", "order-102")
        assert ledger.delivery("meta", "order-103")["status"] == "expired"
    assert (run["rows_sent"], run["rows_expired"], run["status"]) == (12, 2, "ok")
    assert expired["status"] == "expired"
    assert "max_event_age_days" in expired["error"]
    assert "expired" in capsys.readouterr().out

    # An expired event stays expired: a rerun skips it, sends nothing, exits 0.
    requests = len(fake.requests)
    assert workspace.ship("run", "meta") == 0
    assert len(fake.requests) == requests
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["meta"])
    assert (run["rows_skipped"], run["rows_expired"]) == (14, 0)


def test_the_fake_refuses_like_meta_an_event_past_its_action_sources_limit(workspace):
    """What the expiry spares us: a mart that named a phone event's limit wrongly (62
    days) sends an 8-day phone event; Meta refuses the whole request for it, the batch
    is split until it is alone, and it is rejected while the store event of 30 days
    beside it lands."""
    fake = workspace.meta()
    workspace.meta_mart([
        meta_row(1, age_seconds=30 * DAY),
        meta_row(2, age_seconds=8 * DAY, action_source="phone_call", max_event_age_days=62),
    ])

    assert workspace.ship("run", "meta") == 1

    assert fake.accepted_ids == ["evt-1"]
    assert len(fake.requests) == 3  # both, then each alone
    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["meta"])
    assert rejection["delivery_key"] == "order-2"
    assert "event_time is older than 7 days" in rejection["reason"]


def test_validate_counts_expired_events_by_their_own_limit(workspace, capsys):
    workspace.meta_mart([
        meta_row(1, age_seconds=30 * DAY),
        meta_row(2, age_seconds=8 * DAY, action_source="phone_call"),
        meta_row(3, age_seconds=63 * DAY),
        meta_row(4, age_seconds=2 * DAY, action_source="phone_call"),
    ])

    assert workspace.ship("validate", "meta") == 0

    # rows, valid, invalid, expired now
    assert capsys.readouterr().out.splitlines()[1].split()[1:5] == ["4", "4", "0", "2"]


def test_a_mart_without_each_events_age_limit_is_refused(workspace, capsys):
    """A meta_conversions built before the limit was per event: the shipper cannot tell
    a store event's limit from a phone event's, so it sends nothing and says why."""
    from tests.shipper.marts import META_CONVERSIONS, write_mart

    fake = workspace.meta()
    columns = {name: kind for name, kind in META_CONVERSIONS.items()
               if name != "max_event_age_days"}
    write_mart(workspace.mart_path, "meta_conversions", columns, [meta_row(1)])

    assert workspace.ship("run", "meta") == 2

    assert fake.requests == []
    assert "meta_conversions lacks column(s) max_event_age_days" in capsys.readouterr().out


def test_the_body_is_the_marts_payloads_byte_for_byte(workspace):
    """The shipper adds only the envelope: whatever the mart's payload says is sent,
    including a field the mart added that the shipper knows nothing about."""
    fake = workspace.meta()
    rows = [meta_row(i) for i in range(3)]
    payloads = [payload_of("meta_conversions", row) for row in rows]
    # A field the analyst added in SQL, and JSON written with other spacing and escapes:
    # both travel as they are.
    event = json.loads(payloads[1])
    event["custom_data"]["store_name"] = 'Zoë\'s "Main St" \u00e9'
    payloads[1] = json.dumps(event)
    workspace.meta_mart({**row, "payload": payload}
                        for row, payload in zip(rows, payloads, strict=True))

    assert workspace.ship("run", "meta") == 0

    (request,) = fake.requests
    assert request.body == ('{"data":[' + ",".join(payloads) + "]}").encode()


def test_a_batch_refused_as_a_whole_is_split_until_the_bad_event_is_alone(workspace):
    fake = workspace.meta()
    fake.poison = {"evt-37"}
    workspace.env(META_BATCH_SIZE="64")
    workspace.meta_mart(meta_row(i) for i in range(64))

    assert workspace.ship("run", "meta") == 1

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(64) if i != 37)
    assert fake.duplicates() == {}
    # 1 request of 64, then halves down to the single bad event: 1 + 2 * log2(64).
    assert len(fake.requests) == 13
    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["meta"])
        record = ledger.delivery("meta", "order-37")
    assert rejection["delivery_key"] == "order-37"
    assert rejection["rejected_by"] == "platform"
    assert "the event was refused" in rejection["reason"]
    assert record["attempts"] == 7

    # Same content, same answer: a rerun does not send the refused event again...
    assert workspace.ship("run", "meta") == 0
    assert len(fake.requests) == 13
    # ...but a corrected row (new fingerprint) is sent.
    fake.poison = set()
    workspace.meta_mart([*(meta_row(i) for i in range(64) if i != 37),
                         meta_row(37, num_items=2)])
    assert workspace.ship("run", "meta") == 0
    assert fake.accepted_ids.count("evt-37") == 1


def test_two_bad_events_in_different_halves_are_both_isolated(workspace):
    fake = workspace.meta()
    fake.poison = {"evt-3", "evt-90"}
    workspace.env(META_BATCH_SIZE="100")
    workspace.meta_mart(meta_row(i) for i in range(100))

    assert workspace.ship("run", "meta") == 1

    assert len(fake.accepted_ids) == 98
    with workspace.ledger() as ledger:
        rejected = sorted(row["delivery_key"] for row in ledger.rejections(["meta"]))
    assert rejected == ["order-3", "order-90"]


def test_throttling_codes_inside_a_400_are_retried(workspace):
    fake = workspace.meta()
    fake.misbehave(fake.throttled(17), fake.throttled(613), fake.throttled(4))
    workspace.meta_mart(meta_row(i) for i in range(5))

    assert workspace.ship("run", "meta") == 0

    assert len(fake.requests) == 4
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(5))
    assert len(workspace.clock.waits) == 3
    with workspace.ledger() as ledger:
        assert ledger.delivery("meta", "order-0")["attempts"] == 4


def test_a_refused_token_stops_the_destination_and_loses_nothing(workspace, capsys):
    fake = workspace.meta()
    workspace.env(META_ACCESS_TOKEN="meta-wrong-token-000000", META_BATCH_SIZE="10",
                  META_CONCURRENCY="1")
    workspace.meta_mart(meta_row(i) for i in range(50))

    assert workspace.ship("run", "meta") == 2

    # One request, refused; nothing marked rejected because of our own credentials.
    assert len(fake.requests) == 1
    assert fake.accepted_ids == []
    statuses = workspace.statuses("meta")
    assert statuses == {"failed": 10}
    captured = capsys.readouterr()
    assert "check META_ACCESS_TOKEN" in captured.out + captured.err

    workspace.env(META_ACCESS_TOKEN=META_TOKEN)
    assert workspace.ship("run", "meta") == 0
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(50))


def test_concurrency_bounds_requests_in_flight(workspace):
    fake = workspace.meta()
    fake.latency = 0.05
    workspace.env(META_BATCH_SIZE="10", META_CONCURRENCY="3")
    workspace.meta_mart(meta_row(i) for i in range(200))

    assert workspace.ship("run", "meta") == 0

    assert len(fake.requests) == 20
    assert 2 <= fake.max_in_flight <= 3
    assert fake.duplicates() == {}


def test_rate_limit_spaces_requests(workspace):
    fake = workspace.meta()
    workspace.env(META_BATCH_SIZE="10", META_CONCURRENCY="1", META_REQUESTS_PER_SECOND="4")
    workspace.meta_mart(meta_row(i) for i in range(50))

    assert workspace.ship("run", "meta") == 0

    assert len(fake.requests) == 5
    # The fake clock never moves on its own, so each request waits one full slot.
    assert workspace.clock.waits == [0.25] * 4


def test_events_received_body_is_read_as_json(workspace):
    fake = workspace.meta()
    workspace.meta_mart([meta_row(7)])
    assert workspace.ship("run", "meta") == 0
    assert json.loads(fake.requests[0].body)["data"][0]["event_id"] == "evt-7"


def test_a_payload_that_is_not_a_json_object_is_rejected_alone(workspace):
    """A poison row never sinks its batch: the 999 events beside it land, on every run."""
    fake = workspace.meta()
    rows = [meta_row(i) for i in range(1000)]
    rows[500]["payload"] = "\x00raw-json\x00"
    rows[600]["payload"] = '{"event_name": "Purchase", '  # cut off
    # The text the old encoder used as a placeholder is now just text.
    event = json.loads(payload_of("meta_conversions", rows[700]))
    event["custom_data"]["order_id"] = "\x00raw-json\x00"
    rows[700]["payload"] = json.dumps(event)
    workspace.meta_mart(rows)

    assert workspace.ship("run", "meta") == 1

    assert len(set(fake.accepted_ids)) == 998
    with workspace.ledger() as ledger:
        reasons = {row["delivery_key"]: row["reason"] for row in ledger.rejections(["meta"])}
    assert reasons == {"order-500": "payload is not a JSON object",
                       "order-600": "payload is not a JSON object"}
    # Until the mart is fixed, each run says so again; nothing is sent twice.
    assert workspace.ship("run", "meta") == 1
    assert len(fake.accepted_ids) == 998
