"""Klaviyo's own Python SDK, klaviyo-api, as the oracle of what we send Klaviyo.

Jobs: for every row of klaviyo_profiles, on the fixture build and on the demo
data, the body the shipper sends (`Klaviyo.build_request`: the
profile-bulk-import-job around the mart's payload, with and without a list)
is read with the SDK's request model, `ProfileImportJobCreateQuery.from_dict`
(pydantic: enums for the resource types, StrictStr for every profile and
location member), and written back the way the SDK sends it
(`ApiClient.sanitize_for_serialization`). The SDK drops members it does not
know and writes nulls for those it does: with its nulls left out (outside
`properties`, where a null is ours) it must give our body back exactly, so an
unknown member, a renamed one or a wrong type shows up as a difference.
tests/fakes/klaviyo.py takes the same jobs and refuses a location member the
SDK does not name.

Limits: `ProfilesApi.bulk_import_profiles` documents "up to 10,000 profiles per
request", "5MB" per payload and "100KB" per profile. The shipper's defaults
and its own batching (shipper.batching.Batcher, as the delivery loop sets it
up) are run over many profiles and over profiles close to 100 KB, and every
job body it would send is measured. 5MB is read as 5,000,000 bytes, the
smaller of the two readings.

Revision: the shipper's default `revision` header is the revision the SDK
sends (`KlaviyoAPI._REVISION`), so the two cannot drift apart; an older one
can still be pinned with the `revision` setting.

Phones: every phone_number present is E.164 as libphonenumber formats it, and
a number libphonenumber calls valid: Klaviyo refuses an invalid one, so the
mart sends only numbers int_customer_countries marks phone_is_valid (the demo
data has reserved UK drama numbers, 07700 900xxx, which other platforms get).
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import duckdb
import phonenumbers
import pydantic
import pytest
from klaviyo_api import KlaviyoAPI
from openapi_client.api.profiles_api import ProfilesApi
from openapi_client.api_client import ApiClient
from openapi_client.models.profile_import_job_create_query import ProfileImportJobCreateQuery

from shipper.batching import Batcher
from shipper.destinations.base import Rows
from shipper.destinations.klaviyo import Klaviyo, KlaviyoSettings
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.server import FakeRequest
from tests.sql.conftest import FIXTURE_RAW, PROJECT_DIR
from tests.vendors.builds import build_fixture_and_demo
from tests.vendors.compare import differences

MODELS = ("+klaviyo_profiles",)
CREDENTIALS = {"KLAVIYO_API_KEY": "pk_test"}


# ---------------------------------------------------------------------------
# The builds: the fixture raw data and the demo data.


@dataclasses.dataclass(frozen=True)
class Build:
    duckdb_path: Path

    def rows(self, sql: str) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as connection:
            cursor = connection.execute(sql)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Build]:
    """The project parsed once, its models built on the fixture data, then on the demo
    data from a copy of the fixture's database (the seeds are the same)."""
    workdir = tmp_path_factory.mktemp("klaviyo_api")
    fixture_db, demo_db = build_fixture_and_demo(workdir, MODELS, FIXTURE_RAW)
    return {"fixture": Build(fixture_db), "demo": Build(demo_db)}


def profiles(build: Build) -> list[dict[str, Any]]:
    rows = build.rows("select * from main.klaviyo_profiles order by delivery_key")
    assert len(rows) >= 2, f"klaviyo_profiles has {len(rows)} rows: nothing to compare"
    return rows


# ---------------------------------------------------------------------------
# Jobs: the shipper's body through the SDK's request model.

SHIPPERS = {
    "no list": Klaviyo(KlaviyoSettings(), CREDENTIALS),
    "with a list": Klaviyo(KlaviyoSettings(list_id="Y6nRLr"), CREDENTIALS),
}


def without_sdk_nulls(value: Any, inside_properties: bool = False) -> Any:
    """The SDK's serialisation with the nulls it writes for unset members left out
    (a null inside `properties` is ours and stays)."""
    if isinstance(value, dict):
        return {key: without_sdk_nulls(member, inside_properties or key == "properties")
                for key, member in value.items()
                if member is not None or inside_properties}
    if isinstance(value, list):
        return [without_sdk_nulls(item, inside_properties) for item in value]
    return value


def job_problems(shipper: Klaviyo, payloads: list[bytes]) -> list[str]:
    ours = json.loads(shipper.build_request(payloads).body)
    try:
        model = ProfileImportJobCreateQuery.from_dict(ours)
    except pydantic.ValidationError as exc:
        return [f"klaviyo-api refuses the job: {exc}"]
    vendor = without_sdk_nulls(ApiClient().sanitize_for_serialization(model))
    return differences(vendor, ours, "body", "the SDK")


@pytest.mark.parametrize("shipper", list(SHIPPERS))
@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_profile_is_a_job_klaviyos_sdk_reads_back_unchanged(builds, build_name, shipper):
    rows = profiles(builds[build_name])
    problems = [f"{row['delivery_key']}: {problem}" for row in rows
                for problem in job_problems(SHIPPERS[shipper], [row["payload"].encode()])]
    assert problems == [], f"{len(problems)} problem(s) in {len(rows)} profiles:\n" + "\n".join(
        problems[:10])
    # And all of them in one job, as the shipper sends them.
    assert job_problems(SHIPPERS[shipper], [row["payload"].encode() for row in rows]) == []


def test_the_new_members_reach_klaviyo(builds):
    """Names and location are sent on the demo data, in the SDK's member names."""
    sent = [json.loads(row["payload"])["attributes"] for row in profiles(builds["demo"])]
    for member in ("first_name", "last_name", "location"):
        assert any(member in attributes for attributes in sent), member
    locations = [attributes["location"] for attributes in sent if "location" in attributes]
    for member in ("address1", "city", "region", "zip", "country"):
        assert any(member in location for location in locations), member


def test_the_sdk_refuses_what_klaviyo_refuses():
    """The comparison above does catch a wrong type and an unknown member."""
    good = {"type": "profile", "attributes": {"external_id": "c1", "email": "c1@example.com",
                                              "location": {"zip": "75001"}, "properties": {}}}
    shipper = SHIPPERS["no list"]
    assert job_problems(shipper, [json.dumps(good).encode()]) == []
    wrong_type = {**good, "attributes": {**good["attributes"], "location": {"zip": 75001}}}
    assert job_problems(shipper, [json.dumps(wrong_type).encode()])[0].startswith(
        "klaviyo-api refuses the job")
    unknown = {**good, "attributes": {**good["attributes"], "postcode": "75001"}}
    assert job_problems(shipper, [json.dumps(unknown).encode()]) == [
        ("body.data.attributes.profiles.data[0].attributes.postcode: we send '75001', "
         "the SDK does not know it")]


def fake_answer(fake: FakeKlaviyo, shipper: Klaviyo, payloads: list[bytes]) -> int:
    request = shipper.build_request(payloads)
    return fake.handle(FakeRequest(
        request.method, "/api/profile-bulk-import-jobs", {},
        {name.lower(): value for name, value in request.headers.items()},
        request.body or b"")).status


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_the_fake_takes_what_the_sdk_takes(builds, build_name):
    """tests/fakes/klaviyo.py accepts every profile of the mart, in one job, and refuses
    a location member the SDK's ProfileLocation does not name."""
    rows = profiles(builds[build_name])
    shipper = Klaviyo(KlaviyoSettings(), {"KLAVIYO_API_KEY": FakeKlaviyo().api_key})
    fake = FakeKlaviyo()
    assert fake_answer(fake, shipper, [row["payload"].encode() for row in rows]) == 202
    located = next(json.loads(row["payload"]) for row in rows
                   if "location" in json.loads(row["payload"])["attributes"])
    located["attributes"]["location"]["postcode"] = "75001"
    assert job_problems(shipper, [json.dumps(located).encode()]) != []
    assert fake_answer(fake, shipper, [json.dumps(located).encode()]) == 400


# ---------------------------------------------------------------------------
# Limits, as the SDK documents them.

LIMITS_TEXT = ProfilesApi.bulk_import_profiles.__doc__ or ""


def documented(pattern: str) -> int:
    match = re.search(pattern, LIMITS_TEXT)
    assert match, f"klaviyo-api's bulk_import_profiles no longer says {pattern!r}"
    return int(match.group(1).replace(",", ""))


MAX_PROFILES = documented(r"up to ([\d,]+) profiles per request")
MAX_JOB_BYTES = documented(r"maximum allowed payload size is (\d+)MB") * 1_000_000
MAX_PROFILE_BYTES = documented(r"maximum allowed payload size per-profile is (\d+)KB") * 1_000


def test_the_documented_limits_are_the_shippers():
    assert (MAX_PROFILES, MAX_JOB_BYTES, MAX_PROFILE_BYTES) == (10_000, 5_000_000, 100_000)
    settings = KlaviyoSettings()
    assert Klaviyo.max_batch_size <= MAX_PROFILES
    assert settings.batch_size <= MAX_PROFILES
    assert settings.max_request_bytes <= MAX_JOB_BYTES
    assert Klaviyo(settings, CREDENTIALS).request_byte_limit() == settings.max_request_bytes


def jobs_the_shipper_cuts(shipper: Klaviyo, payloads: list[bytes]) -> list[list[bytes]]:
    """Batches as shipper.delivery sets the Batcher up for this destination."""
    limit = shipper.request_byte_limit()
    batcher = Batcher(shipper.settings.batch_size, limit,
                      len(shipper.build_request([]).body or b"") if limit else 0)
    rows = Rows([f"k{index}" for index in range(len(payloads))], list(payloads),
                ["" for _ in payloads])
    batches = [list(batch.payloads) for batch in batcher.add(rows)]
    last = batcher.flush()
    if last is not None:
        batches.append(list(last.payloads))
    return batches


def padded(payload: bytes, size: int) -> bytes:
    """The profile with a property filling it up to `size` bytes of JSON."""
    profile = json.loads(payload)
    profile["attributes"]["properties"]["notes"] = ""
    base = len(json.dumps(profile, ensure_ascii=False, separators=(",", ":")).encode())
    profile["attributes"]["properties"]["notes"] = "x" * (size - base)
    text = json.dumps(profile, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(text) == size
    return text


SHAPES = ["demo profiles", "tiny profiles", "profiles near 100 KB"]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_shippers_jobs_stay_within_klaviyos_limits(builds, shape):
    shipper = SHIPPERS["with a list"]
    real = [row["payload"].encode() for row in profiles(builds["demo"])]
    assert all(len(payload) <= MAX_PROFILE_BYTES for payload in real)
    count = 2 * MAX_PROFILES + 7
    if shape == "demo profiles":
        payloads = (real * (count // len(real) + 1))[:count]
    elif shape == "tiny profiles":  # the count binds before the bytes
        payloads = [json.dumps({"type": "profile", "attributes": {
            "external_id": f"c{index}", "properties": {}}}).encode() for index in range(count)]
    else:  # the bytes bind: 130 profiles of ~100 KB are 13 MB
        payloads = [padded(real[index % len(real)], MAX_PROFILE_BYTES - index % 50)
                    for index in range(130)]
    jobs = jobs_the_shipper_cuts(shipper, payloads)
    assert [payload for job in jobs for payload in job] == payloads
    sizes = [(len(job), len(shipper.build_request(job).body or b"")) for job in jobs]
    assert all(profiles_in_job <= MAX_PROFILES for profiles_in_job, _ in sizes), sizes
    assert all(body_bytes <= MAX_JOB_BYTES for _, body_bytes in sizes), sizes
    if shape == "tiny profiles":
        assert [profiles_in_job for profiles_in_job, _ in sizes] == [MAX_PROFILES,
                                                                    MAX_PROFILES, 7]
    if shape == "profiles near 100 KB":
        assert len(jobs) == 3
    # The jobs still read as the SDK's request model.
    assert job_problems(shipper, jobs[0][:200]) == []


# ---------------------------------------------------------------------------
# Revision and phones.


def test_the_default_revision_is_the_sdks():
    assert KlaviyoSettings().revision == KlaviyoAPI._REVISION
    request = SHIPPERS["no list"].build_request([b"{}"])
    assert request.headers["revision"] == KlaviyoAPI._REVISION
    pinned = Klaviyo(KlaviyoSettings(revision="2025-10-15"), CREDENTIALS)
    assert pinned.build_request([b"{}"]).headers["revision"] == "2025-10-15"


def test_the_example_configuration_does_not_pin_an_older_revision():
    config = tomllib.loads((PROJECT_DIR / "shipper.toml").read_text(encoding="utf-8"))
    pinned = config.get("destinations", {}).get("klaviyo", {}).get("revision")
    assert pinned is None or pinned >= KlaviyoAPI._REVISION, (
        f"shipper.toml pins Klaviyo revision {pinned}; klaviyo-api sends "
        f"{KlaviyoAPI._REVISION}")


def phone_numbers(build: Build) -> list[tuple[str, str, phonenumbers.PhoneNumber | None]]:
    """(key, phone_number, libphonenumber's reading or None) of every profile with one."""
    found = []
    for row in profiles(build):
        phone = row["phone_number"]
        if phone is None:
            continue
        try:
            number = phonenumbers.parse(phone, None)
        except phonenumbers.NumberParseException:
            number = None
        found.append((row["delivery_key"], phone, number))
    assert found, "no profile has a phone number: nothing to compare"
    return found


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_phone_number_is_e164_for_libphonenumber(builds, build_name):
    problems = []
    for key, phone, number in phone_numbers(builds[build_name]):
        e164 = None if number is None else phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.E164)
        if e164 != phone:
            problems.append(f"{key}: libphonenumber writes {e164!r}, we send {phone!r}")
    assert problems == [], f"{len(problems)} problem(s):\n" + "\n".join(problems[:10])


@pytest.mark.parametrize("build_name", ["fixture", "demo"])
def test_every_phone_number_is_one_libphonenumber_calls_valid(builds, build_name):
    problems = [f"{key}: {phone} (libphonenumber: not a valid number)"
                for key, phone, number in phone_numbers(builds[build_name])
                if number is None or not phonenumbers.is_valid_number(number)]
    assert problems == [], f"{len(problems)} problem(s):\n" + "\n".join(problems[:10])
