"""Google Ads through the Data Manager API: a mart in DuckDB -> `ship run` -> the fake.

The credentials of an unattended run (a service account key, a refresh token) are
traded at a loopback token endpoint (FakeGoogleAuth) that checks the grant and issues
short-lived tokens the fake API refuses once expired; Google's processing status of
each request is read back from the fake's requestStatus.retrieve.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.google_ads import FakeGoogleAds, FakeGoogleAuth
from tests.fakes.server import Reply, Reset, Stall
from tests.oracles import google_ads as oracle
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
    "store_id": "varchar",
    "store_sales": "boolean",
    "email_sha256": "varchar",
    "phone_sha256": "varchar",
    "given_name_sha256": "varchar",
    "family_name_sha256": "varchar",
    "region_code": "varchar",
    "postal_code": "varchar",
    "cart_items": "varchar",
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
        "store_id": None if index % 5 == 0 else f"store-{index % 3}",
        "store_sales": False,
        "email_sha256": sha(f"customer{index}@gmail.com"),
        "phone_sha256": sha(f"+1650555{index:04d}") if index % 2 else None,
        # Every third customer with a whole address, every other order with its lines.
        **({"given_name_sha256": sha("mary"), "family_name_sha256": sha("o'brien"),
            "region_code": "US", "postal_code": "94043"} if index % 3 == 1 else {}),
        "cart_items": json.dumps([{"merchantProductId": f"sku-{index % 7}", "quantity": 2,
                                   "unitPrice": 10.5}]) if index % 2 else None,
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


SERVICE_ACCOUNT = "conversions-shipper@test-project.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"
REFRESH_TOKEN = "1//04-refresh-token-for-tests-abcdef"
CLIENT_ID = "123456789-test.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-test-client-secret-123"
JWT_GRANT = FakeGoogleAuth.JWT_GRANT
TOO_OLD = "PROCESSING_ERROR_REASON_EVENT_TOO_OLD"
DENIED = "PROCESSING_ERROR_REASON_DENIED_CONSENT"


@functools.cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA key for the session: generated here, never a key from anywhere else."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_key(directory: Path, key: rsa.RSAPrivateKey | None = None) -> Path:
    """A service account key file as Google Cloud gives it, with the test's own key."""
    pem = (key or rsa_key()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    path = directory / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test-project", "private_key_id": KEY_ID,
        "private_key": pem, "client_email": SERVICE_ACCOUNT, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }))
    return path


class WallClock:
    """The run's wall clock (and the token endpoint's): real time plus what a test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def google_auth(workspace, *, kind: str = "service_account", lifetime: int = 3600,
                clock: WallClock | None = None, api_token: str | None = None,
                **options: Any) -> tuple[FakeGoogleAds, FakeGoogleAuth]:
    """The fake API and a fake token endpoint, with `kind` credentials in the environment:
    service_account (a key file) or refresh_token (client id, secret, refresh token)."""
    auth = FakeGoogleAuth(lifetime=lifetime, now=clock or time.time,
                          client_email=SERVICE_ACCOUNT, private_key_id=KEY_ID,
                          public_key=rsa_key().public_key(), client_id=CLIENT_ID,
                          client_secret=CLIENT_SECRET, refresh_token=REFRESH_TOKEN)
    auth_server = workspace.servers(auth)
    auth.url = auth_server.url
    fake = FakeGoogleAds(token=api_token, auth=None if api_token else auth, **options)
    server = workspace.servers(fake)
    workspace.env(GOOGLE_ADS_BASE_URL=server.url, GOOGLE_ADS_OAUTH_ENDPOINT=auth.url + "/token",
                  GOOGLE_ADS_CUSTOMER_ID="123-456-7890",
                  GOOGLE_ADS_CONVERSION_ACTION_ID=fake.conversion_action_id,
                  GOOGLE_ADS_TIMEOUT_SECONDS="5")
    if kind == "service_account":
        workspace.env(GOOGLE_ADS_SERVICE_ACCOUNT_FILE=str(service_account_key(workspace.root)))
    else:
        workspace.env(GOOGLE_ADS_REFRESH_TOKEN=REFRESH_TOKEN, GOOGLE_ADS_CLIENT_ID=CLIENT_ID,
                      GOOGLE_ADS_CLIENT_SECRET=CLIENT_SECRET)
    if clock is not None:
        workspace.hooks = dataclasses.replace(workspace.hooks, wallclock=clock)
    return fake, auth


def ledger_rows(workspace, sql: str) -> list[tuple]:
    con = duckdb.connect(str(workspace.ledger_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


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
        "userData": {"userIdentifiers": [
            {"emailAddress": sha("customer1@gmail.com")},
            {"phoneNumber": sha("+16505550001")},
            {"address": {"givenName": sha("mary"), "familyName": sha("o'brien"),
                         "regionCode": "US", "postalCode": "94043"}},
        ]},
        "consent": {"adUserData": "CONSENT_GRANTED",
                    "adPersonalization": "CONSENT_STATUS_UNSPECIFIED"},
        "cartData": {"items": [{"merchantProductId": "sku-1", "quantity": 2, "unitPrice": 10.5}]},
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


def test_address_and_cart_members_are_checked_as_googles_parser_does(workspace):
    """An address without its postal code, a cart item with a member Google does not
    know, and a quantity written as a word are each refused by name; the others go."""
    fake = google(workspace)
    workspace.env(GOOGLE_ADS_BATCH_SIZE="8")
    rows = [google_row(i) for i in range(8)]
    broken = {}
    for index, change in ((1, lambda event: event["userData"]["userIdentifiers"][2]["address"]
                           .pop("postalCode")),
                          (3, lambda event: event["cartData"]["items"][0].update(sku="x")),
                          (5, lambda event: event["cartData"]["items"][0].update(quantity="two"))):
        event = json.loads(payload_of("google_ads_conversions", rows[index]))
        change(event)
        broken[index] = json.dumps(event)
    mart(workspace, ({**row, "payload": broken.get(index)} for index, row in enumerate(rows)))

    assert workspace.ship("run", "google_ads") == 1

    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in (0, 2, 4, 6, 7))
    with workspace.ledger() as ledger:
        reasons = {row["delivery_key"]: row["reason"] for row in ledger.rejections(["google_ads"])}
    assert set(reasons) == {"evt-1", "evt-3", "evt-5"}
    assert "userData.userIdentifiers[2].address.postalCode: Required." in reasons["evt-1"]
    assert "cartData.items[0].sku: Unknown field." in reasons["evt-3"]
    assert "cartData.items[0].quantity: Must be an int64." in reasons["evt-5"]


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
    err = capsys.readouterr().err
    assert "google_ads cannot be sent without GOOGLE_ADS_SERVICE_ACCOUNT_FILE" in err
    assert "GOOGLE_ADS_REFRESH_TOKEN" in err and "GOOGLE_ADS_ACCESS_TOKEN" in err


def test_a_customer_id_that_is_not_10_digits_is_a_config_error(workspace, capsys):
    google(workspace)
    workspace.env(GOOGLE_ADS_CUSTOMER_ID="12345")
    mart(workspace, [google_row(1)])

    assert workspace.ship("run", "google_ads") == 2

    assert "GOOGLE_ADS_CUSTOMER_ID" in capsys.readouterr().err


# -- unattended credentials ----------------------------------------------------------------


def test_a_service_account_key_is_traded_for_a_token_once_and_ships(workspace):
    fake, auth = google_auth(workspace)
    mart(workspace, (google_row(i) for i in range(30)))

    assert workspace.ship("run", "google_ads") == 0

    assert auth.grants == [JWT_GRANT]  # the fake checked the JWT's signature, aud, scope
    (token,) = auth.issued
    (request,) = fake.requests
    assert request.header("authorization") == f"Bearer {token}"
    assert sorted(fake.accepted_ids) == sorted(f"SO-{i}" for i in range(30))
    assert fake.refused_tokens == []


def test_a_refresh_token_is_traded_for_a_token(workspace):
    fake, auth = google_auth(workspace, kind="refresh_token")
    mart(workspace, (google_row(i) for i in range(5)))

    assert workspace.ship("run", "google_ads") == 0

    assert auth.grants == ["refresh_token"]
    assert len(fake.accepted_ids) == 5


def test_a_run_longer_than_a_tokens_life_keeps_going(workspace):
    """Tokens last an hour; each request takes 40 minutes of the run's clock. The token
    is refreshed before it expires, so no request is ever refused."""
    clock = WallClock()
    fake, auth = google_auth(workspace, clock=clock)
    fake.ingest_hook = lambda: clock.advance(40 * 60)
    workspace.env(GOOGLE_ADS_BATCH_SIZE="10", GOOGLE_ADS_CONCURRENCY="1")
    mart(workspace, (google_row(i) for i in range(60)))

    assert workspace.ship("run", "google_ads") == 0

    assert len(fake.requests) == 6
    assert clock.offset == 6 * 40 * 60  # the last request went at 3 h 20 min
    # Requests at 0, 40 min (token 1), 80, 120 (token 2), 160, 200 (token 3): each token
    # replaced five minutes before its hour was up, none ever refused.
    assert auth.grants == [JWT_GRANT] * 3
    assert fake.refused_tokens == []
    assert len(set(fake.accepted_ids)) == 60
    tokens = [request.header("authorization").removeprefix("Bearer ")
              for request in fake.requests]
    assert [len(set(tokens[:i])) for i in (2, 4, 6)] == [1, 2, 3]


def test_a_401_asks_for_a_new_token_once_and_the_run_goes_on(workspace):
    fake, auth = google_auth(workspace)
    fake.ingest_hook = auth.revoke_all  # Google forgets every token after the first request
    workspace.env(GOOGLE_ADS_BATCH_SIZE="10", GOOGLE_ADS_CONCURRENCY="1")
    mart(workspace, (google_row(i) for i in range(20)))

    assert workspace.ship("run", "google_ads") == 0

    assert len(fake.refused_tokens) == 1
    assert auth.grants == [JWT_GRANT, JWT_GRANT]
    assert len(set(fake.accepted_ids)) == 20
    assert workspace.statuses("google_ads") == {"delivered": 20}


def test_a_token_refused_right_after_a_refresh_stops_the_destination(workspace, capsys):
    """The API refuses every token the endpoint issues (the service account lacks
    access): one refresh, then the destination stops, rows kept for the next run."""
    fake, auth = google_auth(workspace, api_token="ya29.not-what-the-endpoint-issues")
    mart(workspace, (google_row(i) for i in range(5)))

    assert workspace.ship("run", "google_ads") == 2

    assert len(fake.requests) == 2
    assert auth.grants == [JWT_GRANT, JWT_GRANT]
    assert workspace.statuses("google_ads") == {"failed": 5}
    captured = capsys.readouterr()
    assert "check GOOGLE_ADS_SERVICE_ACCOUNT_FILE" in captured.out + captured.err


@pytest.mark.parametrize("kind", ["service_account", "refresh_token"])
def test_a_refused_grant_stops_before_anything_is_sent(workspace, capsys, kind):
    fake, auth = google_auth(workspace, kind=kind)
    auth.refuse = (400, "invalid_grant", "Token has been expired or revoked.")
    mart(workspace, (google_row(i) for i in range(5)))

    assert workspace.ship("run", "google_ads") == 2

    assert fake.requests == []
    assert workspace.statuses("google_ads") == {}
    out = capsys.readouterr().out
    assert "invalid_grant: Token has been expired or revoked." in out
    hint = "GOOGLE_ADS_SERVICE_ACCOUNT_FILE" if kind == "service_account" \
        else "GOOGLE_ADS_REFRESH_TOKEN"
    assert f"check {hint}" in out


def _bad_key(directory: Path, content: str) -> str:
    path = directory / "bad-key.json"
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize("setup, expected", [
    (lambda root: {"GOOGLE_ADS_REFRESH_TOKEN": REFRESH_TOKEN, "GOOGLE_ADS_CLIENT_ID": CLIENT_ID},
     "GOOGLE_ADS_CLIENT_SECRET is not set"),
    (lambda root: {"GOOGLE_ADS_ACCESS_TOKEN": TOKEN,
                   "GOOGLE_ADS_SERVICE_ACCOUNT_FILE": str(service_account_key(root))},
     "more than one kind of credential"),
    (lambda root: {"GOOGLE_ADS_SERVICE_ACCOUNT_FILE": str(root / "nowhere.json")},
     "does not exist"),
    (lambda root: {"GOOGLE_ADS_SERVICE_ACCOUNT_FILE": _bad_key(root, "not json")},
     "is not JSON"),
    (lambda root: {"GOOGLE_ADS_SERVICE_ACCOUNT_FILE": _bad_key(
        root, json.dumps({"type": "authorized_user", "refresh_token": "x"}))},
     "is not a service account key"),
    (lambda root: {"GOOGLE_ADS_SERVICE_ACCOUNT_FILE": _bad_key(root, json.dumps({
        "type": "service_account", "client_email": SERVICE_ACCOUNT,
        "private_key": "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"}))},
     "not a readable RSA key"),
], ids=["refresh-token-without-secret", "two-kinds", "no-key-file", "not-json",
        "not-a-service-account", "broken-private-key"])
def test_credential_configuration_errors_stop_with_one_sentence(workspace, capsys, setup,
                                                                expected):
    fake = google(workspace)
    workspace.monkeypatch.delenv("GOOGLE_ADS_ACCESS_TOKEN")
    workspace.env(**setup(workspace.root))
    mart(workspace, [google_row(1)])

    assert workspace.ship("run", "google_ads") == 2

    assert fake.requests == []
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and err.startswith("ship: ")
    assert "BEGIN PRIVATE KEY" not in err


# -- Google's processing status (requestStatus.retrieve) -------------------------------------


def test_request_ids_are_kept_per_row_and_googles_processing_status_applied_next_run(
        workspace, capsys):
    fake, _ = google_auth(workspace)
    workspace.env(GOOGLE_ADS_BATCH_SIZE="10", GOOGLE_ADS_CONCURRENCY="1",
                  GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    mart(workspace, (google_row(i) for i in range(30)))

    assert workspace.ship("run", "google_ads") == 0

    first, second, third = fake.request_ids
    mapping = dict(ledger_rows(workspace, "select delivery_key, request_id "
                                          "from platform_request_rows"))
    assert len(mapping) == 30 and set(mapping.values()) == {first, second, third}
    assert ledger_rows(workspace, "select distinct status from platform_requests") == [("sent",)]
    # Google processes them: one event of the first request is too old, every event of
    # the second has its consent denied, the third goes through.
    _, first_events = fake.ingested[first]
    _, second_events = fake.ingested[second]
    fake.async_failures = {first_events[0]["transactionId"]: TOO_OLD,
                           **{event["transactionId"]: DENIED for event in second_events}}

    assert workspace.ship("run", "google_ads") == 0  # nothing left to send

    assert sorted(fake.status_asked) == sorted([first, second, third])
    statuses = dict(ledger_rows(workspace, "select request_id, status from platform_requests"))
    assert statuses == {first: "PARTIAL_SUCCESS", second: "FAILED", third: "SUCCESS"}
    assert workspace.statuses("google_ads") == {"delivered": 20, "rejected": 10}
    with workspace.ledger() as ledger:
        rejections = ledger.rejections(["google_ads"])
    assert {row["delivery_key"] for row in rejections} == {
        key for key, request in mapping.items() if request == second}
    reason = rejections[0]["reason"]
    assert f"requestId {second}" in reason and f"{DENIED} x10" in reason
    assert rejections[0]["rejected_by"] == "platform"

    capsys.readouterr()
    assert workspace.ship("status", "google_ads") == 0
    out = capsys.readouterr().out
    assert DENIED in out  # the rejected rows, with Google's reason
    assert "PARTIAL_SUCCESS" in out and f"{TOO_OLD} x1" in out and first in out

    # Nothing more to ask, and the rejected rows are not sent again.
    assert workspace.ship("run", "google_ads") == 0
    assert len(fake.request_ids) == 3
    assert sum(fake.status_asked.values()) == 3


def test_a_request_still_processing_is_asked_about_again_next_run(workspace):
    fake, _ = google_auth(workspace)
    fake.processing_checks = 1
    workspace.env(GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    mart(workspace, (google_row(i) for i in range(5)))
    assert workspace.ship("run", "google_ads") == 0
    (request_id,) = fake.request_ids

    assert workspace.ship("run", "google_ads") == 0
    assert ledger_rows(workspace, "select status, checks from platform_requests") == [
        ("PROCESSING", 1)]

    assert workspace.ship("run", "google_ads") == 0
    assert ledger_rows(workspace, "select status, checks from platform_requests") == [
        ("SUCCESS", 2)]
    assert fake.status_asked[request_id] == 2


def test_requests_are_asked_about_only_once_googles_wait_has_passed(workspace):
    fake, _ = google_auth(workspace)  # status_check_after_minutes: 30 by default
    mart(workspace, (google_row(i) for i in range(5)))
    assert workspace.ship("run", "google_ads") == 0
    assert workspace.ship("run", "google_ads") == 0
    assert fake.status_asked == {}


def test_an_internal_failure_sends_the_rows_again_in_the_same_run(workspace):
    fake, _ = google_auth(workspace)
    workspace.env(GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    mart(workspace, (google_row(i) for i in range(4)))
    assert workspace.ship("run", "google_ads") == 0
    fake.async_failures = {f"SO-{i}": "PROCESSING_ERROR_REASON_INTERNAL_ERROR"
                           for i in range(4)}
    first = fake.request_ids[0]

    fake_answers = fake.request_status

    def once(request_id: str) -> Reply:  # the resent request goes through
        reply = fake_answers(request_id)
        fake.async_failures = {}
        return reply
    fake.request_status = once  # type: ignore[method-assign]

    assert workspace.ship("run", "google_ads") == 0

    assert len(fake.request_ids) == 2
    assert fake.batch_sizes == [4, 4]
    statuses = dict(ledger_rows(workspace, "select request_id, status from platform_requests"))
    assert statuses[first] == "FAILED"
    assert workspace.statuses("google_ads") == {"delivered": 4}


def test_a_duplicate_transaction_failure_leaves_the_rows_delivered(workspace):
    fake, _ = google_auth(workspace)
    workspace.env(GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    mart(workspace, (google_row(i) for i in range(3)))
    assert workspace.ship("run", "google_ads") == 0
    fake.async_failures = {f"SO-{i}": "PROCESSING_ERROR_REASON_DUPLICATE_TRANSACTION_ID"
                           for i in range(3)}

    assert workspace.ship("run", "google_ads") == 0

    assert ledger_rows(workspace, "select status from platform_requests") == [("FAILED",)]
    assert workspace.statuses("google_ads") == {"delivered": 3}
    assert len(fake.request_ids) == 1


def test_status_refresh_asks_at_once(workspace, capsys):
    fake, _ = google_auth(workspace)
    mart(workspace, (google_row(i) for i in range(3)))
    assert workspace.ship("run", "google_ads") == 0
    fake.async_failures = {"SO-1": TOO_OLD}
    capsys.readouterr()

    assert workspace.ship("status", "--refresh", "google_ads") == 0

    out = capsys.readouterr().out
    assert "google_ads: Google's processing status of 1 request(s): 1 PARTIAL_SUCCESS" in out
    assert f"{TOO_OLD} x1" in out
    assert ledger_rows(workspace, "select status from platform_requests") == [
        ("PARTIAL_SUCCESS",)]


def test_status_refresh_without_credentials_is_one_sentence(workspace, capsys):
    google(workspace)
    mart(workspace, (google_row(i) for i in range(3)))
    assert workspace.ship("run", "google_ads") == 0
    workspace.monkeypatch.delenv("GOOGLE_ADS_ACCESS_TOKEN")
    capsys.readouterr()

    assert workspace.ship("status", "--refresh", "google_ads") == 2

    err = capsys.readouterr().err
    assert err.startswith("ship: google_ads cannot be asked about its requests without")
    assert err.count("\n") == 1


# -- store sales and Merchant Center ------------------------------------------------------


def store_sales_row(index: int, **overrides: Any) -> dict[str, Any]:
    row = google_row(index, event_source="IN_STORE", store_id=f"store-{index % 3}",
                     store_sales=True, **overrides)
    return row


def test_store_sales_go_to_a_store_sales_action_with_their_store(workspace):
    fake, _ = google_auth(workspace, store_sales_actions={"555000111"})
    workspace.env(GOOGLE_ADS_STORE_SALES="true",
                  GOOGLE_ADS_CONVERSION_ACTION_ID="555000111")
    mart(workspace, (store_sales_row(i) for i in range(6)))

    assert workspace.ship("run", "google_ads") == 0

    (request,) = fake.requests
    body = request.json()
    assert body["destinations"][0]["productDestinationId"] == "555000111"
    assert {event["eventLocation"]["storeId"] for event in body["events"]} == {
        "store-0", "store-1", "store-2"}
    assert {event["eventSource"] for event in body["events"]} == {"IN_STORE"}
    assert len(fake.accepted_ids) == 6


def test_the_fake_refuses_a_store_sale_without_its_store(workspace):
    google_auth(workspace, store_sales_actions={"555000111"})
    workspace.env(GOOGLE_ADS_STORE_SALES="true", GOOGLE_ADS_CONVERSION_ACTION_ID="555000111",
                  GOOGLE_ADS_BATCH_SIZE="4")
    rows = [store_sales_row(i) for i in range(4)]
    event = json.loads(payload_of("google_ads_conversions", rows[2]))
    del event["eventLocation"]
    rows[2]["payload"] = json.dumps(event)
    mart(workspace, rows)

    assert workspace.ship("run", "google_ads") == 1

    with workspace.ledger() as ledger:
        (rejection,) = ledger.rejections(["google_ads"])
    assert rejection["delivery_key"] == "evt-2"
    assert "eventLocation.storeId: Required for store sales." in rejection["reason"]


@pytest.mark.parametrize("setting, built_for_store_sales, expected", [
    ("true", False, "was not built for store sales"),
    ("false", True, "was built for store sales"),
])
def test_a_mart_built_for_the_other_mode_stops_the_destination(workspace, capsys, setting,
                                                               built_for_store_sales,
                                                               expected):
    fake, _ = google_auth(workspace, store_sales_actions={"555000111"})
    workspace.env(GOOGLE_ADS_STORE_SALES=setting)
    row = store_sales_row if built_for_store_sales else google_row
    mart(workspace, (row(i) for i in range(1, 4)))

    assert workspace.ship("run", "google_ads") == 2

    assert fake.requests == []
    assert workspace.statuses("google_ads") == {}
    captured = capsys.readouterr()
    assert expected in captured.out
    assert workspace.ship("run", "google_ads", "--dry-run") == 2


def test_merchant_center_ids_travel_in_cart_data(workspace):
    """The mart puts them there (dbt vars); the fake takes them, and Google's processing
    refuses a merchant id that is not digits (the status shows it)."""
    fake, _ = google_auth(workspace)
    workspace.env(GOOGLE_ADS_STATUS_CHECK_AFTER_MINUTES="0")
    settings = {"merchant_id": "1234567", "merchant_feed_label": "US",
                "merchant_feed_language_code": "en"}
    rows = [google_row(i) for i in (1, 3)]
    payloads = [oracle.to_wire(row, settings) for row in rows]
    payloads[1]["cartData"]["merchantId"] = "not-digits"
    mart(workspace, ({**row, "payload": json.dumps(payload)}
                     for row, payload in zip(rows, payloads, strict=True)))

    assert workspace.ship("run", "google_ads") == 0
    (request,) = fake.requests
    assert request.json()["events"][0]["cartData"]["merchantFeedLabel"] == "US"

    assert workspace.ship("run", "google_ads") == 0
    assert ledger_rows(workspace, "select status, reason from platform_requests") == [(
        "PARTIAL_SUCCESS",
        "PARTIAL_SUCCESS: 1 of 2 events failed (PROCESSING_ERROR_REASON_INVALID_MERCHANT_ID x1)")]


def test_a_version_2_ledger_is_migrated_and_read(workspace, capsys):
    """A ledger written before the request tables: `ship status` reads it as it is, and
    the next run adds the tables (schema version 3) and keeps what was delivered."""
    fake = google(workspace)
    mart(workspace, (google_row(i) for i in range(3)))
    assert workspace.ship("run", "google_ads") == 0
    con = duckdb.connect(str(workspace.ledger_path))
    con.execute("drop table platform_request_rows")
    con.execute("drop table platform_requests")
    con.execute("update ledger_info set value = '2' where key = 'schema_version'")
    con.close()

    assert workspace.ship("status") == 0
    assert "rejected rows: none" in capsys.readouterr().out

    mart(workspace, (google_row(i) for i in range(5)))
    assert workspace.ship("run", "google_ads") == 0
    assert fake.batch_sizes == [3, 2]
    assert ledger_rows(workspace, "select value from ledger_info "
                                  "where key = 'schema_version'") == [("3",)]
    assert ledger_rows(workspace, "select events from platform_requests") == [(2,)]
