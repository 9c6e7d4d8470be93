"""The Trade Desk end to end: UID2 hashes -> fake UID2 operator (real envelope) -> fake TTD.

The mart's `payload` (every item member but TrackingTagId and UID2) is built here by
the oracle (tests.oracles.the_trade_desk, the Python item builder the shipper had
before the mart built it), as the mart's SQL does; the shipper splices the two in."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from uid2_client import IdentityMapV3Client, IdentityMapV3Input

from shipper import destinations
from shipper.config import ConfigError, load_config
from shipper.destinations.base import RowOutcome, Rows
from shipper.destinations.the_trade_desk import TheTradeDesk, _splice
from shipper.uid2 import DRY_RUN_PLACEHOLDER
from tests.fakes.server import Reply, Reset, Stall
from tests.fakes.the_trade_desk import FakeTheTradeDesk
from tests.fakes.uid2_operator import FakeUid2Operator
from tests.shipper.marts import payload_of, write_mart

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400
TTD_TOKEN = "ttd-secret-auth-token-5f4e3d2c1b"
UID2_API_KEY = "uid2-secret-api-key-a1b2c3d4e5"

THE_TRADE_DESK_CONVERSIONS = {
    **{name: "varchar" for name in (
        "delivery_key", "event_id", "order_id", "identifier_type", "uid2_hash",
        "timestamp_utc", "value", "value_currency", "event_name", "country", "region",
        "city", "merchant_id", "line_items",
    )},
    "event_time": "bigint",
    "payload": "varchar",
}
MART = "the_trade_desk_conversions"


def uid2_hash(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def email_hash(index: int) -> str:
    return uid2_hash(f"customer{index}@example.com")


def phone_hash(index: int) -> str:
    return uid2_hash(f"+1650555{index:04d}")


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ttd_row(index: int, identifier_type: str = "email", *, customer: int | None = None,
            age_seconds: int = 3600, **overrides: Any) -> dict[str, Any]:
    customer = index if customer is None else customer
    seconds = int(time.time()) - age_seconds - index % 600
    row = {
        "delivery_key": f"evt-{index}:{identifier_type}",
        "event_id": f"evt-{index}",
        "order_id": f"SO-{index}",
        "identifier_type": identifier_type,
        "uid2_hash": email_hash(customer) if identifier_type == "email" else phone_hash(customer),
        "timestamp_utc": iso(seconds),
        "event_time": seconds,
        "value": f"{10 + index % 90}.{index % 100:02d}",
        "value_currency": "USD",
        "event_name": "purchase",
        "country": "USA",
        "region": "NY",
        "city": "New York",
        "merchant_id": "store-1",
        "line_items": json.dumps([{"item_code": f"sku-{index % 7}", "name": "Mug", "qty": 2,
                                   "price": "10.50", "cat": "kitchen"}]),
    }
    row.update(overrides)
    return row


@dataclass
class TradeDesk:
    """The two fakes, wired into a workspace."""

    workspace: Any
    operator: FakeUid2Operator
    fake: FakeTheTradeDesk

    def mart(self, rows: Any) -> None:
        write_mart(self.workspace.mart_path, MART, THE_TRADE_DESK_CONVERSIONS, rows)

    def ship(self, *argv: str) -> int:
        return self.workspace.ship(*(argv or ("run", "the_trade_desk")))

    def rejections(self) -> dict[str, tuple[str, str]]:
        with self.workspace.ledger() as ledger:
            rows = ledger.rejections(["the_trade_desk"], limit=10_000)
        return {row["delivery_key"]: (row["rejected_by"], row["reason"]) for row in rows}

    def mappings(self) -> dict[tuple[str, str], dict[str, Any]]:
        con = duckdb.connect(str(self.workspace.ledger_path), read_only=True)
        try:
            result = con.execute("select * from uid2_mappings")
            names = [column[0] for column in result.description]
            rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            con.close()
        return {(row["identifier_type"], row["uid2_hash"]): row for row in rows}


@pytest.fixture
def ttd(workspace, monkeypatch) -> TradeDesk:
    for name in list(os.environ):
        if name.startswith(("TTD_", "UID2_")):
            monkeypatch.delenv(name)
    operator = FakeUid2Operator(api_key=UID2_API_KEY)
    fake = FakeTheTradeDesk(token=TTD_TOKEN, valid_uid2=operator.issued)
    operator_url = workspace.servers(operator).url
    ttd_url = workspace.servers(fake).url
    workspace.env(
        UID2_BASE_URL=operator_url, UID2_API_KEY=UID2_API_KEY,
        UID2_SECRET_KEY=operator.secret_b64,
        TTD_BASE_URL=ttd_url, TTD_AUTH_TOKEN=TTD_TOKEN,
        TTD_DATA_PROVIDER_ID=fake.data_provider_id, TTD_TRACKING_TAG_ID=fake.tracking_tag_id,
        THE_TRADE_DESK_TIMEOUT_SECONDS="5",
    )
    return TradeDesk(workspace, operator, fake)


def both_identifiers(count: int) -> list[dict[str, Any]]:
    return [row for index in range(count) for row in (ttd_row(index), ttd_row(index, "phone"))]


# -- the fake operator speaks the real protocol ----------------------------------------------------


def test_the_real_sdk_client_reads_the_fake_operator(serve):
    operator = FakeUid2Operator()
    operator.optout.add(email_hash(2))
    server = serve(operator)
    client = IdentityMapV3Client(server.url, operator.api_key, operator.secret_b64)

    answer = client.generate_identity_map(
        IdentityMapV3Input.from_hashed_emails([email_hash(1), email_hash(2)])
        .with_hashed_phone(phone_hash(1)))

    mapped = answer.mapped_identities
    assert mapped[email_hash(1)].current_raw_uid == operator.uid2_for(email_hash(1))
    assert mapped[phone_hash(1)].current_raw_uid == operator.uid2_for(phone_hash(1))
    assert answer.unmapped_identities[email_hash(2)].raw_reason == "optout"


# -- happy path, shape, batching -------------------------------------------------------------------


def test_maps_hashes_and_delivers_every_item_once(ttd, caplog):
    caplog.set_level("INFO")
    ttd.mart(both_identifiers(10))

    assert ttd.ship() == 0

    assert sorted(ttd.fake.accepted_keys) == sorted(
        (f"SO-{i}", ttd.operator.uid2_for(hash_of(i)))
        for i in range(10) for hash_of in (email_hash, phone_hash))
    assert ttd.fake.duplicates() == {}
    assert ttd.workspace.statuses("the_trade_desk") == {"delivered": 20}
    # One identity-map request, hashes only, and one conversion request.
    (asked,) = ttd.operator.map_requests
    assert sorted(asked["email_hash"]) == sorted(email_hash(i) for i in range(10))
    assert sorted(asked["phone_hash"]) == sorted(phone_hash(i) for i in range(10))
    assert ttd.operator.raw_dii_seen == []
    assert ttd.operator.max_in_flight == 1
    assert len(ttd.fake.requests) == 1
    assert len(ttd.mappings()) == 20
    assert "UID2 identity map: 20 hashes, 0 from the cache, 20 mapped by UID2" in caplog.text


def test_request_follows_the_offline_conversion_contract(ttd):
    row = ttd_row(1, region=None)
    ttd.mart([row])

    assert ttd.ship() == 0

    (request,) = ttd.fake.requests
    # The mart's payload as it is, the two members the shipper knows written in front.
    uid2 = ttd.operator.uid2_for(email_hash(1))
    assert request.body == (
        b'{"DataProviderId":"acme-provider","Items":[{"TrackingTagId":"tt0abc1","UID2":"'
        + uid2.encode() + b'",' + payload_of(MART, row).encode()[1:] + b"]}")
    assert request.path == "/providerapi/offlineconversion"
    assert request.header("ttd-auth") == TTD_TOKEN
    assert request.header("content-type") == "application/json"
    assert TTD_TOKEN not in request.body.decode()
    body = request.json()
    assert set(body) == {"DataProviderId", "Items"}
    assert body["DataProviderId"] == "acme-provider"
    (item,) = body["Items"]
    assert item == {
        "TrackingTagId": "tt0abc1",
        "TimestampUtc": item["TimestampUtc"],
        "UID2": ttd.operator.uid2_for(email_hash(1)),
        "OrderId": "SO-1",
        "Value": "11.01",
        "ValueCurrency": "USD",
        "EventName": "purchase",
        "Country": "USA",
        "City": "New York",
        "MerchantId": "store-1",
        # The ttd-data SDK types every line item field as a string.
        "LineItems": [{"item_code": "sku-1", "name": "Mug", "qty": "2", "price": "10.50",
                       "cat": "kitchen"}],
    }
    assert item["TimestampUtc"].endswith("Z")


def test_batches_hold_1000_items_and_identity_maps_5000_hashes(ttd):
    ttd.workspace.env(SHIP_READ_BATCH_ROWS="10000")
    ttd.mart(ttd_row(i) for i in range(5200))

    assert ttd.ship() == 0

    assert [len(request["email_hash"]) for request in ttd.operator.map_requests] == [5000, 200]
    assert sorted(ttd.fake.batch_sizes) == [200, 1000, 1000, 1000, 1000, 1000]
    assert len(set(ttd.fake.accepted_keys)) == 5200
    assert ttd.fake.duplicates() == {}


# -- what maps to nothing --------------------------------------------------------------------------


def test_unmapped_and_opted_out_hashes_are_rejected_counted_and_cached(ttd, capsys, caplog):
    caplog.set_level("INFO")
    ttd.operator.optout.update({email_hash(1), phone_hash(1), email_hash(2)})
    ttd.operator.invalid.add(email_hash(3))
    ttd.mart(both_identifiers(6))

    assert ttd.ship() == 1

    assert ttd.rejections() == {
        "evt-1:email": ("validation", "uid2 unmapped: optout"),
        "evt-1:phone": ("validation", "uid2 unmapped: optout"),
        "evt-2:email": ("validation", "uid2 unmapped: optout"),
        "evt-3:email": ("validation", "uid2 unmapped: invalid identifier"),
    }
    assert len(ttd.fake.accepted) == 8
    out = capsys.readouterr().out
    assert "uid2 unmapped: optout" in out and "uid2 unmapped: invalid identifier" in out
    assert "4 rows map to nothing (optout: 3, invalid identifier: 1)" in caplog.text
    cached = ttd.mappings()[("email", email_hash(1))]
    assert cached["uid2"] is None and cached["unmapped_reason"] == "optout"

    # Next run: the unmapped rows are validated again from the cache; UID2 is not asked
    # again within unmapped_recheck_hours, and nothing new goes to The Trade Desk.
    assert ttd.ship() == 1
    assert len(ttd.operator.map_requests) == 1
    assert len(ttd.fake.requests) == 1

    # Past the recheck, a hash that is no longer opted out is mapped and its row sent.
    ttd.operator.optout.discard(email_hash(2))
    ttd.workspace.env(THE_TRADE_DESK_UNMAPPED_RECHECK_HOURS="0")
    assert ttd.ship() == 1
    assert ("SO-2", ttd.operator.uid2_for(email_hash(2))) in ttd.fake.accepted_keys
    assert ttd.fake.duplicates() == {}


def test_stale_mappings_are_refreshed_and_fresh_ones_reused(ttd):
    # First run: UID2 says these mappings may be refreshed from a minute ago on.
    ttd.operator.refresh_from = time.time() - 60
    ttd.mart(ttd_row(i) for i in range(5))
    assert ttd.ship() == 0
    first_uid2 = ttd.operator.uid2_for(email_hash(0))

    # The salt rotated; new orders of the same customers are mapped again.
    ttd.operator.rotate([email_hash(0), email_hash(1)])
    ttd.operator.refresh_from = time.time() + 30 * DAY
    ttd.mart([*(ttd_row(i) for i in range(5)),
              *(ttd_row(100 + i, customer=i) for i in range(5))])
    assert ttd.ship() == 0
    assert len(ttd.operator.map_requests) == 2
    assert sorted(ttd.operator.map_requests[1]["email_hash"]) == sorted(
        email_hash(i) for i in range(5))
    rotated = ttd.operator.uid2_for(email_hash(0))
    assert rotated != first_uid2
    assert ("SO-100", rotated) in ttd.fake.accepted_keys
    assert ("SO-0", first_uid2) in ttd.fake.accepted_keys
    mapping = ttd.mappings()[("email", email_hash(0))]
    assert mapping["uid2"] == rotated and mapping["previous_uid2"] == first_uid2

    # Fresh mappings: a third batch of orders needs no identity-map request at all.
    ttd.mart([*(ttd_row(i) for i in range(5)), *(ttd_row(100 + i, customer=i) for i in range(5)),
              *(ttd_row(200 + i, customer=i) for i in range(5))])
    assert ttd.ship() == 0
    assert len(ttd.operator.map_requests) == 2
    assert len(ttd.fake.accepted) == 15
    assert ttd.fake.duplicates() == {}


def test_refresh_time_in_milliseconds_is_read_too(ttd):
    ttd.operator.refresh_in_milliseconds = True
    ttd.operator.refresh_from = time.time() + 2 * DAY
    ttd.mart([ttd_row(1)])

    assert ttd.ship() == 0

    refresh_from = ttd.mappings()[("email", email_hash(1))]["refresh_from"]
    assert abs((refresh_from - dt.datetime.now(dt.UTC).replace(tzinfo=None)).days - 2) <= 1


# -- the platform's own failure signal ----------------------------------------------------------------


def test_failed_lines_are_rejected_with_their_error_code_and_the_rest_land(ttd):
    ttd.fake.poison_order("SO-3")
    ttd.fake.poison_order("SO-7", "InvalidTimestamp", "The conversion is too old")
    ttd.mart(both_identifiers(10))

    assert ttd.ship() == 1

    assert ttd.rejections() == {
        "evt-3:email": ("platform", "InvalidMerchantId: The merchant is not configured"),
        "evt-3:phone": ("platform", "InvalidMerchantId: The merchant is not configured"),
        "evt-7:email": ("platform", "InvalidTimestamp: The conversion is too old"),
        "evt-7:phone": ("platform", "InvalidTimestamp: The conversion is too old"),
    }
    assert len(ttd.fake.accepted) == 16
    assert len(ttd.fake.requests) == 1  # per-line failures, not a split

    # Same content, same answer: a rerun sends nothing.
    assert ttd.ship() == 0
    assert len(ttd.fake.requests) == 1


def test_failed_lines_without_item_numbers_are_placed_by_the_original_request(ttd):
    ttd.fake.item_numbers = False
    ttd.fake.poison_order("SO-2")
    ttd.mart(both_identifiers(4))

    assert ttd.ship() == 1

    assert set(ttd.rejections()) == {"evt-2:email", "evt-2:phone"}
    assert len(ttd.fake.accepted) == 6
    assert len(ttd.fake.requests) == 1


def test_a_400_listing_every_item_rejects_them_all(ttd):
    ttd.fake.status_when_all_fail = 400
    for index in range(3):
        ttd.fake.poison_order(f"SO-{index}", "InvalidMerchantId", f"merchant of {index}")
    ttd.mart(ttd_row(i) for i in range(3))

    assert ttd.ship() == 1

    assert ttd.rejections() == {f"evt-{i}:email": ("platform", f"InvalidMerchantId: merchant of {i}")
                                for i in range(3)}


def test_413_splits_the_batch_until_it_fits(ttd):
    ttd.fake.max_items = 300
    ttd.mart(ttd_row(i) for i in range(1000))

    assert ttd.ship() == 0

    # 1000 -> 413, 500 -> 413 twice, then four batches of 250.
    assert ttd.fake.batch_sizes == [250, 250, 250, 250]
    assert len(ttd.fake.requests) == 7
    assert len(set(ttd.fake.accepted_keys)) == 1000
    assert ttd.fake.duplicates() == {}


# -- retries -------------------------------------------------------------------------------------


def test_throttling_errors_and_dropped_connections_are_retried(ttd):
    ttd.workspace.env(THE_TRADE_DESK_CONCURRENCY="1")
    ttd.operator.misbehave(Reply(429, {"status": "error", "message": "slow down"},
                                 {"Retry-After": "3"}),
                           Reply(503, {"status": "error", "message": "busy"}), Reset())
    ttd.fake.misbehave(Reply(429, {"Message": "Too many requests"}, {"Retry-After": "7"}),
                       Reply(500, {"Message": "boom"}), Reset())
    ttd.mart(both_identifiers(5))

    assert ttd.ship() == 0

    assert len(ttd.operator.requests) == 4
    assert len(ttd.fake.requests) == 4
    assert 3.0 in ttd.workspace.clock.waits and 7.0 in ttd.workspace.clock.waits
    assert len(ttd.fake.accepted) == 10
    with ttd.workspace.ledger() as ledger:
        assert ledger.delivery("the_trade_desk", "evt-0:email")["attempts"] == 4


def test_slow_answers_past_the_timeout_are_retried(ttd):
    ttd.workspace.env(THE_TRADE_DESK_TIMEOUT_SECONDS="0.3")
    ttd.operator.misbehave(Stall(0.6))
    ttd.fake.misbehave(Stall(0.6))
    ttd.mart([ttd_row(1)])

    assert ttd.ship() == 0

    assert len(ttd.operator.requests) == 2
    assert len(ttd.fake.requests) == 2
    assert len(ttd.fake.accepted) == 1


def test_uid2_giving_up_stops_the_destination_and_loses_nothing(ttd, capsys):
    ttd.workspace.env(THE_TRADE_DESK_MAX_ATTEMPTS="3")
    ttd.operator.fail_always(Reply(503, {"status": "error", "message": "down"}))
    ttd.mart(ttd_row(i) for i in range(4))

    assert ttd.ship() == 2

    assert len(ttd.operator.requests) == 3
    assert ttd.fake.requests == []
    assert ttd.workspace.statuses("the_trade_desk") == {}
    assert "gave up after 3 attempt(s)" in capsys.readouterr().out

    ttd.operator.fail_always(None)
    assert ttd.ship() == 0
    assert len(ttd.fake.accepted) == 4


@pytest.mark.parametrize("variable, value", [
    ("UID2_API_KEY", "uid2-wrong-api-key-000000"),
    ("UID2_SECRET_KEY", base64.b64encode(b"k" * 32).decode()),
])
def test_refused_uid2_credentials_stop_before_anything_is_sent(ttd, capsys, variable, value):
    ttd.workspace.env(**{variable: value})
    ttd.mart(ttd_row(i) for i in range(3))

    assert ttd.ship() == 2

    assert len(ttd.operator.requests) == 1  # a 401 is not retried
    assert ttd.fake.requests == []
    assert ttd.workspace.statuses("the_trade_desk") == {}
    assert "check UID2_API_KEY and UID2_SECRET_KEY" in capsys.readouterr().out


def test_a_refused_ttd_token_stops_and_keeps_the_rows(ttd, capsys):
    ttd.workspace.env(TTD_AUTH_TOKEN="ttd-wrong-token-0000000", THE_TRADE_DESK_BATCH_SIZE="2",
                      THE_TRADE_DESK_CONCURRENCY="1")
    ttd.mart(ttd_row(i) for i in range(6))

    assert ttd.ship() == 2

    assert len(ttd.fake.requests) == 1
    assert ttd.workspace.statuses("the_trade_desk") == {"failed": 2}
    captured = capsys.readouterr()
    assert "Unauthorized" in captured.out and "check TTD_AUTH_TOKEN" in captured.out

    ttd.workspace.env(TTD_AUTH_TOKEN=TTD_TOKEN)
    assert ttd.ship() == 0
    assert len(ttd.fake.accepted) == 6


def test_an_unknown_data_provider_stops_the_destination(ttd, capsys):
    ttd.workspace.env(TTD_DATA_PROVIDER_ID="someone-else")
    ttd.mart([ttd_row(1)])

    assert ttd.ship() == 2

    assert ttd.workspace.statuses("the_trade_desk") == {"failed": 1}
    assert "data provider is not configured" in capsys.readouterr().out


# -- the age limit ---------------------------------------------------------------------------------


def test_items_past_the_25_day_limit_expire_and_are_never_looked_up(ttd):
    ttd.mart([ttd_row(1), ttd_row(51, age_seconds=26 * DAY)])

    assert ttd.ship() == 0

    assert ttd.workspace.statuses("the_trade_desk") == {"delivered": 1, "expired": 1}
    assert ttd.operator.hashes_asked() == [email_hash(1)]
    assert ttd.fake.accepted_keys == [("SO-1", ttd.operator.uid2_for(email_hash(1)))]


def test_a_payload_that_is_not_an_object_cannot_take_its_uid2_and_is_rejected(ttd):
    # The mart's is_json_object test keeps this out; were it to slip through, the
    # UID2 cannot be written into it, and nothing half-built is sent.
    ttd.mart([ttd_row(1), {**ttd_row(2), "payload": '["SO-2"]'}])

    assert ttd.ship() == 1

    assert ttd.rejections() == {"evt-2:email": ("validation", "payload is not a JSON object")}
    assert len(ttd.fake.accepted) == 1


def test_uid2_batch_size_above_the_service_limit_is_a_config_error(tmp_path):
    (tmp_path / "ship.toml").write_text("")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "ship.toml", env={"THE_TRADE_DESK_UID2_BATCH_SIZE": "5001"},
                    catalog=destinations.catalog())
    assert "uid2_batch_size for the_trade_desk must be between 1 and 5000" in str(raised.value)


# -- dry run and credentials -----------------------------------------------------------------------


def _outbox(workspace) -> list[Path]:
    return sorted((workspace.outbox / "the_trade_desk").glob("*.json"))


def test_dry_run_writes_the_identity_map_request_and_bodies_without_secrets(ttd):
    ttd.mart(both_identifiers(3))

    assert ttd.ship("run", "the_trade_desk", "--dry-run") == 0

    assert ttd.operator.requests == [] and ttd.fake.requests == []
    files = _outbox(ttd.workspace)
    (identity_map,) = [path for path in files if "-uid2-identity-map-" in path.name]
    (conversions,) = [path for path in files if "-uid2-" not in path.name]
    assert json.loads(identity_map.read_text()) == {
        "email_hash": [email_hash(i) for i in range(3)],
        "phone_hash": [phone_hash(i) for i in range(3)],
    }
    items = json.loads(conversions.read_text())["Items"]
    assert {item["UID2"] for item in items} == {DRY_RUN_PLACEHOLDER}
    text = "".join(path.read_text() for path in files)
    for secret in (TTD_TOKEN, UID2_API_KEY, ttd.operator.secret_b64):
        assert secret not in text
    assert ttd.workspace.statuses("the_trade_desk") == {}

    # After a live run has filled the cache, a dry run of new orders of the same
    # customers uses the cached UID2s and has nothing to ask UID2.
    assert ttd.ship() == 0
    ttd.mart([*both_identifiers(3), ttd_row(10, customer=0)])
    assert ttd.ship("run", "the_trade_desk", "--dry-run", "--outbox", "second") == 0
    second = sorted((ttd.workspace.root / "second" / "the_trade_desk").glob("*.json"))
    assert [path.name for path in second if "-uid2-" in path.name] == []
    (item,) = json.loads(second[0].read_text())["Items"]
    assert item["UID2"] == ttd.operator.uid2_for(email_hash(0))
    assert len(ttd.operator.map_requests) == 1


def test_dry_run_items_are_the_mart_payloads_byte_for_byte_with_tag_and_uid2_in_front(ttd):
    rows = [
        ttd_row(0), ttd_row(0, "phone"), ttd_row(1, city="Saint-Étienne \\ \"Nord\""),
        # Whatever text the mart holds is kept as it is: spacing, member order, escapes.
        {**ttd_row(2), "payload": '{ "OrderId" : "SO-2", "Value": "1.50",'
                                  ' "Country": "USA", "City": "\\u00c9vry" }'},
        # An empty object still gives a valid item.
        {**ttd_row(3), "payload": "{}"},
    ]
    rows = [{**row, "payload": row.get("payload") or payload_of(MART, row)} for row in rows]
    ttd.mart(rows)

    assert ttd.ship("run", "the_trade_desk", "--dry-run") == 0

    (conversions,) = [path for path in _outbox(ttd.workspace) if "-uid2-" not in path.name]
    body = conversions.read_bytes()
    prefix = b'{"DataProviderId":"acme-provider","Items":['
    assert body.startswith(prefix) and body.endswith(b"]}")
    head = b'{"TrackingTagId":"tt0abc1","UID2":"' + DRY_RUN_PLACEHOLDER.encode() + b'"'

    def item(row: dict[str, Any]) -> bytes:
        payload = row["payload"].encode()
        return head + (b"}" if payload == b"{}" else b"," + payload[1:])

    items = json.loads(body)["Items"]
    assert len(items) == len(rows)
    # Which item is which (the read order is the mart's): by OrderId; both items of
    # SO-0 have the same payload (the identifier is only in UID2).
    expected = {row["order_id"]: item(row) for row in rows}
    order = [sent.get("OrderId", "SO-3") for sent in items]
    assert sorted(order) == sorted(row["order_id"] for row in rows)
    assert body == prefix + b",".join(expected[order_id] for order_id in order) + b"]}"
    assert items[order.index("SO-3")] == {"TrackingTagId": "tt0abc1",
                                          "UID2": DRY_RUN_PLACEHOLDER}


def test_a_missing_credential_stops_the_live_run_naming_the_variables(ttd, capsys):
    meta = ttd.workspace.meta()
    ttd.workspace.meta_mart([])
    ttd.workspace.monkeypatch.delenv("UID2_SECRET_KEY")
    ttd.mart([ttd_row(1)])

    assert ttd.workspace.ship("run", "meta", "the_trade_desk") == 2

    assert ("the_trade_desk cannot be sent without TTD_AUTH_TOKEN and UID2_API_KEY and "
            "UID2_SECRET_KEY" in capsys.readouterr().err)
    assert ttd.operator.requests == [] and ttd.fake.requests == []
    assert meta.requests == []


# -- rerun idempotency, as a real subprocess --------------------------------------------------------


def test_two_real_runs_deliver_every_eligible_item_exactly_once(ttd):
    ttd.operator.optout.add(phone_hash(4))
    ttd.fake.poison_order("SO-6")
    ttd.mart(both_identifiers(12))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "shipper", "run", "the_trade_desk"]

    first = subprocess.run(command, env=env, cwd=ttd.workspace.root, capture_output=True,
                           text=True, timeout=60, check=False)
    second = subprocess.run(command, env=env, cwd=ttd.workspace.root, capture_output=True,
                            text=True, timeout=60, check=False)

    assert first.returncode == 1, first.stderr
    assert second.returncode == 1, second.stderr
    eligible = {(f"SO-{i}", ttd.operator.uid2_for(hash_of(i)))
                for i in range(12) for hash_of in (email_hash, phone_hash)
                if i != 6 and (i, hash_of) != (4, phone_hash)}
    assert sorted(ttd.fake.accepted_keys) == sorted(eligible)
    assert len(ttd.fake.requests) == 1 and len(ttd.operator.map_requests) == 1
    assert "uid2 unmapped: optout" in first.stdout
    for secret in (TTD_TOKEN, UID2_API_KEY, ttd.operator.secret_b64):
        assert secret not in first.stdout + first.stderr + second.stdout + second.stderr


# -- reading answers, directly -------------------------------------------------------------------


def _rows(*items: dict[str, Any]) -> Rows:
    return Rows([f"k{index}" for index in range(len(items))],
                [json.dumps(item).encode() for item in items], ["" for _ in items])


def _destination(tmp_path: Path) -> TheTradeDesk:
    (tmp_path / "ship.toml").write_text("")
    config = load_config(tmp_path / "ship.toml",
                         env={"TTD_TRACKING_TAG_ID": "tt", "TTD_DATA_PROVIDER_ID": "dp"},
                         catalog=destinations.catalog())
    return TheTradeDesk(config.settings_for("the_trade_desk"), {"TTD_AUTH_TOKEN": "x"})


def test_failed_lines_are_placed_by_order_id_when_it_is_unique(tmp_path):
    destination = _destination(tmp_path)
    events = _rows({"OrderId": "A", "UID2": "u1"}, {"OrderId": "B", "UID2": "u2"})
    verdict = destination.parse_response(
        200, {"FailedLines": [{"OrderId": "B", "ErrorCode": "InvalidMerchantId",
                               "Message": "no"}]}, events)
    assert verdict.kind == "rows"
    assert verdict.rows == (RowOutcome("accepted"), RowOutcome("rejected", "InvalidMerchantId: no"))


def test_a_failed_line_that_names_no_single_item_splits_the_batch(tmp_path):
    destination = _destination(tmp_path)
    events = _rows({"OrderId": "A", "UID2": "u1"}, {"OrderId": "A", "UID2": "u2"})
    verdict = destination.parse_response(
        200, {"FailedLines": [{"OrderId": "A", "ErrorCode": "Uid2Error", "Message": "bad"}]},
        events)
    assert verdict.kind == "reject_batch"
    assert destination.parse_response(200, {}, events).rows == (RowOutcome("accepted"),) * 2
    # The SDK's success is a JSON object: an empty or HTML 200 says nothing about the items.
    assert destination.parse_response(200, None, events).kind == "retry"
    assert destination.parse_response(200, "<html>ok</html>", events).kind == "retry"
    assert destination.parse_response(403, "Forbidden", events).kind == "fatal"


@pytest.mark.parametrize("payload, spliced", [
    (b'{"OrderId":"A"}', b'{"T":1,"OrderId":"A"}'),
    (b"{}", b'{"T":1}'),
    (b"{ }", b'{"T":1 }'),
    (b' \n{"OrderId":"A"}', b'{"T":1,"OrderId":"A"}'),
    (memoryview(b'{"OrderId":"\\u00e9"}'), b'{"T":1,"OrderId":"\\u00e9"}'),
    (b'["not an object"]', None),
    (b"", None),
])
def test_splice_writes_members_first_and_keeps_the_payload_bytes(payload, spliced):
    result = _splice(b'{"T":1', payload)
    assert result == spliced
    if result is not None:
        json.loads(result)
