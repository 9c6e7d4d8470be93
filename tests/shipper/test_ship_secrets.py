"""Credentials never reach logs, printed output, the outbox or the ledger."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import duckdb

from shipper.redact import ScrubFilter, register_secret, scrub
from tests.fakes import Reply, Reset
from tests.shipper.marts import meta_row, tiktok_row

META_SECRET = "EAAB-meta-secret-9f8e7d6c5b4a"
TIKTOK_SECRET = "tt-secret-1a2b3c4d5e6f"


def _ledger_text(workspace) -> str:
    con = duckdb.connect(str(workspace.ledger_path), read_only=True)
    try:
        rows = con.execute("select * from deliveries").fetchall()
        rows += con.execute("select * from runs").fetchall()
    finally:
        con.close()
    return repr(rows)


def test_tokens_never_appear_anywhere(workspace, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # urllib3 prints request URLs at debug level
    meta = workspace.meta(token=META_SECRET)
    tiktok = workspace.tiktok(token=TIKTOK_SECRET)
    workspace.env(META_ACCESS_TOKEN=META_SECRET, TIKTOK_ACCESS_TOKEN=TIKTOK_SECRET,
                  META_BATCH_SIZE="5", TIKTOK_BATCH_SIZE="5")
    # Platforms that echo the credential back in an error must not leak it either.
    meta.misbehave(
        Reply(500, {"error": {"message": f"internal error for token {META_SECRET}"}}),
        Reply(429, "", {"Retry-After": "1"}),
        Reset(),
        Reply(400, {"error": {"message": f"Invalid parameter access_token={META_SECRET}",
                              "code": 100}}),
    )
    tiktok.misbehave(Reply(200, {"code": 40002, "message": f"bad header {TIKTOK_SECRET}"}))
    workspace.meta_mart(meta_row(i) for i in range(12))
    workspace.tiktok_mart(tiktok_row(i) for i in range(6))

    workspace.ship("run", "--dry-run")
    workspace.ship("run", "-v")
    workspace.ship("status")

    captured = capsys.readouterr()
    outbox = "".join(path.read_text() for path in workspace.outbox.rglob("*.json"))
    assert outbox  # the dry run did write bodies
    everything = caplog.text + captured.out + captured.err + outbox + _ledger_text(workspace)
    assert META_SECRET not in everything
    assert TIKTOK_SECRET not in everything
    assert "***" in everything  # the echoed tokens were masked, not dropped silently
    # The requests themselves did carry the credentials.
    assert meta.requests[0].param("access_token") == META_SECRET
    assert tiktok.requests[0].header("access-token") == TIKTOK_SECRET


def test_a_refused_connection_message_does_not_leak_the_query_token(workspace, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    workspace.meta(token=META_SECRET)
    workspace.env(META_ACCESS_TOKEN=META_SECRET, META_BASE_URL="http://127.0.0.1:9",
                  META_MAX_ATTEMPTS="2")
    workspace.meta_mart([meta_row(1)])

    assert workspace.ship("run", "meta") == 2

    captured = capsys.readouterr()
    assert META_SECRET not in caplog.text + captured.out + captured.err
    assert META_SECRET not in _ledger_text(workspace)


def test_scrub_masks_registered_values_and_token_shapes():
    register_secret("abcd-registered-secret")
    assert scrub("x abcd-registered-secret y") == "x *** y"
    assert scrub("/v25.0/1/events?access_token=zzz&x=1") == "/v25.0/1/events?access_token=***&x=1"
    assert scrub('{"access_token": "zzz"}') == '{"access_token": "***"}'
    assert scrub("Access-Token: zzz") == "Access-Token: ***"
    assert scrub("Authorization: Bearer zzz") == "Authorization: ***"
    assert scrub("12 events, 0 rejected") == "12 events, 0 rejected"


def test_scrub_filter_rewrites_records_and_drops_tracebacks():
    register_secret("filter-secret-123")
    try:
        raise ValueError("boom filter-secret-123")
    except ValueError:
        import sys

        record = logging.LogRecord("shipper", logging.ERROR, __file__, 1,
                                   "failed with %s", ("filter-secret-123",), sys.exc_info())
    assert ScrubFilter().filter(record)
    assert "filter-secret-123" not in record.getMessage()
    assert record.exc_info is None


def _everything(workspace, caplog, capsys) -> str:
    captured = capsys.readouterr()
    outbox = "".join(path.read_text() for path in workspace.outbox.rglob("*.json"))
    con = duckdb.connect(str(workspace.ledger_path), read_only=True)
    try:
        tables = [row[0] for row in con.execute(
            "select table_name from information_schema.tables").fetchall()]
        ledger = repr([con.execute(f'select * from "{table}"').fetchall() for table in tables])
    finally:
        con.close()
    return caplog.text + captured.out + captured.err + outbox + ledger


def test_google_refresh_tokens_client_secrets_and_issued_tokens_never_appear(
        workspace, caplog, capsys):
    """An unattended Google run: the refresh token and client secret, and every access
    token the endpoint issues, stay out of logs, output, the outbox and the ledger, also
    when the token endpoint or the API quote them back."""
    from tests.shipper.test_ship_google_ads import (
        CLIENT_SECRET,
        REFRESH_TOKEN,
        google_auth,
        google_row,
        mart,
    )

    caplog.set_level(logging.DEBUG)
    fake, auth = google_auth(workspace, kind="refresh_token")
    workspace.env(GOOGLE_ADS_BATCH_SIZE="5", GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    mart(workspace, (google_row(i) for i in range(12)))
    # The token endpoint refuses once, quoting the grant it was given ...
    auth.refuse = (400, "invalid_grant",
                   f"refresh_token {REFRESH_TOKEN} with secret {CLIENT_SECRET} is revoked")
    assert workspace.ship("run", "google_ads", "-v") == 2
    auth.refuse = None
    # ... the API quotes the access token in an error, then revokes it mid-run (401,
    # a refresh) ...
    fake.echo_token_once = True
    fake.ingest_hook = auth.revoke_all
    assert workspace.ship("run", "google_ads", "--dry-run") == 0
    assert workspace.ship("run", "google_ads", "-v") == 0
    fake.ingest_hook = None
    # ... and the token endpoint answers something that is not a token, quoting it again.
    auth.revoke_all()
    assert workspace.ship("status", "--refresh", "google_ads") == 0
    auth.fail_always(Reply(200, f"<html>{REFRESH_TOKEN} {CLIENT_SECRET}</html>"))
    assert workspace.ship("status", "--refresh", "google_ads") == 2
    auth.fail_always(None)

    everything = _everything(workspace, caplog, capsys)
    assert len(auth.issued) >= 2 and fake.refused_tokens
    for secret in (REFRESH_TOKEN, CLIENT_SECRET, *auth.issued):
        assert secret not in everything
    assert "***" in everything  # what was quoted back was masked, not dropped silently
    assert fake.requests[0].header("authorization").startswith("Bearer ya29.fake-")


def test_a_google_service_account_key_never_appears(workspace, caplog, capsys):
    from tests.shipper.test_ship_google_ads import google_auth, google_row, mart

    caplog.set_level(logging.DEBUG)
    fake, auth = google_auth(workspace)
    key = json.loads(Path(os.environ["GOOGLE_ADS_SERVICE_ACCOUNT_FILE"]).read_text())
    mart(workspace, (google_row(i) for i in range(3)))
    auth.refuse = (400, "invalid_grant", f"bad key {key['private_key']}")
    assert workspace.ship("run", "google_ads", "-v") == 2
    auth.refuse = None
    assert workspace.ship("run", "google_ads", "-v") == 0

    everything = _everything(workspace, caplog, capsys)
    assert "PRIVATE KEY" not in everything
    assert key["private_key"].splitlines()[1] not in everything
    for token in auth.issued:
        assert token not in everything
    assert len(fake.accepted_ids) == 3
