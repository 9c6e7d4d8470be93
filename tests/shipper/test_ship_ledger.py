"""The ledger's tables, the fingerprint, and the resend policy a destination declares.

The profile-destination test also shows how a new destination plugs in: one
class, `@register`, and the shared loop does the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import duckdb
import pytest

from shipper import pending
from shipper.config import DestinationSettings, setting
from shipper.destinations import base
from shipper.destinations.base import (
    PAYLOADS,
    PROFILES,
    Request,
    Verdict,
    envelope,
)
from shipper.destinations.rest import RestDestination
from shipper.ledger import SCHEMA_VERSION, DeliveryRecord, Ledger, RunCounts, fingerprint
from shipper.reader import DuckDBSource, open_reader, stream_batches
from tests.fakes import FakeApp, Reply
from tests.shipper.marts import meta_row, write_mart


def test_fingerprint_is_sha256_of_canonical_json():
    event = {"b": 1, "a": [1, {"y": "é", "x": None}]}
    same = {"a": [1, {"x": None, "y": "é"}], "b": 1}
    assert fingerprint(event) == fingerprint(same)
    canonical = '{"a":[1,{"x":null,"y":"é"}],"b":1}'.encode()
    assert fingerprint(event) == hashlib.sha256(canonical).hexdigest()


def test_tables_are_queryable(workspace):
    fake = workspace.meta()
    fake.poison = {"evt-1"}
    workspace.meta_mart([meta_row(0), meta_row(1)])
    assert workspace.ship("run", "meta") == 1

    con = duckdb.connect(str(workspace.ledger_path), read_only=True)
    try:
        deliveries = con.sql("select * from deliveries order by delivery_key")
        assert deliveries.columns == [
            "destination", "delivery_key", "fingerprint", "status", "rejected_by", "attempts",
            "first_attempt_at", "last_attempt_at", "error", "run_id"]
        rows = deliveries.fetchall()
        assert [(row[1], row[3]) for row in rows] == [("order-0", "delivered"),
                                                        ("order-1", "rejected")]
        # An event's fingerprint is kept when the platform rejects it (an unchanged
        # row is then not sent again); a delivered one is never sent again anyway.
        assert rows[0][2] is None and len(rows[1][2]) == 64
        runs = con.sql("select destination, mode, status, rows_read, rows_sent, rows_accepted, "
                       "rows_rejected, rows_failed, finished_at is not null from runs").fetchall()
        assert runs == [("meta", "live", "rejections", 2, 2, 1, 1, 0, True)]
        rejections = con.sql("select delivery_key, rejected_by from rejections").fetchall()
        assert rejections == [("order-1", "platform")]
    finally:
        con.close()


def test_record_is_one_transaction_per_batch(tmp_path):
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        ledger.start_run("r1", "meta", "live")
        records = [DeliveryRecord(f"k{i}", "delivered", "f" * 64, None, 1) for i in range(3)]
        counts = RunCounts(read=3, sent=3, accepted=3)
        ledger.record("r1", "meta", records, counts)
        ledger.record("r1", "meta", [DeliveryRecord("k0", "delivered", "f" * 64, None, 2)])
        assert ledger.status_counts("meta") == {"delivered": 3}
        assert ledger.delivery("meta", "k0")["attempts"] == 3
        (run,) = ledger.recent_runs(["meta"])
        assert run["rows_accepted"] == 3
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        (run,) = ledger.recent_runs(["meta"])
        assert run["status"] == "interrupted"  # never finished: the process died


def _staging(ledger, cursor, relation):
    return pending.Staging(cursor, "meta", relation, ledger.scratch_path("pending-meta.parquet"),
                           ledger.memory_limit)


def _pending(ledger, mart_path, force=False):
    cursor = ledger.cursor()
    try:
        relation = DuckDBSource(mart_path).relation(cursor, "keys_mart")
        staged = pending.stage_file_rows(_staging(ledger, cursor, relation), ["delivery_key"],
                                         force)
        return sorted(cursor.sql(staged.sql).fetchall()), staged.skipped, staged.missing_key
    finally:
        cursor.close()


def test_staging_streams_each_pending_row(tmp_path):
    # A first run, a --force run and a run with nothing left stream the mart without
    # staging; the rows and counts must be what the staged rows give (a NULL key is
    # never streamed, but counted).
    mart = tmp_path / "mart.duckdb"
    write_mart(mart, "keys_mart", {"delivery_key": "varchar"},
               [{"delivery_key": key} for key in ("a", "b", "c", None)])
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        assert _pending(ledger, mart) == ([("a",), ("b",), ("c",)], 0, 1)

        ledger.record("r1", "meta", [
            DeliveryRecord("a", "delivered", "fa"),
            DeliveryRecord("b", "rejected", "fb", "validation", 0, "bad value"),
        ])
        assert _pending(ledger, mart) == ([("b",), ("c",)], 1, 1)
        assert _pending(ledger, mart, force=True) == ([("a",), ("b",), ("c",)], 0, 1)

        ledger.record("r2", "meta", [DeliveryRecord("b", "delivered", "fb"),
                                     DeliveryRecord("c", "delivered", "fc")])
        assert _pending(ledger, mart) == ([], 3, 1)


def test_the_ledger_must_not_be_the_mart_database(workspace, capsys):
    workspace.meta()
    workspace.meta_mart([meta_row(1)])
    workspace.env(SHIP_LEDGER_PATH=str(workspace.mart_path))
    assert workspace.ship("run", "meta") == 2
    assert "ledger_path points at the mart database" in capsys.readouterr().err


# -- a profile destination (resend when the content changes) ----------------------------------


@dataclass(frozen=True)
class ProfileSettings(DestinationSettings):
    mart: str = setting("test_profiles_mart", "The mart this destination reads.")
    base_url: str = setting("http://127.0.0.1:9", "API host.")
    max_event_age_days: int = setting(365, "Unused by profiles.")


class TestProfiles(RestDestination):
    __test__ = False  # not a pytest class
    name = "test_profiles"
    title = "Test Profiles"
    settings_class = ProfileSettings
    max_batch_size = 75
    credential_env = ("TEST_PROFILES_API_KEY",)
    kind = PROFILES

    def build_request(self, payloads):
        key = self.credentials.get("TEST_PROFILES_API_KEY", "")
        return Request("POST", f"{self.base_url}/users/track",
                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                       envelope({"attributes": PAYLOADS}, payloads))

    def parse_response(self, status, body, rows):
        if status == 201:
            return Verdict.all_accepted(len(rows))
        return Verdict.reject_batch(f"HTTP {status}")


class FakeProfiles(FakeApp):
    def __init__(self):
        super().__init__()
        self.received: list[dict] = []

    def handle(self, request):
        if request.header("authorization") != "Bearer profile-key-123456":
            return Reply(401, {"message": "unauthorized"})
        attributes = request.json()["attributes"]
        if len(attributes) > 75:
            return Reply(400, {"message": "too many"})
        with self.lock:
            self.received.extend(attributes)
        return Reply(201, {"message": "success", "attributes_processed": len(attributes)})


@pytest.fixture
def profiles(workspace):
    base.register(TestProfiles)
    fake = FakeProfiles()
    server = workspace.servers(fake)
    workspace.env(TEST_PROFILES_BASE_URL=server.url, TEST_PROFILES_API_KEY="profile-key-123456")
    yield fake
    base.unregister("test_profiles")


def _profiles_mart(workspace, orders):
    rows = []
    for i, count in enumerate(orders):
        payload = json.dumps({"external_id": f"c{i}", "orders": count}, separators=(",", ":"))
        rows.append({"delivery_key": f"c{i}", "payload": payload,
                     "payload_sha256": hashlib.sha256(payload.encode()).hexdigest()})
    write_mart(workspace.mart_path, "test_profiles_mart",
               {"delivery_key": "varchar", "payload": "varchar", "payload_sha256": "varchar"},
               rows)


def test_profile_destination_resends_only_changed_rows(workspace, profiles):
    _profiles_mart(workspace, [1, 2, 3])
    assert workspace.ship("run", "test_profiles") == 0
    assert len(profiles.received) == 3

    assert workspace.ship("run", "test_profiles") == 0
    assert len(profiles.received) == 3  # nothing changed, nothing sent

    _profiles_mart(workspace, [1, 5, 3, 4])
    assert workspace.ship("run", "test_profiles") == 0
    assert profiles.received[3:] == [{"external_id": "c1", "orders": 5},
                                     {"external_id": "c3", "orders": 4}]
    with workspace.ledger() as ledger:
        (last_run, *_) = ledger.recent_runs(["test_profiles"])
    assert (last_run["rows_read"], last_run["rows_skipped"], last_run["rows_sent"]) == (4, 2, 2)


def test_an_event_destination_never_resends_a_delivered_key_even_if_changed(workspace):
    fake = workspace.meta()
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("run", "meta") == 0
    workspace.meta_mart([meta_row(1, num_items=9)])
    assert workspace.ship("run", "meta") == 0
    assert fake.accepted_ids == ["evt-1"]


class BrokenProfiles(TestProfiles):
    """A module with a bug: reading the answer raises."""

    __test__ = False

    def parse_response(self, status, body, rows):
        raise RuntimeError("a bug in the module")


def test_a_bug_in_a_module_stops_its_destination_recorded_as_incomplete(workspace, profiles):
    base.unregister("test_profiles")
    base.register(BrokenProfiles)
    _profiles_mart(workspace, [1, 2, 3, 4])

    assert workspace.ship("run", "test_profiles") == 2

    with workspace.ledger() as ledger:
        (run,) = ledger.recent_runs(["test_profiles"])
    assert run["status"] == "incomplete"
    assert run["message"] == "internal error: RuntimeError: a bug in the module"


# -- the long read must not keep the ledger from checkpointing --------------------------------


def _mart_file(path, rows):
    con = duckdb.connect(str(path))
    con.execute(f"create table events as select 'k' || range as delivery_key, range as n "
                f"from range({rows})")
    con.close()


def _checkpoint_while_streaming(tmp_path, use_reader):
    tmp_path.mkdir()
    mart = tmp_path / "mart.duckdb"
    _mart_file(mart, 50_000)
    with Ledger.open(tmp_path / "ledger.duckdb", "64MB") as ledger:
        ledger.start_run("r1", "meta", "live")
        ledger.record("r1", "meta", [DeliveryRecord("k1", "delivered", "f" * 64, None, 1)])
        cursor = ledger.cursor()
        reader = (open_reader(ledger.scratch_path("reader.tmp"), ledger.memory_limit)
                  if use_reader else cursor)
        source = DuckDBSource(mart)
        relation = source.relation(cursor, "events")
        assert source.relation(reader, "events") == relation
        staged = pending.stage_file_rows(_staging(ledger, cursor, relation),
                                         ["delivery_key", "n"], force=False)
        batches = stream_batches(reader, staged.sql, None, 1000)
        next(batches)  # the stream is open, as during a run
        # What a run writes meanwhile: outcomes, and the run's counts every few seconds.
        ledger.record("r1", "meta", [DeliveryRecord("k2", "delivered", "f" * 64, None, 1)],
                      RunCounts(read=2))
        try:
            ledger._con.execute("checkpoint")
            return None
        except duckdb.Error as exc:
            return str(exc)
        finally:
            batches.close()


def test_the_reader_streams_without_keeping_the_ledger_from_checkpointing(tmp_path):
    # Streaming from a cursor of the ledger's own database blocks its checkpoints (the
    # memory then grows with every outcome until a commit fails), from the reader not.
    assert _checkpoint_while_streaming(tmp_path / "cursor", use_reader=False) is not None
    assert _checkpoint_while_streaming(tmp_path / "reader", use_reader=True) is None


def test_one_schema_holds_every_table_the_files_journal_included(tmp_path):
    with Ledger.open(tmp_path / "ledger.duckdb") as ledger:
        cursor = ledger.cursor()
        tables = {row[0] for row in cursor.execute(
            "select table_name from information_schema.tables").fetchall()}
        (version,) = cursor.execute(
            "select value from ledger_info where key = 'schema_version'").fetchone()
        cursor.close()
    assert {"deliveries", "runs", "platform_requests", "platform_request_rows", "files",
            "file_rows"} <= tables
    assert version == SCHEMA_VERSION
