"""Pinterest's generated API client as the oracle of what we send Pinterest.

Requests: for every row of pinterest_conversions, on the fixture build and on
the demo data, the body the shipper sends (`Pinterest.build_request`: the
`{"data": [...]}` envelope around the mart's payload) is deserialised into
the client's request model, `ConversionEvents`, the way the client opens a
body it receives (`model_utils.validate_and_convert_types` with type checking
on and a Configuration): every member must have the type and shape the
OpenAPI description gives (value and item_price strings, event_time,
num_items and quantity integers, user_data hashes lists of strings, em
present). The client's models let members they do not name pass as
additional properties, which Pinterest itself refuses, so every member is
also looked up in the models' `attribute_map`; event_name and action_source
are free strings in the models, so they are checked against the values the
client's documentation of ConversionEventsData lists. A whole batch of
`max_batch_size` events is deserialised too (ConversionEvents.data allows 1
to 1,000 items). tests/fakes/pinterest.py is held to the same schema: it takes
every event of the mart and refuses the unknown members the client's models
do not name.

Hashes: the client only documents how each user_data member is normalised
before hashing (pinterest-generated-client 0.1.12, Pinterest REST API
5.14.0); it has no normaliser of its own. So each hash is checked against
that text, via the customer's normalised values in int_customers_normalized
(the hash must be the SHA-256 of a value of the documented shape) and the raw
customer as written (the value must be the customer's):

- em: "lowercase version of user's email addresses" (trimmed);
- ph: "only digits with country code, area code, and number", no symbols,
  letters, spaces or leading zeros; compared with libphonenumber only for
  numbers written with a leading '+' that it calls valid (the rule for other
  numbers is being changed elsewhere);
- fn, ln: "in lowercase" (we also drop what is not a letter, as Meta asks);
- ct: "in lowercase, and without spaces or punctuation";
- st: "a two-letter code in lowercase";
- zp: "only digits" (US: the 5-digit zip);
- country: "two-character ISO-3166 country code ..., in lowercase";
- db: "year, month, and day" (YYYYMMDD, as partners document it: 19971226);
- ge: "f" or "m" or "n";
- external_id: the SHA-256 of the brand's id (trimmed).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pytest
from openapi_generated.pinterest_client.configuration import Configuration
from openapi_generated.pinterest_client.exceptions import OpenApiException
from openapi_generated.pinterest_client.model.conversion_events import ConversionEvents
from openapi_generated.pinterest_client.model.conversion_events_data import ConversionEventsData
from openapi_generated.pinterest_client.model_utils import OpenApiModel, validate_and_convert_types

from shipper.destinations.pinterest import Pinterest, PinterestSettings
from tests.fakes.pinterest import FakePinterest
from tests.sql import reference
from tests.sql.conftest import FIXTURE_RAW, PROJECT_DIR
from tests.vendors.builds import DEMO_RAW, build_fixture_and_demo

MODELS = ("+pinterest_conversions", "+int_customers_normalized")
SEEDS = PROJECT_DIR / "seeds"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------
# The builds: the fixture raw data and the demo data.


@dataclasses.dataclass(frozen=True)
class Build:
    duckdb_path: Path
    raw_customers: Path

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Build]:
    """The project parsed once, its models built on the fixture data, then on the demo
    data from a copy of the fixture's database (the seeds are the same)."""
    workdir = tmp_path_factory.mktemp("pinterest_client")
    fixture_db, demo_db = build_fixture_and_demo(workdir, MODELS, FIXTURE_RAW)
    return {"fixture": Build(fixture_db, FIXTURE_RAW / "customers.csv"), "demo": Build(demo_db, DEMO_RAW / "customers.csv")}


def conversions(build: Build) -> list[dict[str, Any]]:
    rows = build.rows("select * from main.pinterest_conversions order by delivery_key")
    assert len(rows) >= 2, f"pinterest_conversions has {len(rows)} rows: nothing to compare"
    return rows


# ---------------------------------------------------------------------------
# Requests: the shipper's body through the client's request model.

SHIPPER = Pinterest(PinterestSettings(ad_account_id="549755885175"),
                    {"PINTEREST_ACCESS_TOKEN": "pina_test"})


def documented_values(member: str) -> set[str]:
    """The values the client's documentation of ConversionEventsData lists for `member`."""
    doc = ConversionEventsData._from_openapi_data.__doc__ or ""
    line = next(line for line in doc.splitlines() if line.strip().startswith(f"{member} ("))
    values = set(re.findall(r"<code>([a-z_]+)</code>", line))
    assert values, f"the client documents no values for {member}"
    return values


EVENT_NAMES = documented_values("event_name")
ACTION_SOURCES = documented_values("action_source")


def client_refusal(body: dict[str, Any]) -> str | None:
    """The client's message when it cannot open `body` as ConversionEvents, else None."""
    try:
        # The client converts the dicts it reads into models in place: give it a copy.
        validate_and_convert_types(copy.deepcopy(body), (ConversionEvents,), ["body"], True,
                                   True, configuration=Configuration())
    except (OpenApiException, ValueError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def model_classes(kinds: tuple[Any, ...]) -> list[tuple[type[OpenApiModel], bool]]:
    """The model classes among an attribute's openapi types, with whether in a list."""
    found = []
    for kind in kinds:
        if isinstance(kind, list) and kind and isinstance(kind[0], type) \
                and issubclass(kind[0], OpenApiModel):
            found.append((kind[0], True))
        elif isinstance(kind, type) and issubclass(kind, OpenApiModel):
            found.append((kind, False))
    return found


def unknown_members(value: Any, model: type[OpenApiModel], path: str) -> list[str]:
    """Members the client's schema does not name, at any depth."""
    if not isinstance(value, dict):
        return []
    by_json_name = {json_name: name for name, json_name in model.attribute_map.items()}
    found = []
    for key, member in value.items():
        if key not in by_json_name:
            found.append(f"{path}.{key} is not a member of Pinterest's {model.__name__}")
            continue
        for inner, listed in model_classes(model.openapi_types[by_json_name[key]]):
            if listed and isinstance(member, list):
                for index, item in enumerate(member):
                    found += unknown_members(item, inner, f"{path}.{key}[{index}]")
            elif not listed:
                found += unknown_members(member, inner, f"{path}.{key}")
    return found


def request_problems(row: dict[str, Any]) -> list[str]:
    body = json.loads(SHIPPER.build_request([row["payload"].encode()]).body)
    event = body["data"][0]
    found = []
    refusal = client_refusal(body)
    if refusal:
        found.append(f"Pinterest's client refuses the body: {refusal}")
    found += unknown_members(event, ConversionEventsData, "data[0]")
    if event.get("event_name") not in EVENT_NAMES:
        found.append(f"event_name {event.get('event_name')!r}: the client documents "
                     f"{sorted(EVENT_NAMES)}")
    if event.get("action_source") not in ACTION_SOURCES:
        found.append(f"action_source {event.get('action_source')!r}: the client documents "
                     f"{sorted(ACTION_SOURCES)}")
    return found


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_request_opens_as_the_clients_conversion_events(builds, build_name):
    rows = conversions(builds[build_name])
    problems = [f"{row['delivery_key']}: {problem}" for row in rows
                for problem in request_problems(row)]
    assert problems == [], f"{len(problems)} problem(s) in {len(rows)} events:\n" + "\n".join(
        problems[:10])


def test_a_full_batch_opens_as_the_clients_conversion_events(builds):
    rows = conversions(builds["demo"])
    payloads = [row["payload"].encode() for row in rows]
    batch = (payloads * (SHIPPER.max_batch_size // len(payloads) + 1))[:SHIPPER.max_batch_size]
    # The client's limit on ConversionEvents.data is the shipper's batch limit.
    assert ConversionEvents.validations[("data",)]["max_items"] == SHIPPER.max_batch_size
    assert SHIPPER.settings.batch_size <= SHIPPER.max_batch_size
    assert client_refusal(json.loads(SHIPPER.build_request(batch).body)) is None


def test_the_client_refuses_what_pinterest_refuses():
    """The checks above do catch a wrong type, an unknown member and a missing em."""
    event = {"event_name": "checkout", "action_source": "offline", "event_time": 1795773600,
             "event_id": "e1", "user_data": {"em": [sha("a@example.com")]},
             "custom_data": {"value": "7.50", "currency": "EUR",
                             "contents": [{"id": "p1", "item_price": "2.50", "quantity": 3}]}}
    assert client_refusal({"data": [event]}) is None
    assert unknown_members(event, ConversionEventsData, "data[0]") == []
    for broken in (
        {**event, "event_time": "1795773600"},
        {**event, "custom_data": {**event["custom_data"], "value": 7.5}},
        {**event, "custom_data": {"contents": [{"id": "p1", "item_price": 2.5}]}},
        {**event, "user_data": {"em": sha("a@example.com")}},
        {**event, "user_data": {"ph": [sha("16505551212")]}},
    ):
        assert client_refusal({"data": [broken]}) is not None, broken
    unknown = {**event, "custom_data": {"contents": [{"id": "p1", "price": "2.50"}]}}
    assert unknown_members(unknown, ConversionEventsData, "data[0]") == [
        ("data[0].custom_data.contents[0].price is not a member of Pinterest's "
         "ConversionEventsCustomDataContents")]


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_the_fake_takes_what_the_client_takes(builds, build_name):
    """tests/fakes/pinterest.py accepts every event of the mart (which the client opens),
    and refuses the unknown members the client's schema does not name."""
    rows = conversions(builds[build_name])
    latest = max(row["event_time"] for row in rows)
    fake = FakePinterest(now=lambda: latest + 3600, max_age_days=400)
    for row in rows:
        event = json.loads(row["payload"])
        assert fake.check_event(event) is None, row["delivery_key"]
        for where, broken in (
            ("contents", {**event["custom_data"], "contents": [
                {**event["custom_data"]["contents"][0], "price": "1.00"}]}),
            ("custom_data", {**event["custom_data"], "items": 1}),
        ):
            refused = {**event, "custom_data": broken}
            assert unknown_members(refused, ConversionEventsData, "data[0]"), where
            assert fake.check_event(refused) is not None, where


# ---------------------------------------------------------------------------
# Hashes: each against the normalisation the client's documentation gives.

ALPHA2 = {row["alpha2"].lower() for row in csv.DictReader(
    (SEEDS / "country_codes.csv").open(encoding="utf-8"))}
US_STATES = {}
for _state in csv.DictReader((SEEDS / "us_states.csv").open(encoding="utf-8")):
    US_STATES[_state["state_name"].lower()] = _state["state_code"].lower()
    US_STATES[_state["state_code"].lower()] = _state["state_code"].lower()


def letters(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFC", text).lower()
                   if unicodedata.category(c)[0] in ("L", "M"))


def written_birth_date(text: str) -> str | None:
    for pattern, order in ((r"(\d{4})-(\d{1,2})-(\d{1,2})", (0, 1, 2)),
                           (r"(\d{1,2})/(\d{1,2})/(\d{4})", (2, 0, 1))):
        match = re.fullmatch(pattern, text)
        if match:
            year, month, day = (int(match[index + 1]) for index in order)
            try:
                return dt.date(year, month, day).strftime("%Y%m%d")
            except ValueError:
                return None
    return None


def written_zip(text: str, country_code: str) -> str | None:
    """Pinterest's "only digits" for a postal code written with digits, spaces and dashes
    only (US: the 5-digit zip of a ZIP or ZIP+4); None for one with letters, which
    Pinterest's rule cannot say anything about."""
    if country_code == "us":
        compact = re.sub(r"[\s-]", "", text)
        return compact[:5] if re.fullmatch(r"\d{5}(?:\d{4})?", compact) else None
    return re.sub(r"\D", "", text) if re.fullmatch(r"[\d\s-]+", text) else None


def phone_digits_from_plus(text: str) -> str | None:
    """libphonenumber's E.164 digits for a number written with a leading '+', if valid."""
    if not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


# member -> (normalised column of int_customers_normalized, raw column,
#            the documented shape, the value the raw text gives (None: not compared))
Rule = tuple[str, str, Callable[[str], bool], Callable[[str, dict[str, Any]], str | None]]
RULES: dict[str, Rule] = {
    "em": ("email_normalized", "email",
           lambda value: value == value.lower() and "@" in value,
           lambda raw, customer: raw.lower()),
    "ph": ("phone_digits", "phone",
           lambda value: value.isascii() and value.isdigit() and not value.startswith("0"),
           lambda raw, customer: phone_digits_from_plus(raw)),
    "fn": ("first_name_normalized", "first_name",
           lambda value: value == value.lower(),
           lambda raw, customer: letters(raw)),
    "ln": ("last_name_normalized", "last_name",
           lambda value: value == value.lower(),
           lambda raw, customer: letters(raw)),
    "ct": ("city_normalized", "city",
           lambda value: value == value.lower() and not any(
               c in reference.WHITESPACE or unicodedata.category(c)[0] in ("P", "Z")
               for c in value),
           lambda raw, customer: letters(raw)),
    "st": ("state_normalized", "state",
           lambda value: re.fullmatch(r"[a-z]{2}", value) is not None,
           lambda raw, customer: US_STATES.get(" ".join(raw.lower().replace(".", "").split()))
           if customer["country_code"] == "us" else None),
    "zp": ("zip_normalized", "postal_code",
           lambda value: value.isascii() and value.isdigit(),
           lambda raw, customer: written_zip(raw, customer["country_code"])),
    "country": ("country_code", "country",
                lambda value: value in ALPHA2,
                lambda raw, customer: None),
    "db": ("birth_date_normalized", "birth_date",
           lambda value: re.fullmatch(r"\d{8}", value) is not None
           and written_birth_date(f"{value[:4]}-{value[4:6]}-{value[6:]}") == value,
           lambda raw, customer: written_birth_date(raw)),
    "ge": ("gender_normalized", "gender",
           lambda value: value in ("f", "m", "n"),
           lambda raw, customer: {"female": "f", "woman": "f", "w": "f", "f": "f",
                                  "male": "m", "man": "m", "m": "m"}.get(raw.lower())),
    "external_id": ("external_id_normalized", "customer_id",
                    lambda value: value == reference.trim(value),
                    lambda raw, customer: raw),
}


def raw_customers(path: Path) -> dict[str, dict[str, str]]:
    """The customers as written, by trimmed id; an id written twice is left out (which
    version is kept is int_customers_latest's to say, not this test's)."""
    seen: dict[str, list[dict[str, str]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            key = reference.trim(row.get("customer_id"))
            if key:
                seen.setdefault(key, []).append(row)
    return {key: rows[0] for key, rows in seen.items() if len(rows) == 1}


def hash_problems(member: str, ours: str, customer: dict[str, Any],
                  written: dict[str, str] | None) -> list[str]:
    column, raw_column, shaped, from_raw = RULES[member]
    value = customer.get(column)
    if value is None:
        return [f"{member}: sent, but the customer has no {column}"]
    if re.fullmatch(r"[0-9a-f]{64}", value):
        return []  # arrived hashed upstream: nothing to normalise
    found = []
    if sha(value) != ours:
        found.append(f"{member}: Pinterest gets the SHA-256 of {value!r} "
                     f"({sha(value)}), we sent {ours}")
    if not shaped(value):
        found.append(f"{member}: {value!r} is not of the shape Pinterest documents")
    raw = reference.trim(written.get(raw_column)) if written else None
    if raw is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        expected = from_raw(raw, customer)
        if expected is not None and expected != value:
            found.append(f"{member}: {raw!r} as written gives {expected!r} by Pinterest's "
                         f"rule, ours is {value!r}")
    return found


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_hash_follows_pinterests_documented_normalisation(builds, build_name):
    build = builds[build_name]
    customers = {row["external_id_sha256"]: row
                 for row in build.rows("select * from main.int_customers_normalized")}
    written = raw_customers(build.raw_customers)
    rows = conversions(build)
    problems, checked = [], 0
    for row in rows:
        customer = customers.get(row["external_id"])
        if customer is None:
            problems.append(f"{row['delivery_key']}: external_id names no customer")
            continue
        raw = written.get(customer["customer_id"])
        for member in RULES:
            if row[member] is not None:
                checked += 1
                problems += [f"{row['delivery_key']} {problem}"
                             for problem in hash_problems(member, row[member], customer, raw)]
    assert checked > len(rows) * 3
    assert problems == [], f"{len(problems)} problem(s):\n" + "\n".join(problems[:15])


def test_the_members_added_for_match_quality_are_sent(builds):
    """db, ge and contents reach Pinterest on the demo data (not only in unit tests)."""
    rows = conversions(builds["demo"])
    payloads = [json.loads(row["payload"]) for row in rows]
    for member in ("db", "ge", "st", "zp"):
        assert any(member in payload["user_data"] for payload in payloads), member
    assert all(len(payload["custom_data"]["contents"]) >= 1 for payload in payloads)
    assert all(sum(item["quantity"] for item in payload["custom_data"]["contents"])
               == payload["custom_data"]["num_items"] for payload in payloads)
