"""Dry runs write bodies exactly as they would be sent and deliver nothing;
destinations without credentials are skipped, and no credentials at all means a dry run."""

from __future__ import annotations

import json
import re

from tests.shipper.marts import META_TOKEN, TIKTOK_TOKEN, meta_row, tiktok_row


def _outbox_files(workspace, destination):
    return sorted((workspace.outbox / destination).glob("*.json"))


def test_dry_run_writes_bodies_without_the_token_and_marks_nothing(workspace, capsys):
    fake = workspace.meta()
    workspace.env(META_BATCH_SIZE="40")
    workspace.meta_mart(meta_row(i) for i in range(100))

    assert workspace.ship("run", "meta", "--dry-run") == 0

    assert fake.requests == []
    files = _outbox_files(workspace, "meta")
    assert len(files) == 3
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}-\d{5}\.json", path.name)
               for path in files)
    assert [path.name[-10:] for path in files] == ["00001.json", "00002.json", "00003.json"]
    bodies = [json.loads(path.read_text()) for path in files]
    assert sorted(len(body["data"]) for body in bodies) == [20, 40, 40]
    for path in files:
        assert META_TOKEN not in path.read_text()
    with workspace.ledger() as ledger:
        assert ledger.status_counts("meta") == {}
        (run,) = ledger.recent_runs(["meta"])
    assert run["mode"] == "dry_run"
    assert "dry run" in capsys.readouterr().out

    # A real run afterwards sends every event: the dry run marked nothing delivered,
    # and the bodies it wrote are the bodies that go on the wire.
    assert workspace.ship("run", "meta") == 0
    assert len(fake.accepted_ids) == 100
    sent = sorted((event for request in fake.requests for event in request.json()["data"]),
                  key=lambda event: event["event_id"])
    written = sorted((event for body in bodies for event in body["data"]),
                     key=lambda event: event["event_id"])
    assert sent == written


def test_dry_run_body_bytes_equal_the_request_body(workspace):
    fake = workspace.meta()
    workspace.meta_mart([meta_row(3)])
    assert workspace.ship("run", "meta", "--dry-run", "--outbox", "elsewhere") == 0
    (path,) = sorted((workspace.root / "elsewhere" / "meta").glob("*.json"))
    assert workspace.ship("run", "meta") == 0
    (request,) = fake.requests
    assert path.read_bytes() == request.body


def test_tiktok_dry_run_leaves_the_header_token_out(workspace):
    workspace.tiktok()
    workspace.tiktok_mart(tiktok_row(i) for i in range(3))
    assert workspace.ship("run", "tiktok", "--dry-run") == 0
    (path,) = _outbox_files(workspace, "tiktok")
    assert TIKTOK_TOKEN not in path.read_text()
    assert json.loads(path.read_text())["event_source"] == "offline"


def test_no_credentials_at_all_is_an_error_not_a_dry_run(workspace, capsys):
    """A scheduler whose secret injection failed must not report success (nor write
    clear-text profiles to the outbox): a dry run happens only with --dry-run."""
    workspace.meta_mart(meta_row(i) for i in range(5))
    workspace.tiktok_mart(tiktok_row(i) for i in range(4))

    assert workspace.ship("run") == 2

    err = capsys.readouterr().err
    assert "meta cannot be sent without META_ACCESS_TOKEN (and 1 more destination(s))" in err
    assert not workspace.outbox.exists()
    assert not workspace.ledger_path.exists()


def test_dry_run_without_dataset_id_still_writes_bodies(workspace):
    workspace.env(META_DATASET_ID="")
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("run", "meta", "--dry-run") == 0
    assert len(_outbox_files(workspace, "meta")) == 1


def test_an_enabled_destination_without_its_credential_stops_the_live_run(workspace, capsys):
    meta = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(5))
    workspace.tiktok_mart(tiktok_row(i) for i in range(5))

    assert workspace.ship("run") == 2

    assert "tiktok cannot be sent without TIKTOK_ACCESS_TOKEN" in capsys.readouterr().err
    assert meta.requests == []  # refused before anything was sent
    # Naming only the destinations that have their credentials ships them.
    assert workspace.ship("run", "meta") == 0
    assert len(meta.accepted_ids) == 5


def test_expired_events_in_a_dry_run_are_counted_and_not_recorded(workspace):
    workspace.meta_mart([meta_row(1),
                         meta_row(2, age_seconds=8 * 86_400, action_source="phone_call")])
    assert workspace.ship("run", "meta", "--dry-run") == 0
    assert workspace.statuses("meta") == {}
    (path,) = _outbox_files(workspace, "meta")
    assert [event["event_id"] for event in json.loads(path.read_text())["data"]] == ["evt-1"]
