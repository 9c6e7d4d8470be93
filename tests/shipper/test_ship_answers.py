"""Only the platform's own success marks a row delivered, and only its own refusal
rejects one: answers from something else in between (a proxy's HTML page, a cut-off
or empty body, a bodyless 400 or 413) leave the rows to be sent again."""

from __future__ import annotations

import time

import pytest

from tests.fakes.server import Drip, Reply
from tests.shipper import test_ship_google_ads as google_tests
from tests.shipper import test_ship_pinterest as pinterest_tests
from tests.shipper.marts import meta_row, tiktok_row

NOT_AN_ANSWER = {
    "truncated JSON": '{"events_received": 3, "messages": [',
    "an HTML page": "<html><body><h1>200 OK</h1>Welcome to nginx</body></html>",
    "an empty body": "",
    "whitespace": "  \r\n ",
}


@pytest.mark.parametrize("body", NOT_AN_ANSWER.values(), ids=NOT_AN_ANSWER.keys())
def test_a_200_without_metas_success_body_delivers_nothing(workspace, body):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(3))
    fake.fail_always(Reply(200, body, {"Content-Type": "text/html"}))

    assert workspace.ship("run", "meta") == 2

    assert fake.accepted_ids == []
    assert workspace.statuses("meta") == {"failed": 3}
    with workspace.ledger() as ledger:
        reason = ledger.delivery("meta", "order-0")["error"]
    assert "HTTP 200 from Meta without Meta's own body" in reason

    # The next healthy run sends them all, once.
    fake.fail_always(None)
    assert workspace.ship("run", "meta") == 0
    assert sorted(fake.accepted_ids) == ["evt-0", "evt-1", "evt-2"]
    assert fake.duplicates() == {}


def test_meta_counting_fewer_events_than_sent_is_not_a_delivery(workspace):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(3))
    fake.fail_always(Reply(200, {"events_received": 2, "messages": [], "fbtrace_id": "x"}))
    assert workspace.ship("run", "meta") == 2
    assert workspace.statuses("meta") == {"failed": 3}


def test_a_bodyless_400_is_not_bisected_and_rejects_nothing(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(1500))
    fake.fail_always(Reply(400, None))

    assert workspace.ship("run", "meta") == 2

    # One request per batch at most (two in flight), not one per event.
    assert len(fake.requests) <= 2
    statuses = workspace.statuses("meta")
    assert set(statuses) == {"failed"}
    out = capsys.readouterr().out
    assert "HTTP 400 from Meta without Meta's own body" in out

    fake.fail_always(None)
    assert workspace.ship("run", "meta") == 0
    assert len(set(fake.accepted_ids)) == 1500


def test_a_bodyless_413_splits_but_never_rejects_a_single_event(workspace):
    fake = workspace.meta()
    workspace.env(META_BATCH_SIZE="4")
    workspace.meta_mart(meta_row(i) for i in range(4))
    fake.fail_always(Reply(413, "<html>Request Entity Too Large</html>"))

    assert workspace.ship("run", "meta") == 2

    assert [len(request.json()["data"]) for request in fake.requests] == [4, 2, 1, 1, 2, 1, 1]
    assert workspace.statuses("meta") == {"failed": 4}
    with workspace.ledger() as ledger:
        assert ledger.rejections(["meta"]) == []
        assert "HTTP 413" in ledger.delivery("meta", "order-0")["error"]


def test_tiktok_200_without_its_code_delivers_nothing(workspace):
    fake = workspace.tiktok()
    workspace.tiktok_mart(tiktok_row(i) for i in range(2))
    fake.fail_always(Reply(200, "<html>maintenance</html>"))
    assert workspace.ship("run", "tiktok") == 2
    assert workspace.statuses("tiktok") == {"failed": 2}


@pytest.mark.parametrize("body", [None, {}, "<html>ok</html>"], ids=["empty", "no requestId",
                                                                      "html"])
def test_google_2xx_without_a_request_id_delivers_nothing(workspace, body):
    fake = google_tests.google(workspace)
    google_tests.mart(workspace, (google_tests.google_row(i) for i in range(3)))
    fake.fail_always(Reply(200, body))
    assert workspace.ship("run", "google_ads") == 2
    assert workspace.statuses("google_ads") == {"failed": 3}


@pytest.mark.parametrize("body", [None, {"ok": True}, "<html>ok</html>"],
                         ids=["empty", "no statuses", "html"])
def test_pinterest_200_without_event_statuses_delivers_nothing(workspace, body):
    fake = pinterest_tests.pinterest(workspace)
    pinterest_tests.mart(workspace, (pinterest_tests.pinterest_row(i) for i in range(3)))
    fake.fail_always(Reply(200, body))
    assert workspace.ship("run", "pinterest") == 2
    assert workspace.statuses("pinterest") == {"failed": 3}


def test_a_server_dripping_its_answer_cannot_hold_the_run(workspace):
    """One byte every 0.3 s keeps every socket read under its timeout; the attempt's own
    deadline (connect + read timeout) ends it, and the rows are kept for the next run."""
    fake = workspace.meta()
    workspace.env(META_TIMEOUT_SECONDS="0.8", META_CONNECT_TIMEOUT_SECONDS="0.2",
                  META_MAX_ATTEMPTS="2")
    workspace.meta_mart(meta_row(i) for i in range(3))
    fake.fail_always(Drip(interval=0.3, size=1000, bytes_before_hanging_up=40))

    started = time.monotonic()
    assert workspace.ship("run", "meta") == 2
    assert time.monotonic() - started < 15  # two attempts of about a second, not 2 x 12 s

    assert workspace.statuses("meta") == {"failed": 3}
    with workspace.ledger() as ledger:
        assert "took longer than 1 s" in ledger.delivery("meta", "order-0")["error"]


def test_a_huge_answer_is_not_read_into_memory(workspace):
    fake = workspace.meta()
    workspace.env(META_MAX_ATTEMPTS="1")
    workspace.meta_mart(meta_row(i) for i in range(3))
    fake.fail_always(Reply(200, b"{" + b" " * (40 * 2**20) + b"}"))

    assert workspace.ship("run", "meta") == 2

    assert workspace.statuses("meta") == {"failed": 3}
    with workspace.ledger() as ledger:
        assert "larger than 16 MB" in ledger.delivery("meta", "order-0")["error"]
