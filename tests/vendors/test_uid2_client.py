"""UID2's own Python SDK, uid2-client, as the oracle of what we ask the operator.

The request: for the customers of the fixtures, of the demo data and of a
generated set of messy emails, the identity-map request the shipper sends
(`shipper.uid2.IdentityMapService.map` with the hashes of
int_customers_normalized, `email_uid2_base64` and `phone_uid2_base64`,
decrypted by the loopback operator of tests/fakes/uid2_operator.py) is the
request JSON the SDK builds from the same people's emails and phones
(`IdentityMapV3Input.with_emails(...).with_phones(...)`, which normalises and
hashes them itself: base64 of the SHA-256).

The email rule: uid2-client's `normalize_email_string` is the oracle (trim
the spaces around, lower-case, and for gmail.com drop every '.' and the
'+tag' of the local part). Each email is compared where the SDK and our SQL
both give one; an email the SQL refuses (no dotted domain, whitespace inside)
is simply not sent. The edges are listed in DIVERGENCES with what each side
gives, so a change on either side shows up:

- the SDK lower-cases ASCII letters only ('ÉLODIE@…' keeps 'É'), and so does
  our UID2 rule (other platforms lower-case every letter);
- a gmail.com local part left empty once dots and '+tag' are dropped
  ('+news@gmail.com') is refused by both;
- the SDK trims only ' ' around the address; our SQL trims every Unicode
  whitespace (tab, no-break space, zero-width space) first: deliberate.

Phones: compared for numbers written with a leading '+' that libphonenumber
calls valid (tests/sql/test_phone_oracle.py holds the rest of the phone rule
against libphonenumber); the SDK takes E.164 as given (`normalize_and_hash_phone` only
checks it), so its input is libphonenumber's E.164 of the written number.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pytest
from uid2_client import IdentityMapV3Input, normalize_and_hash_email, normalize_and_hash_phone
from uid2_client.input_util import normalize_email_string

from shipper.http import RetryingSession, RetryPolicy
from shipper.uid2 import MAX_HASHES_PER_REQUEST, IdentityMapService
from tests.fakes.server import FakeServer
from tests.fakes.uid2_operator import FakeUid2Operator
from tests.sql import reference
from tests.sql.conftest import FIXTURE_RAW
from tests.vendors.builds import DEMO_RAW, build_fixture_and_demo

MODELS = ("+int_customers_normalized",)
REQUEST_SIZE = 2000


# ---------------------------------------------------------------------------
# Generated customers: messy emails the SDK and our SQL must agree on, and the
# divergences.


def generated_emails(count: int = 400, seed: int = 13) -> list[str]:
    """Emails written the way people write them, in ASCII: any case, spaces around,
    dots and '+tags' in the local part, gmail.com and other domains."""
    rng = random.Random(seed)
    domains = ["gmail.com", "GMAIL.COM", "Gmail.Com", "googlemail.com", "example.com",
               "mail.example.co.uk", "Outlook.FR", "gmail.com.au", "sub.gmail.com"]
    emails = []
    for _ in range(count):
        words = [rng.choice(["john", "MARY", "o", "Smith", "j", "doe", "x1", "a_b", "li-na"])
                 for _ in range(rng.randint(1, 3))]
        local = "".join(word + rng.choice(["", ".", "..", "_"]) for word in words[:-1])
        local += words[-1]
        if rng.random() < 0.4:
            local += "+" + rng.choice(["news", "a.b", "", "x+y", "Shop"])
        if rng.random() < 0.2:
            local = "." + local if rng.random() < 0.5 else local + "."
        email = "".join(c.upper() if rng.random() < 0.2 else c
                        for c in f"{local}@{rng.choice(domains)}")
        emails.append(" " * rng.randint(0, 2) + email + " " * rng.randint(0, 2))
    return emails


@dataclasses.dataclass(frozen=True)
class Divergence:
    email: str
    why: str
    sdk: str | None  # what the SDK normalises it to (None: it refuses it)
    ours: str | None  # what our SQL hashes (None: it sends nothing)


# The edges: the first four are where our rule once differed and now follows
# the SDK (sdk == ours); the last three are deliberate: we trim every Unicode
# space, the SDK only ' ', and a tab or no-break space around an address is
# never part of it.
DIVERGENCES = [
    Divergence("ÉLODIE.Martin@example.fr", "the SDK lower-cases ASCII letters only",
               "Élodie.martin@example.fr", "Élodie.martin@example.fr"),
    Divergence("ZOË@gmail.com", "the SDK lower-cases ASCII letters only (gmail)",
               "zoË@gmail.com", "zoË@gmail.com"),
    Divergence("+news@gmail.com", "a gmail local part left empty", None, None),
    Divergence("...@gmail.com", "a gmail local part of dots only", None, None),
    Divergence("\tjane@example.com", "a tab before the address", "\tjane@example.com",
               "jane@example.com"),
    Divergence("jane@example.com\u00a0", "a no-break space after the address",
               "jane@example.com\u00a0", "jane@example.com"),
    Divergence("\u200bjane.doe@gmail.com", "a zero-width space before the address",
               "\u200bjanedoe@gmail.com", "janedoe@gmail.com"),
]


def append_customers(path: Path, emails: list[str]) -> dict[str, str]:
    """Customers gen-<n> with these emails (no orders); their ids."""
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    ids = {}
    with path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for index, email in enumerate(emails):
            customer_id = f"gen-{index:04d}"
            ids[customer_id] = email
            writer.writerow({name: "" for name in header} | {
                "customer_id": customer_id, "email": email, "marketing_consent": "true",
                "updated_at": "2026-01-01T00:00:00Z"})
    return ids


# ---------------------------------------------------------------------------
# The builds.


@dataclasses.dataclass(frozen=True)
class Build:
    duckdb_path: Path
    raw_customers: Path

    def customers(self) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            cursor = connection.execute(
                "select customer_id, email_uid2_base64, phone_uid2_base64 "
                "from main.int_customers_normalized order by customer_id")
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Build]:
    """The project parsed once, its models built on the fixture data, then on the demo
    data from a copy of the fixture's database (the seeds are the same)."""
    workdir = tmp_path_factory.mktemp("uid2_client")
    raw = workdir / "raw"
    shutil.copytree(FIXTURE_RAW, raw)
    append_customers(raw / "customers.csv",
                     generated_emails() + [case.email for case in DIVERGENCES])
    fixture_db, demo_db = build_fixture_and_demo(workdir, MODELS, raw)
    return {"fixture": Build(fixture_db, raw / "customers.csv"), "demo": Build(demo_db, DEMO_RAW / "customers.csv")}


def written(path: Path) -> dict[str, dict[str, str]]:
    """The customers as written, by trimmed id; an id written twice is left out (which
    version is kept is int_customers_latest's to say)."""
    seen: dict[str, list[dict[str, str]]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            key = reference.trim(row.get("customer_id"))
            if key:
                seen.setdefault(key, []).append(row)
    return {key: rows[0] for key, rows in seen.items() if len(rows) == 1}


def sdk_email_hash(email: str) -> str | None:
    try:
        return normalize_and_hash_email(email)
    except ValueError:
        return None


def sdk_e164(phone: str | None) -> str | None:
    """libphonenumber's E.164 of a number written with a leading '+', when valid."""
    text = reference.trim(phone)
    if text is None or not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


DIVERGING = {case.email for case in DIVERGENCES}


def sdk_input(email: str) -> str:
    """The email as the SDK is given it: without the whitespace around it that is not
    ' ' (the SDK trims ' ' itself; the rest is in DIVERGENCES)."""
    start, end = 0, len(email)
    while start < end and email[start] in reference.WHITESPACE:
        start += 1
    while end > start and email[end - 1] in reference.WHITESPACE:
        end -= 1
    return " " + email[start:end] + " " if start or end < len(email) else email


@dataclasses.dataclass(frozen=True)
class Pair:
    """One identifier as the SDK and as we would send it."""

    customer_id: str
    kind: str  # email | phone
    written: str  # as the SDK is given it
    ours: str  # our base64 SHA-256


def comparable(build: Build) -> Iterator[Pair]:
    """The identifiers both sides send (outside DIVERGENCES)."""
    raw = written(build.raw_customers)
    for customer in build.customers():
        row = raw.get(customer["customer_id"])
        if row is None:
            continue
        email = row.get("email") or ""
        # An email that arrived hashed upstream is passed on as it is: nothing to normalise.
        hashed = re.fullmatch(r"[0-9a-f]{64}", (reference.trim(email) or "").lower())
        if customer["email_uid2_base64"] is not None and email not in DIVERGING and not hashed:
            # The SDK trims ' ' only; tabs and no-break spaces around are a DIVERGENCE of
            # their own, so the SDK is given the address without them.
            yield Pair(customer["customer_id"], "email", sdk_input(email),
                       customer["email_uid2_base64"])
        e164 = sdk_e164(row.get("phone"))
        if customer["phone_uid2_base64"] is not None and e164 is not None:
            yield Pair(customer["customer_id"], "phone", e164, customer["phone_uid2_base64"])


def describe(pair: Pair) -> str:
    if pair.kind == "email":
        normalised = normalize_email_string(pair.written)
        sdk = sdk_email_hash(pair.written)
        return (f"{pair.customer_id} email {pair.written!r}: uid2-client normalises it to "
                f"{normalised!r} -> {sdk}, ours is {pair.ours}")
    return (f"{pair.customer_id} phone {pair.written!r}: uid2-client hashes it to "
            f"{normalize_and_hash_phone(pair.written)}, ours is {pair.ours}")


# ---------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_hash_is_the_sdks(builds, build_name):
    pairs = list(comparable(builds[build_name]))
    assert sum(pair.kind == "email" for pair in pairs) >= 5
    assert sum(pair.kind == "phone" for pair in pairs) >= 1
    problems = []
    for pair in pairs:
        sdk = (sdk_email_hash(pair.written) if pair.kind == "email"
               else normalize_and_hash_phone(pair.written))
        if sdk != pair.ours:
            problems.append(describe(pair))
    assert problems == [], f"{len(problems)} of {len(pairs)} differ:\n" + "\n".join(problems[:10])


def test_the_generated_emails_are_all_compared(builds):
    """Every generated email both sides send was compared above: none fell out."""
    sent = {pair.customer_id for pair in comparable(builds["fixture"]) if pair.kind == "email"}
    generated = [f"gen-{index:04d}" for index in range(len(generated_emails()))]
    refused_by_both = [customer_id for customer_id in generated if customer_id not in sent]
    # Our SQL refuses what has no dotted domain or whitespace inside; none here.
    assert refused_by_both == []


@pytest.fixture(scope="module")
def operator():
    fake = FakeUid2Operator()
    with FakeServer(fake) as server:
        yield fake, server.url


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_the_shippers_identity_map_request_is_the_sdks(builds, operator, build_name):
    fake, url = operator
    service = IdentityMapService(url, fake.api_key, fake.secret_b64, RetryingSession(
        "uid2", policy=RetryPolicy(10.0, 1, 0.1, 0.1), connect_timeout=5.0, read_timeout=10.0,
        pool_size=1))
    pairs = list(comparable(builds[build_name]))
    assert REQUEST_SIZE <= MAX_HASHES_PER_REQUEST
    try:
        for start in range(0, len(pairs), REQUEST_SIZE):
            chunk = pairs[start:start + REQUEST_SIZE]
            emails = [pair for pair in chunk if pair.kind == "email"]
            phones = [pair for pair in chunk if pair.kind == "phone"]
            before = len(fake.map_requests)
            service.map([(pair.kind, pair.ours) for pair in emails + phones])
            (sent,) = fake.map_requests[before:]
            sdk = json.loads(IdentityMapV3Input()
                             .with_emails([pair.written for pair in emails])
                             .with_phones([pair.written for pair in phones])
                             .get_identity_map_input_as_json_string())
            for key, kind_pairs in (("email_hash", emails), ("phone_hash", phones)):
                differing = [describe(pair) for pair, theirs, mine
                             in zip(kind_pairs, sdk[key], sent[key], strict=True)
                             if theirs != mine]
                assert differing == [], "\n".join(differing[:10])
            assert sent == sdk
    finally:
        service.close()
    assert fake.raw_dii_seen == []


def our_email_hash(build: Build, case: Divergence) -> str | None:
    """Our email_uid2_base64 of a divergence customer, as hex (None: not sent)."""
    index = len(generated_emails()) + DIVERGENCES.index(case)
    ours = {customer["customer_id"]: customer["email_uid2_base64"]
            for customer in build.customers()}[f"gen-{index:04d}"]
    return None if ours is None else base64.b64decode(ours).hex()


@pytest.mark.parametrize("case", DIVERGENCES, ids=lambda case: case.why)
def test_divergences_stay_as_listed(builds, case):
    """What each side does with the cases where they part."""
    assert normalize_email_string(case.email) == case.sdk
    expected = None if case.ours is None else reference.sha256_hex(case.ours)
    assert our_email_hash(builds["fixture"], case) == expected, (
        f"{case.email!r}: our SQL no longer hashes {case.ours!r} (uid2-client: {case.sdk!r}); "
        "update DIVERGENCES")
