"""Google Ads through the Data Manager API: a mart in DuckDB -> `ship run` -> the fake."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.server import Reply, Reset, Stall
from tests.shipper.marts import meta_row, payload_of, sha, write_mart

DAY = 86_400
TOKEN = "ya29.google-test-token-0123456789"
GOOGLE_ADS_CONVERSIONS = {
    "delivery_key": "varchar",
    "transaction_id": "varchar",
    "event_timestamp": "varchar",
    "conversion_date_time": "varchar",
    "conversion_value": "decimal(18, 2)",
    "currency": "varchar",
    "event_source": "varchar",
    "email_sha256": "varchar",
    "phone_sha256": "varchar",
    "ad_user_data_consent": "varchar",
    "ad_personalization_consent": "varchar",
    "event_time": "bigint",
    "payload": "varchar",
}


def google_row(index: int, *, age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    offset = dt.timezone(dt.timedelta(hours=-5))
    event_time = int(time.time()) - age_seconds - index % 600
    moment = dt.datetime.fromtimestamp(event_time, offset)
    row: dict[str, Any] = {
        "delivery_key": f"evt-{index}",
        "transaction_id": f"SO-{index}",
        "event_timestamp": moment.isoformat(timespec="seconds"),
        "conversion_date_time": moment.strftime("%Y-%m-%d %H:%M:%S%z"),
        "conversion_value": f"{10 + index % 90}.{index % 100:02d}",
        "currency": "USD",
        "event_source": "PHONE" if index % 5 == 0 else "IN_STORE",
        "email_sha256": sha(f"customer{index}@gmail.com"),
        "phone_sha256": sha(f"+1650555{index:04d}") if index % 2 else None,
        "ad_user_data_consent": "CONSENT_GRANTED",
        "ad_personalization_consent": "CONSENT_STATUS_UNSPECIFIED",
        # What the shipper ages the event by: the same moment in unix seconds.
        "event_time": event_time,
    }
    row.update(overrides)
    return row


def google(workspace, **options: Any) -> FakeGoogleAds:
    fake = FakeGoogleAds(**options)
    server = workspace.servers(fake)
    workspace.env(GOOGLE_ADS_BASE_URL=server.url, GOOGLE_ADS_ACCESS_TOKEN=fake.token,
                  GOOGLE_ADS_CUSTOMER_ID="123-456-7890",
                  GOOGLE_ADS_CONVERSION_ACTION_ID=fake.conversion_action_id,
                  GOOGLE_ADS_TIMEOUT_SECONDS="5")
    return fake


def mart(workspace, rows) -> None:
    write_mart(workspace.mart_path, "google_ads_conversions", GOOGLE_ADS_CONVERSIONS, rows)


def test_happy_path_request_shape_and_request_id_in_the_ledger(workspace, capsys):
    fake = google(workspace)
    mart(workspace, (google_row(i) for i in range(30)))

    assert workspace.ship("run", "google_ads") == 0

    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(30))
    assert fake.duplicates() == {}
    (request,) = fake.requests
    assert request.path == "/v1/events:ingest"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in request.body.decode()
    body = request.json()
    assert body["destinations"] == [{
        "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
        "productDestinationId": "987654321",
    }]
    assert body["encoding"] == "HEX"
    assert "validateOnly" not in body
    first = next(event for event in body["events"] if event["transactionId"] == "SO-1")
    assert first == {
        "transactionId": "SO-1",
        "eventTimestamp": first["eventTimestamp"],
        "eventSource": "IN_STORE",
        "conversionValue": 11.01,
        "currency": "USD",
        "userData": {"userIdentifiers": [{"emailAddress": sha("customer1@gmail.com")},
                                         {"phoneNumber": sha("+16505550001")}]},
        "consent": {"adUserData": "CONSENT_GRANTED",
                    "adPersonalization": "CONSENT_STATUS_UNSPECIFIED"},
    }
    assert first["eventTimestamp"].endswith("-05:00")
    phone_order = next(event for event in body["events"] if event["transactionId"] == "SO-0")
    assert phone_order["eventSource"] == "PHONE"
    assert phone_order["userData"]["userIdentifiers"] == [
        {"emailAddress": sha("customer0@gmail.com")}]
    with workspace.ledger() as ledger:
        record = ledger.delivery("google_ads", "evt-3")
    assert record["status"] == "delivered"
    assert record["error"] == f"Data Manager requestId {fake.request_ids[0]}"
    assert "google_ads" in capsys.readouterr().out


def test_batches_hold_at_most_2000_events(workspace):
    fake = google(workspace)
    mart(workspace, (google_row(i) for i in range(4100)))

    assert workspace.ship("run", "google_ads") == 0

    assert sorted(fake.batch_sizes) == [100, 2000, 2000]
    assert len(set(fake.accepted_ids)) == 4100
    assert fake.duplicates() == {}


def test_a_bad_event_fails_the_request_and_the_splitter_isolates_it(workspace):
    fake = google(workspace)
    fake.poison = {"SO-21"}
    workspace.env(GOOGLE_ADS_BATCH_SIZE="32")
    mart(workspace, (google_row(i) for i in range(32)))

    assert workspace.ship("run", "google_ads") == 1

    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(32) if i != 21)
    assert fake.duplicates() == {}
    assert len(fake.requests) == 1 + 2 * 5
    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["google_ads"])
    assert rejection["delivery_key"] == "evt-21"
    assert rejection["rejected_by"] == "platform"
    assert "events[0].transactionId: The conversion was refused." in rejection["reason"]
    assert "INVALID_ARGUMENT" in rejection["reason"]

    # Same content, same answer: the rerun sends nothing.
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.requests) == 11


def test_a_request_level_violation_stops_the_destination_without_rejecting_rows(workspace,
                                                                               capsys):
    fake = google(workspace)
    workspace.env(GOOGLE_ADS_CONVERSION_ACTION_ID="111")
    mart(workspace, (google_row(i) for i in range(10)))

    assert workspace.ship("run", "google_ads") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("google_ads") == {"failed": 10}
    captured = capsys.readouterr()
    assert "productDestinationId" in captured.out + captured.err


def test_events_past_googles_age_limit_expire_without_changing_the_exit_code(workspace,
                                                                            capsys):
    fake = google(workspace)
    mart(workspace, [*(google_row(i) for i in range(10)),
                     google_row(100, age_seconds=91 * DAY), google_row(101, age_seconds=200 * DAY)])

    assert workspace.ship("run", "google_ads") == 0

    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(10))
    assert fake.batch_sizes == [10]
    assert workspace.statuses("google_ads") == {"delivered": 10, "expired": 2}
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["google_ads"])
        assert ledger.rejections(["google_ads"]) == []
    assert (run["rows_sent"], run["rows_expired"], run["status"]) == (10, 2, "ok")
    assert "expired" in capsys.readouterr().out

    # An expired event stays expired: a rerun skips it, sends nothing, exits 0.
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.requests) == 1
    with workspace.ledger() as ledger:
        (run, *_) = ledger.recent_runs(["google_ads"])
    assert (run["rows_skipped"], run["rows_expired"]) == (12, 0)


def test_the_events_are_the_marts_payloads_byte_for_byte(workspace):
    """The shipper adds only Google's envelope: the events array is the mart's payloads
    as they are, including a field the mart added that the shipper knows nothing about."""
    fake = google(workspace)
    rows = [google_row(i) for i in range(3)]
    payloads = [payload_of("google_ads_conversions", row) for row in rows]
    # A field the analyst added in SQL, and JSON written with other spacing and escapes:
    # both travel as they are.
    event = json.loads(payloads[1])
    event["customVariables"] = [{"variable": "store_name",
                                 "value": 'Zoë\'s "Main St" \u00e9'}]
    payloads[1] = json.dumps(event)
    mart(workspace, ({**row, "payload": payload}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "google_ads") == 0

    (request,) = fake.requests
    events = "[" + ",".join(payloads) + "]"
    assert request.body == (
        '{"destinations":[{"operatingAccount":{"accountType":"GOOGLE_ADS",'
        '"accountId":"1234567890"},"productDestinationId":"987654321"}],'
        '"events":' + events + ',"encoding":"HEX"}').encode()
    assert sorted(fake.accepted_ids) == ["SO-0", "SO-1", "SO-2"]


def test_retries_on_quota_503_timeouts_and_resets(workspace):
    fake = google(workspace)
    workspace.env(GOOGLE_ADS_TIMEOUT_SECONDS="0.3")
    fake.misbehave(fake.exhausted("3"), Reply(503, {"error": {"code": 503,
                                                              "status": "UNAVAILABLE"}}),
                   Stall(1.0), Reset())
    mart(workspace, (google_row(i) for i in range(10)))

    assert workspace.ship("run", "google_ads") == 0

    assert len(fake.requests) == 5
    assert workspace.clock.waits[0] == 3.0
    assert len(workspace.clock.waits) == 4
    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(10))
    with workspace.ledger() as ledger:
        assert ledger.delivery("google_ads", "evt-0")["attempts"] == 5


def test_refused_token_is_fatal_and_loses_nothing(workspace, capsys):
    fake = google(workspace)
    workspace.env(GOOGLE_ADS_ACCESS_TOKEN="ya29.expired-token-000000")
    mart(workspace, (google_row(i) for i in range(5)))

    assert workspace.ship("run", "google_ads") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("google_ads") == {"failed": 5}
    captured = capsys.readouterr()
    assert "check GOOGLE_ADS_ACCESS_TOKEN" in captured.out + captured.err

    workspace.env(GOOGLE_ADS_ACCESS_TOKEN=TOKEN)
    assert workspace.ship("run", "google_ads") == 0
    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(5))


def test_validate_only_ingests_nothing_and_keeps_the_rows_pending(workspace):
    fake = google(workspace)
    workspace.env(GOOGLE_ADS_VALIDATE_ONLY="true")
    mart(workspace, (google_row(i) for i in range(6)))

    assert workspace.ship("run", "google_ads") == 2

    assert fake.requests[0].json()["validateOnly"] is True
    assert fake.validated == [6]
    assert fake.accepted_ids == []
    assert workspace.statuses("google_ads") == {"failed": 6}
    with workspace.ledger() as ledger:
        assert "validate_only" in ledger.delivery("google_ads", "evt-1")["error"]

    workspace.env(GOOGLE_ADS_VALIDATE_ONLY="false")
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.accepted_ids) == 6


def test_rerun_sends_nothing_new(workspace):
    fake = google(workspace)
    mart(workspace, (google_row(i) for i in range(12)))
    assert workspace.ship("run", "google_ads") == 0
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.requests) == 1

    mart(workspace, (google_row(i) for i in range(15)))
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.requests) == 2
    assert fake.batch_sizes == [12, 3]
    assert fake.duplicates() == {}


def test_dry_run_writes_the_body_without_the_token(workspace):
    fake = google(workspace)
    mart(workspace, (google_row(i) for i in range(4)))

    assert workspace.ship("run", "google_ads", "--dry-run") == 0

    assert fake.requests == []
    (path,) = sorted((workspace.outbox / "google_ads").glob("*.json"))
    text = path.read_text()
    assert TOKEN not in text
    body = json.loads(text)
    assert len(body["events"]) == 4
    assert body["destinations"][0]["operatingAccount"]["accountId"] == "1234567890"
    assert workspace.statuses("google_ads") == {}


def test_a_missing_token_stops_the_live_run_naming_the_variable(workspace, capsys):
    meta = workspace.meta()
    workspace.meta_mart([meta_row(1)])
    mart(workspace, [google_row(1)])

    assert workspace.ship("run", "meta", "google_ads") == 2

    assert meta.requests == []
    assert ("google_ads cannot be sent without GOOGLE_ADS_ACCESS_TOKEN"
            in capsys.readouterr().err)


def test_a_customer_id_that_is_not_10_digits_is_a_config_error(workspace, capsys):
    google(workspace)
    workspace.env(GOOGLE_ADS_CUSTOMER_ID="12345")
    mart(workspace, [google_row(1)])

    assert workspace.ship("run", "google_ads") == 2

    assert "GOOGLE_ADS_CUSTOMER_ID" in capsys.readouterr().err
