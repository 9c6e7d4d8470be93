"""Google's own libraries as the oracle of what we send Google's Data Manager API.

Requests: every row of google_ads_conversions, on the fixture build (plus a
generated set of messy customers who each place an order) and on the demo
data, is wrapped the way the shipper wraps it (GoogleAds.build_request: the
envelope) and the body is parsed by `google.protobuf.json_format.Parse` into
google-ads-datamanager's `IngestEventsRequest` protobuf, unknown fields
refused; then the parsed event is held to what the proto's comments require
(at most 10 user identifiers, an AddressInfo whole) and to the loopback fake.

Identifiers: for each customer of the raw input (fixtures, demo, generated),
google-ads-datamanager-util's Formatter computes the identifiers from the raw
values (process_email_address, process_phone_number, process_given_name,
process_family_name, process_region_code, process_postal_code) and they are
compared with int_customers_normalized's. Where we knowingly differ from the
util, the input is not compared (KNOWN_DIFFERENCES says which and why).

What the vendor says that PLATFORMS.md does not (google-ads-datamanager
0.9.4, google-ads-datamanager-util 0.4.0, Google's "Format user data" guide):
- given / family name: the util only trims and lower-cases (punctuation,
  inner spaces and accents kept), though the AddressInfo proto comment says
  "no punctuation"; we follow the util.
- postal code: the util only trims; the guide wants US zip codes as 5 digits
  (or 5 + a 4-digit extension), no extension elsewhere. We send the US 5
  digits; the comparison applies that rule on top of the util.
- region code: the util upper-cases and takes only 2 characters; we resolve
  the country first (names, alpha-3, the default country), so only customers
  who wrote an ISO alpha-2 code are compared.
- phone: the util only keeps the digits and puts '+' in front; making E.164
  (country code) is the caller's work, done here with phonenumbers.

Issue #14: a third build of the fixture data with store sales and the Merchant
Center vars set is parsed the same way (eventLocation.storeId, cartData's
merchantId, merchantFeedLabel, merchantFeedLanguageCode are the proto's); the
fake's requestStatus.retrieve answers parse into the library's
RetrieveRequestStatusResponse, and the shipper reads the JSON the library
writes for one.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pytest
from google.ads.datamanager_util import Encoding, Formatter
from google.ads.datamanager_v1 import (
    ErrorCount,
    ErrorInfo,
    EventSource,
    IngestEventsRequest,
    ProcessingErrorReason,
    RequestStatusPerDestination,
    RetrieveRequestStatusResponse,
)
from google.protobuf import json_format

from shipper.destinations.google_ads import GoogleAds, GoogleAdsSettings
from shipper.destinations.google_ads_status import settle
from tests.fakes.google_ads import FakeGoogleAds
from tests.sql.conftest import AS_OF, FIXTURE_RAW, PROJECT_DIR, DbtProject

DEMO_RAW = PROJECT_DIR / "data" / "demo"
DEMO_AS_OF = (DEMO_RAW / "as_of.txt").read_text(encoding="utf-8").strip()
MODELS = ("+google_ads_conversions", "+int_customers_normalized")
MAX_USER_IDENTIFIERS = 10  # UserData.user_identifiers: "At most 10"
FORMATTER = Formatter()
HEX64 = re.compile(r"[0-9a-f]{64}")

with open(PROJECT_DIR / "seeds" / "country_codes.csv", encoding="utf-8") as seed:
    ISO_ALPHA2 = {row["alpha2"].upper() for row in csv.DictReader(seed)}


def midnight_utc(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


# ---------------------------------------------------------------------------
# Generated customers: many countries, gmail / googlemail with dots and
# +suffix, mixed case, whitespace, names with accents, apostrophes and spaces.

# (region, how the country is written, postal codes as people write them)
COUNTRIES = [
    ("US", ["US", "us", " Us ", "USA", "United States"],
     ["98101", "98101-1234", "981011234", " 10001 ", "9810", "ABCDE"]),
    ("GB", ["GB", "gb", "United Kingdom", "UK"], ["SW1A 1AA", "m1 1ae", " EC1A 1BB "]),
    ("DE", ["DE", "de", "Germany"], ["10115", "80331"]),
    ("FR", ["FR", "fr", "France"], ["75001", "13002"]),
    ("ES", ["ES", "Spain"], ["28013"]),
    ("IT", ["IT", "it"], ["00184"]),
    ("NL", ["NL"], ["1012 JS"]),
    ("IE", ["IE", "Ireland"], ["D02 X285"]),
    ("JP", ["JP", "Japan"], ["100-0001"]),
    ("PT", ["PT"], ["1000-001"]),
    ("BR", ["BR", "Brazil"], ["01310-100"]),
    ("CA", ["CA", "Canada"], ["K1A 0B1"]),
    ("AU", ["AU"], ["2000"]),
    ("IN", ["IN", "India"], ["110001"]),
    ("MX", ["MX"], ["06600"]),
    ("PL", ["PL"], ["00-950"]),
    ("SE", ["SE"], ["111 22"]),
    ("TR", ["TR", "Turkey"], ["34000"]),
    ("GR", ["GR", "Greece"], ["105 57"]),
]
FIRST_NAMES = ["José", "Zoë", "Mary Ann", "Jean-Luc", "Łukasz", "İlkay", "Søren", "Renée",
               "Björn", "Çağla", "Ana María", "François", "Ólafur", "Chloé", "Nuño", "Ying",
               "Seán", "Åsa", "Dmitrij", "Giulia"]
LAST_NAMES = ["O'Brien", "D’Angelo", "van der Berg", "Müller-Lüdenscheidt", "García Márquez",
              "Nguyễn", "Øvergård", "de la Cruz", "St. John", "MacDonald", "Łęcka", "Yılmaz",
              "Papadopoulos", "Smith", "Dupont", "Straße", "Ó Súilleabháin", "Kowalski"]
DOMAINS = ["gmail.com", "GMail.com", "googlemail.com", "GoogleMail.COM", "example.com",
           "mail.example.co.uk", "yahoo.fr", "outlook.de"]
BROKEN_EMAILS = ["no-at-sign.example.com", "two@@gmail.com", "+only@gmail.com",
                 "...@googlemail.com", "in side@example.com", "a@b@gmail.com"]
# Whitespace Python's str.strip() and our trim both remove (not ZWSP or BOM:
# see KNOWN_DIFFERENCES).
PADDING = ["", "", "", " ", "  ", "\t", "\u00a0", "\u3000", " \u2003"]
PHONE_TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]


def _cased(rng: random.Random, text: str) -> str:
    return rng.choice([text, text, text.upper(), text.lower(), text.title()])


def _padded(rng: random.Random, text: str) -> str:
    return rng.choice(PADDING) + text + rng.choice(PADDING)


def _email(rng: random.Random, first: str, last: str) -> str:
    if rng.random() < 0.08:
        return rng.choice(BROKEN_EMAILS)
    ascii_name = re.sub(r"[^a-z]", "", (first + last).lower()) or "someone"
    local = "".join(char + ("." if rng.random() < 0.2 else "") for char in ascii_name).strip(".")
    if rng.random() < 0.4:
        local += "+" + rng.choice(["news", "Shop.2026", "a+b", ""])
    local = "".join(char.upper() if rng.random() < 0.2 else char for char in local)
    return _padded(rng, f"{local}@{rng.choice(DOMAINS)}")


def _phone(rng: random.Random, region: str) -> str | None:
    example = phonenumbers.example_number_for_type(region, rng.choice(PHONE_TYPES))
    if example is None or rng.random() < 0.1:
        return None
    national = str(example.national_number)
    tail = "".join(rng.choice("0123456789") for _ in range(3))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-3]}{tail}")
    style = rng.choice(["E164", "INTERNATIONAL", "INTERNATIONAL", "NATIONAL"])
    written = phonenumbers.format_number(number, getattr(phonenumbers.PhoneNumberFormat, style))
    return _padded(rng, written + rng.choice(["", "", " ext. 12"]))


def generated_customers(count: int = 240, seed: int = 13) -> list[dict[str, str | None]]:
    rng = random.Random(seed)
    customers = []
    for index in range(count):
        region, countries, postal_codes = rng.choice(COUNTRIES)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        customers.append({
            "customer_id": f"g{index:04d}",
            "email": _email(rng, first, last) if rng.random() < 0.9 else None,
            "phone": _phone(rng, region),
            "first_name": _padded(rng, _cased(rng, first)) if rng.random() < 0.95 else None,
            "last_name": _padded(rng, _cased(rng, last)) if rng.random() < 0.95 else None,
            "postal_code": _padded(rng, rng.choice(postal_codes)) if rng.random() < 0.9 else None,
            "country": rng.choice(countries) if rng.random() < 0.95 else None,
            "marketing_consent": "true",
            "updated_at": "2026-01-01T00:00:00Z",
        })
    return customers


def generated_orders(customers: list[dict[str, Any]], seed: int = 13):
    """One store or phone order per generated customer inside Google's window,
    with one to three lines."""
    rng = random.Random(seed)
    orders, items = [], []
    as_of = dt.datetime.fromisoformat(AS_OF).replace(tzinfo=dt.UTC)
    for index, customer in enumerate(customers):
        order_id = f"go{index:04d}"
        moment = as_of - dt.timedelta(days=rng.randint(1, 80), minutes=rng.randint(1, 1000))
        orders.append({
            "order_id": order_id, "customer_id": customer["customer_id"],
            "ordered_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "store_id": rng.choice(["s1", "s2", "s3"]), "channel": rng.choice(["store", "phone"]),
            "currency": rng.choice(["USD", "EUR", "GBP"]), "status": "completed",
        })
        for line in range(1, rng.randint(1, 3) + 1):
            quantity, price = rng.randint(1, 3), rng.choice(["5.00", "19.99", "120.50"])
            items.append({
                "order_id": order_id, "line_number": str(line), "product_id": f"sku-{line}{index % 5}",
                "product_name": "Thing", "category": "Things", "brand": "Acme",
                "quantity": str(quantity), "unit_price": price,
                "line_total": f"{quantity * float(price):.2f}",
            })
    return orders, items


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows under the file's own header, every value quoted (padding kept)."""
    with open(path, encoding="utf-8", newline="") as existing:
        header = next(csv.reader(existing))
    with open(path, "a", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for row in rows:
            writer.writerow(["" if row.get(name) is None else row[name] for name in header])


# ---------------------------------------------------------------------------
# The builds: the fixture raw data with the generated customers and their
# orders, and the demo data (reusing the seeds already loaded).


@dataclasses.dataclass(frozen=True)
class Build:
    duckdb_path: Path
    raw_customers: Path
    as_of: str

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


STORE_SALES_VARS = {"google_ads_store_sales": True, "google_ads_merchant_id": "1234567",
                    "google_ads_merchant_feed_label": "US",
                    "google_ads_merchant_feed_language_code": "en"}


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Build]:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    previous = os.environ.get("DUCKDB_PATH")
    workdir = tmp_path_factory.mktemp("google_datamanager")
    raw = workdir / "raw"
    shutil.copytree(FIXTURE_RAW, raw)
    customers = generated_customers()
    orders, items = generated_orders(customers)
    append_rows(raw / "customers.csv", customers)
    append_rows(raw / "orders.csv", orders)
    append_rows(raw / "order_items.csv", items)
    project = DbtProject(workdir, raw_path=raw)
    try:
        for args in (("seed",), ("run", "--select", *MODELS)):
            result = project.invoke(*args)
            assert result.success, result.exception
        fixture = Build(project.duckdb_path, raw / "customers.csv", AS_OF)
        project.duckdb_path = workdir / "demo.duckdb"
        shutil.copy(fixture.duckdb_path, project.duckdb_path)
        result = project.invoke("run", "--select", *MODELS,
                                vars={"raw_path": str(DEMO_RAW), "as_of": DEMO_AS_OF})
        assert result.success, result.exception
        demo = Build(project.duckdb_path, DEMO_RAW / "customers.csv", DEMO_AS_OF)
        # The fixture again, the mart alone rebuilt for store sales with Merchant Center ids.
        project.duckdb_path = workdir / "store_sales.duckdb"
        shutil.copy(fixture.duckdb_path, project.duckdb_path)
        # Its data tests too; not its unit tests, which set their own vars.
        result = project.invoke("build", "--select", "google_ads_conversions",
                                "--exclude-resource-type", "unit_test",
                                vars={"raw_path": str(raw), **STORE_SALES_VARS})
        assert result.success, result.exception
        store_sales = Build(project.duckdb_path, raw / "customers.csv", AS_OF)
    finally:
        if previous is None:
            os.environ.pop("DUCKDB_PATH", None)
        else:
            os.environ["DUCKDB_PATH"] = previous
    return {"fixture": fixture, "demo": demo, "store_sales": store_sales}


# ---------------------------------------------------------------------------
# Requests: the shipper's body, parsed by the library's IngestEventsRequest.

SHIPPER = GoogleAds(GoogleAdsSettings(customer_id="123-456-7890", conversion_action_id="987654321"),
                    {"GOOGLE_ADS_ACCESS_TOKEN": "ya29.test"})


def request_problems(event_pb: Any) -> list[str]:
    """What the proto's comments require and JSON parsing alone does not check."""
    problems = []
    identifiers = event_pb.user_data.user_identifiers
    if not 1 <= len(identifiers) <= MAX_USER_IDENTIFIERS:
        problems.append(f"{len(identifiers)} user identifiers (1 to {MAX_USER_IDENTIFIERS})")
    for position, identifier in enumerate(identifiers):
        kind = identifier.WhichOneof("identifier")
        where = f"userIdentifiers[{position}]"
        if kind in ("email_address", "phone_number"):
            if not HEX64.fullmatch(getattr(identifier, kind)):
                problems.append(f"{where}.{kind} is not a hex SHA-256 (encoding HEX)")
        elif kind == "address":
            address = identifier.address
            for name in ("given_name", "family_name"):
                if not HEX64.fullmatch(getattr(address, name)):
                    problems.append(f"{where}.address.{name} is not a hex SHA-256")
            if not re.fullmatch(r"[A-Z]{2}", address.region_code):
                problems.append(f"{where}.address.region_code {address.region_code!r} is not alpha-2")
            if not address.postal_code.strip():
                problems.append(f"{where}.address.postal_code is required")
        else:
            problems.append(f"{where} sets no identifier")
    for position, item in enumerate(event_pb.cart_data.items):
        if not item.merchant_product_id or item.quantity <= 0 or item.unit_price < 0:
            problems.append(f"cartData.items[{position}] lacks a product, a quantity or a price")
    return problems


@pytest.mark.parametrize("build_name", ["fixture", "demo", "store_sales"])
def test_every_request_parses_into_the_librarys_ingest_events_request(builds, build_name):
    build = builds[build_name]
    rows = build.rows("select transaction_id, payload from main.google_ads_conversions "
                      "order by delivery_key")
    assert len(rows) >= 2, f"google_ads_conversions has {len(rows)} rows on the {build_name} build"
    fake = FakeGoogleAds(now=lambda: midnight_utc(build.as_of))
    problems = []
    for row in rows:
        where = f"{build_name} event {row['transaction_id']}"
        body = SHIPPER.build_request([row["payload"].encode()]).body
        request = IngestEventsRequest()._pb
        try:
            json_format.Parse(body, request, ignore_unknown_fields=False)
        except json_format.ParseError as refused:
            problems.append(f"{where}: google-ads-datamanager's IngestEventsRequest refuses it: "
                            f"{refused}")
            continue
        (event_pb,) = request.events
        problems += [f"{where}: {problem}" for problem in request_problems(event_pb)]
        refused = fake.check_event(json.loads(row["payload"]),
                                   store_sales=build_name == "store_sales")
        if refused:
            problems.append(f"{where}: the fake Data Manager refuses it: {refused}")
    assert problems == [], f"{len(problems)} problems in {len(rows)} events:\n" + "\n".join(
        problems[:20])


def test_store_sales_events_carry_their_store_and_the_merchant_center(builds):
    rows = builds["store_sales"].rows(
        "select transaction_id, store_id, store_sales, payload from main.google_ads_conversions")
    assert len(rows) > 50
    fixture_ids = {row["transaction_id"] for row in builds["fixture"].rows(
        "select transaction_id from main.google_ads_conversions where event_source = 'PHONE'")}
    for row in rows:
        request = IngestEventsRequest()._pb
        json_format.Parse(SHIPPER.build_request([row["payload"].encode()]).body, request)
        (event_pb,) = request.events
        assert row["store_sales"] is True
        assert event_pb.event_location.store_id == row["store_id"]
        assert EventSource(event_pb.event_source).name == "IN_STORE"
        assert row["transaction_id"] not in fixture_ids  # phone orders are left out
        if event_pb.cart_data.items:
            assert (event_pb.cart_data.merchant_id, event_pb.cart_data.merchant_feed_label,
                    event_pb.cart_data.merchant_feed_language_code) == ("1234567", "US", "en")
        else:
            assert not event_pb.HasField("cart_data")


def test_the_fakes_request_status_is_googles_retrieve_request_status_response():
    fake = FakeGoogleAds()
    destination = {"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                   "productDestinationId": "987654321"}
    events = [{"transactionId": f"t{i}", "cartData": {"merchantId": "12"}} for i in range(4)]
    fake.ingested["r1"] = (destination, events)
    fake.processing_checks = 1
    answers = []
    for failures in ({}, {}, {"t1": "PROCESSING_ERROR_REASON_EVENT_TOO_OLD"},
                     {f"t{i}": "PROCESSING_ERROR_REASON_NO_CONSENT" for i in range(4)}):
        fake.async_failures = failures
        reply = fake.request_status("r1")
        assert reply.status == 200
        response = RetrieveRequestStatusResponse()._pb
        json_format.Parse(json.dumps(reply.body), response, ignore_unknown_fields=False)
        (status,) = response.request_status_per_destination
        answers.append(RequestStatusPerDestination.RequestStatus(status.request_status).name)
        assert status.events_ingestion_status.record_count == 4
        assert status.destination.product_destination_id == "987654321"
    assert answers == ["PROCESSING", "SUCCESS", "PARTIAL_SUCCESS", "FAILED"]
    assert fake.request_status("unknown").status == 404


def test_the_shipper_reads_the_json_googles_library_writes_for_a_request_status():
    status = RequestStatusPerDestination.RequestStatus
    cases = {
        "PARTIAL_SUCCESS": ([(2, "PROCESSING_ERROR_REASON_EVENT_TOO_OLD")], None),
        "FAILED": ([(10, "PROCESSING_ERROR_REASON_DENIED_CONSENT")], "rejected"),
        "SUCCESS": ([], None),
        "PROCESSING": ([], None),
    }
    for name, (errors, rows_status) in cases.items():
        response = RetrieveRequestStatusResponse(request_status_per_destination=[
            RequestStatusPerDestination(
                request_status=getattr(status, name),
                error_info=ErrorInfo(error_counts=[
                    ErrorCount(record_count=count, reason=getattr(ProcessingErrorReason, reason))
                    for count, reason in errors]),
                events_ingestion_status=RequestStatusPerDestination.IngestEventsStatus(
                    record_count=10))])
        body = json.loads(json_format.MessageToJson(response._pb))
        answer = settle("r1", body["requestStatusPerDestination"])
        assert answer.status == name
        assert answer.rows_status == rows_status
        for count, reason in errors:
            assert f"{reason} x{count}" in answer.reason
            assert f"{count} of 10 events failed" in answer.reason


def test_the_generated_customers_send_addresses_and_carts(builds):
    """The generated orders reach the mart, and with them the members this file is about."""
    events = [json.loads(row["payload"]) for row in builds["fixture"].rows(
        "select payload from main.google_ads_conversions where transaction_id like 'go%'")]
    assert len(events) > 150
    kinds = Counter(kind for event in events
                    for identifier in event["userData"]["userIdentifiers"] for kind in identifier)
    assert kinds["emailAddress"] > 100 and kinds["phoneNumber"] > 100 and kinds["address"] > 50
    assert all(event["cartData"]["items"] for event in events)


# ---------------------------------------------------------------------------
# Identifiers: the util's against int_customers_normalized's.

ZERO_WIDTH = ("\u200b", "\ufeff")
KNOWN_DIFFERENCES = """\
Inputs not compared, where we knowingly differ from the util:
- a value already hashed upstream (64 hex): we pass it through, the util hashes it again;
- a zero-width space or BOM at either end: we trim them (copy-paste debris), Python's
  str.strip() keeps them;
- an email whose domain has no dot or an empty label ('a@b', 'a@b..c'): not an email to
  us (NULL), the util hashes it;
- a name with a capital sigma: Python's lower() writes it as final 'ς' at a word's end,
  our lower-case is per character ('σ');
- a phone not written with a leading '+', or not valid for libphonenumber: that part of
  the phone rule (a country code without '+', impossible numbers) is tested against
  libphonenumber in tests/sql/test_phone_oracle.py, so only '+' numbers libphonenumber
  calls valid are compared here;
- a country not written as an ISO alpha-2 code: we resolve names, alpha-3 codes and the
  default country; the util takes 2 characters only (and would send 'UK').
"""


def vendor(process: Callable[..., str], value: str | None, *args: Any) -> str | None:
    """The util's value, or None where it refuses the input (ValueError)."""
    if value is None:
        return None
    try:
        return process(value, *args)
    except ValueError:
        return None


def hashed_upstream(value: str) -> bool:
    return HEX64.fullmatch(value.strip().lower()) is not None


def zero_width_ends(value: str) -> bool:
    stripped = value.strip()
    return stripped.startswith(ZERO_WIDTH) or stripped.endswith(ZERO_WIDTH)


def email_expected(raw: str, region: str) -> tuple[bool, str | None]:
    stripped = raw.strip().lower()
    if "@" in stripped and stripped.count("@") == 1 and not re.search(r"\s", stripped):
        domain = stripped.split("@")[1]
        if "." not in domain or "" in domain.split("."):
            return False, None
    return True, vendor(FORMATTER.process_email_address, raw, Encoding.HEX)


def phone_expected(raw: str, region: str) -> tuple[bool, str | None]:
    # The util does not make E.164 (it keeps the digits behind a '+'): phonenumbers
    # does, from the raw number and the customer's country. Only numbers written
    # with a leading '+' that libphonenumber calls valid are compared here: the
    # SQL's rule for the others (a country code written without '+', numbers
    # libphonenumber calls impossible) was being changed while this file was
    # written, and is held against libphonenumber in tests/sql/test_phone_oracle.py.
    if not raw.strip().startswith("+"):
        return False, None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False, None
    if not phonenumbers.is_valid_number(number):
        return False, None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return True, vendor(FORMATTER.process_phone_number, e164, Encoding.HEX)


def name_expected(process: Callable[..., str]) -> Callable[[str, str], tuple[bool, str | None]]:
    def expected(raw: str, region: str) -> tuple[bool, str | None]:
        if "Σ" in raw:
            return False, None
        return True, vendor(process, raw, Encoding.HEX)
    return expected


def region_expected(raw: str, region: str) -> tuple[bool, str | None]:
    stripped = raw.strip()
    if not (len(stripped) == 2 and stripped.upper() in ISO_ALPHA2):
        return False, None
    return True, vendor(FORMATTER.process_region_code, raw)


def postal_expected(raw: str, region: str) -> tuple[bool, str | None]:
    value = vendor(FORMATTER.process_postal_code, raw)
    if value is not None and region == "US":
        # Google's guide on top of the util: a US zip as its 5 digits.
        value = value[:5] if re.fullmatch(r"[0-9]{5}(?:-?[0-9]{4})?", value) else None
    return True, value


@dataclasses.dataclass(frozen=True)
class Identifier:
    raw: str                                                # the raw customers' column
    column: str                                             # int_customers_normalized's
    expected: Callable[[str, str], tuple[bool, str | None]]  # (compared?, the util's value)


IDENTIFIERS = {
    "email": Identifier("email", "email_google_sha256", email_expected),
    "phone": Identifier("phone", "phone_e164_sha256", phone_expected),
    "given name": Identifier("first_name", "given_name_google_sha256",
                             name_expected(FORMATTER.process_given_name)),
    "family name": Identifier("last_name", "family_name_google_sha256",
                              name_expected(FORMATTER.process_family_name)),
    "region code": Identifier("country", "region_code_google", region_expected),
    "postal code": Identifier("postal_code", "postal_code_google", postal_expected),
}


def raw_customers(path: Path) -> dict[str, dict[str, Any]]:
    """The raw customers as the staging model reads them; an id written twice is left
    out (which version wins is the SQL's business, tested in tests/sql)."""
    with duckdb.connect() as connection:
        cursor = connection.execute(
            "select * from read_csv(?, header = true, all_varchar = true)", [str(path)])
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    counts = Counter(row["customer_id"] for row in rows)
    return {row["customer_id"].strip(): row for row in rows
            if row["customer_id"] and counts[row["customer_id"]] == 1}


def identifier_problems(build: Build) -> tuple[list[str], Counter]:
    columns = ", ".join(identifier.column for identifier in IDENTIFIERS.values())
    ours = {row["customer_id"]: row for row in build.rows(
        f"select customer_id, country_code, {columns} from main.int_customers_normalized")}
    problems: list[str] = []
    compared: Counter = Counter()
    for customer_id, raw_row in raw_customers(build.raw_customers).items():
        if customer_id not in ours:
            continue
        sql_row = ours[customer_id]
        region = (sql_row["country_code"] or "").upper()
        for name, identifier in IDENTIFIERS.items():
            raw = raw_row.get(identifier.raw)
            if raw is not None and (hashed_upstream(raw) or zero_width_ends(raw)):
                continue
            if raw is None:
                # Nothing written: nothing sent, but for the region (the default country).
                compared_here, expected = name != "region code", None
            else:
                compared_here, expected = identifier.expected(raw, region)
            if not compared_here:
                continue
            compared[name] += 1
            if sql_row[identifier.column] != expected:
                problems.append(
                    f"{customer_id} {name}: raw {raw!r} -> google-ads-datamanager-util "
                    f"{expected!r}, ours {sql_row[identifier.column]!r}")
    return problems, compared


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_identifiers_are_the_utils(builds, build_name):
    problems, compared = identifier_problems(builds[build_name])
    assert problems == [], (f"{len(problems)} identifiers differ from the util's "
                            f"(compared: {dict(compared)}):\n" + "\n".join(problems[:25])
                            + "\n" + KNOWN_DIFFERENCES)
    # Each identifier was compared on real values, not only on empty ones.
    assert all(compared[name] >= 5 for name in IDENTIFIERS), dict(compared)


def test_the_generated_set_covers_the_gmail_and_name_cases():
    customers = generated_customers()
    emails = [customer["email"] or "" for customer in customers]
    gmail = [email for email in emails
             if re.search(r"@(gmail|googlemail)\.com\s*$", email, re.IGNORECASE)]
    assert sum("+" in email.split("@")[0] for email in gmail) >= 10
    assert sum("." in email.split("@")[0] for email in gmail) >= 10
    assert any(email != email.strip() for email in emails)
    assert any(re.search(r"[A-Z]", email) for email in gmail)
    names = [customer["first_name"] or "" for customer in customers]
    names += [customer["last_name"] or "" for customer in customers]
    assert any("'" in name or "’" in name for name in names)
    assert any(" " in name.strip() for name in names)
    assert any(re.search(r"[^\x00-\x7f]", name) for name in names)
    assert len({customer["country"] for customer in customers}) >= 20
