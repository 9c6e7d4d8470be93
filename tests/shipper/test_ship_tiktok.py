"""TikTok end to end: errors arrive inside HTTP 200 as code != 0."""

from __future__ import annotations

from tests.shipper.marts import TIKTOK_TOKEN, meta_row, sha, tiktok_row

DAY = 86_400


def test_happy_path_and_request_shape(workspace):
    fake = workspace.tiktok()
    workspace.env(TIKTOK_TEST_EVENT_CODE="TEST777")
    workspace.tiktok_mart(tiktok_row(i, external_id=sha(f"c{i}") if i == 0 else None)
                          for i in range(30))

    assert workspace.ship("run", "tiktok") == 0

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(30))
    (request,) = fake.requests
    assert request.path == "/open_api/v1.3/event/track/"
    assert request.header("access-token") == TIKTOK_TOKEN
    assert TIKTOK_TOKEN not in request.body.decode()
    body = request.json()
    assert body["event_source"] == "offline"
    assert body["event_source_id"] == "ESID123"
    assert body["test_event_code"] == "TEST777"
    first = next(event for event in body["data"] if event["event_id"] == "evt-0")
    assert first["event"] == "CompletePayment"
    assert first["user"] == {"email": sha("customer0@example.com"),
                             "phone": sha("+16505550000"), "external_id": sha("c0")}
    assert first["properties"] == {
        "value": 10.0, "currency": "USD", "order_id": "SO-0", "shop_id": "store-1",
        "content_type": "product",
        "contents": [{"content_id": "sku-0", "content_name": "Mug",
                      "content_category": "kitchen", "brand": "Acme", "price": 10.5,
                      "quantity": 1}],
    }
    assert workspace.statuses("tiktok") == {"delivered": 30}


def test_error_code_inside_200_splits_the_batch(workspace):
    fake = workspace.tiktok()
    fake.poison = {"evt-5"}
    workspace.env(TIKTOK_BATCH_SIZE="16")
    workspace.tiktok_mart(tiktok_row(i) for i in range(40))

    assert workspace.ship("run", "tiktok") == 1

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(40) if i != 5)
    assert fake.duplicates() == {}
    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["tiktok"])
    assert rejection["delivery_key"] == "order-5"
    assert rejection["rejected_by"] == "platform"
    assert "code 40002" in rejection["reason"]


def test_throttling_code_inside_200_is_retried(workspace):
    fake = workspace.tiktok()
    fake.misbehave(fake.throttled(), fake.throttled())
    workspace.tiktok_mart(tiktok_row(i) for i in range(5))

    assert workspace.ship("run", "tiktok") == 0

    assert len(fake.requests) == 3
    assert len(workspace.clock.waits) == 2
    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(5))


def test_28_day_age_limit(workspace):
    fake = workspace.tiktok()
    workspace.tiktok_mart([
        tiktok_row(1, age_seconds=20 * DAY),  # fine for TikTok, too old for Meta
        tiktok_row(2, age_seconds=29 * DAY),
    ])

    assert workspace.ship("run", "tiktok") == 0

    assert fake.accepted_ids == ["evt-1"]
    assert workspace.statuses("tiktok") == {"delivered": 1, "expired": 1}


def test_invalid_token_code_stops_without_rejecting_rows(workspace):
    fake = workspace.tiktok()
    workspace.env(TIKTOK_ACCESS_TOKEN="tiktok-wrong-token-0000")
    workspace.tiktok_mart(tiktok_row(i) for i in range(5))

    assert workspace.ship("run", "tiktok") == 2

    assert len(fake.requests) == 1
    assert workspace.statuses("tiktok") == {"failed": 5}


def test_meta_and_tiktok_in_one_run(workspace, capsys):
    meta = workspace.meta()
    tiktok = workspace.tiktok()
    workspace.meta_mart(meta_row(i) for i in range(12))
    workspace.tiktok_mart(tiktok_row(i) for i in range(7))

    assert workspace.ship("run") == 0

    assert len(meta.accepted_ids) == 12
    assert len(tiktok.accepted_ids) == 7
    out = capsys.readouterr().out
    assert "meta" in out and "tiktok" in out
