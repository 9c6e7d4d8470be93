"""The phone and country rule (int_customer_countries) against libphonenumber.

A few thousand customers of many countries are generated from libphonenumber's
own example numbers, written the ways people write them (E.164, international
and national formats, '00' in front, the country code without '+', with an
extension), some made impossible (digits dropped or added), some with no
country written. The real dbt build reads them; `phonenumbers` is the oracle:

- a number it calls valid comes out exactly as it formats it in E.164;
- a number we keep, it can parse, calls possible, and formats as we do;
- a customer with no country written, whose number is written with its
  calling code, takes the region it says the number is in.

Failures name the number as written, libphonenumber's value and ours.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from tests.sql.conftest import PROJECT_DIR, DbtProject

CUSTOMERS = 3000
SEED = 20261204
DEFAULT_COUNTRY = "us"

with open(PROJECT_DIR / "seeds" / "country_codes.csv", encoding="utf-8") as seed:
    ISO_REGIONS = {row["alpha2"] for row in csv.DictReader(seed)}


def reads_like_the_rule(region: str) -> bool:
    """Regions whose national prefix is plain digits (or absent): the rule
    strips it as written. Where libphonenumber's prefix for parsing is a
    pattern (carrier codes in Argentina, Brazil, Mexico...), the rule keeps
    the common reading only, which this test does not cover."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    for_parsing = metadata.national_prefix_for_parsing
    return (
        metadata.national_prefix_transform_rule is None
        and for_parsing in (None, metadata.national_prefix)
    )


REGIONS = sorted(
    region for region in phonenumbers.SUPPORTED_REGIONS
    if region in ISO_REGIONS and reads_like_the_rule(region)
)
TYPES = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE]
STYLES = ["e164", "international", "national", "00", "code_without_plus", "digits_only"]
EXTENSIONS = ["", "", "", " x123", " ext. 45", " extension 7", " #12"]


@dataclass
class Case:
    customer_id: str
    phone: str
    country: str
    style: str
    region: str


def example_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber | None:
    """An example number of the region with its last digits changed, valid if possible."""
    example = phonenumbers.example_number_for_type(region, rng.choice(TYPES))
    if example is None:
        return None
    national = phonenumbers.national_significant_number(example)
    for _ in range(5):
        tail = "".join(rng.choice("0123456789") for _ in range(min(3, len(national) - 2)))
        candidate = phonenumbers.parse(f"+{example.country_code}{national[: len(national) - len(tail)]}{tail}")
        if phonenumbers.is_valid_number(candidate):
            return candidate
    return example


def written(rng: random.Random, number: phonenumbers.PhoneNumber, style: str) -> str:
    national = phonenumbers.national_significant_number(number)
    if style == "e164":
        return phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "national":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "00":
        return "00 " + phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)[1:]
    if style == "code_without_plus":
        return rng.choice([f"{number.country_code}{national}", f"{number.country_code} {national}"])
    return national


def make_impossible(rng: random.Random, number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    national = phonenumbers.national_significant_number(number)
    changed = national[:-2] if rng.random() < 0.5 else national + "12"
    return phonenumbers.PhoneNumber(country_code=number.country_code, national_number=int(changed),
                                    italian_leading_zero=national.startswith("0"))


def generate_cases() -> list[Case]:
    rng = random.Random(SEED)
    cases = []
    while len(cases) < CUSTOMERS:
        region = rng.choice(REGIONS)
        number = example_number(rng, region)
        if number is None:
            continue
        if rng.random() < 0.15:
            number = make_impossible(rng, number)
        style = rng.choice(STYLES)
        # A customer with no country written lets the phone (or nothing) decide.
        country = "" if rng.random() < 0.2 else rng.choice([region, region.lower(), f" {region} "])
        phone = written(rng, number, style) + rng.choice(EXTENSIONS)
        cases.append(Case(f"p{len(cases):05d}", phone, country, style, region))
    return cases


def international_prefix_is_00(region: str) -> bool:
    # Exactly "00": where the prefix is a pattern such as Hong Kong's
    # 00(?:30|5[09]|[126-9]?), libphonenumber takes "008" of "00 852..." as
    # the prefix and reads +52, which is not what the customer wrote.
    return phonenumbers.PhoneMetadata.metadata_for_region(region).international_prefix == "00"


def libphonenumber_reading(case: Case, country: str) -> phonenumbers.PhoneNumber | None:
    """What libphonenumber parses from the number as written, in the country we resolved."""
    try:
        return phonenumbers.parse(case.phone, country.upper())
    except phonenumbers.NumberParseException:
        return None


def e164(number: phonenumbers.PhoneNumber | None) -> str | None:
    return None if number is None else phonenumbers.format_number(number, PhoneNumberFormat.E164)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> tuple[list[Case], dict[str, tuple[str, str, str | None, bool]]]:
    cases = generate_cases()
    workdir = tmp_path_factory.mktemp("phones")
    raw = workdir / "raw"
    raw.mkdir()
    with open(raw / "customers.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "email", "phone", "country", "marketing_consent", "updated_at"])
        for case in cases:
            writer.writerow([case.customer_id, "", case.phone, case.country, "true", "2026-01-01T00:00:00Z"])
    project = DbtProject(workdir, raw_path=raw)
    result = project.invoke("build", "--select", "+int_customer_countries", "--exclude", "test_type:unit",
                            vars={"default_country": DEFAULT_COUNTRY.upper()})
    assert result.success, result.exception
    rows = project.query(
        "select customer_id, country_code, country_source, phone_e164, phone_is_valid"
        " from main.int_customer_countries")
    return cases, {row[0]: row[1:] for row in rows}


def comparable(case: Case, country: str) -> bool:
    # '00' is read as the international prefix everywhere by the rule;
    # libphonenumber reads it so only where it is the region's own prefix.
    return case.style != "00" or international_prefix_is_00(country.upper())


def test_every_valid_number_comes_out_as_libphonenumber_formats_it(resolved):
    cases, ours = resolved
    problems = []
    checked = 0
    for case in cases:
        country, _, phone, _ = ours[case.customer_id]
        if not comparable(case, country):
            continue
        number = libphonenumber_reading(case, country)
        if number is None or not phonenumbers.is_valid_number(number):
            continue
        checked += 1
        if phone != e164(number):
            problems.append(f"{case.phone!r} in {country}: libphonenumber {e164(number)}, ours {phone}")
    assert checked > CUSTOMERS // 2, f"only {checked} valid numbers were generated"
    assert not problems, f"{len(problems)} of {checked} valid numbers differ:\n" + "\n".join(problems[:25])


def test_every_number_kept_is_possible_and_formatted_alike(resolved):
    cases, ours = resolved
    problems = []
    for case in cases:
        country, _, phone, _ = ours[case.customer_id]
        if phone is None or not comparable(case, country):
            continue
        number = libphonenumber_reading(case, country)
        if number is None or not phonenumbers.is_possible_number(number) or e164(number) != phone:
            verdict = "cannot parse it" if number is None else (
                f"{e164(number)} (possible: {phonenumbers.is_possible_number(number)})")
            problems.append(f"{case.phone!r} in {country}: libphonenumber {verdict}, ours {phone}")
    assert not problems, f"{len(problems)} numbers kept that libphonenumber refuses:\n" + "\n".join(problems[:25])


def test_phone_is_valid_is_libphonenumbers_is_valid_number(resolved):
    cases, ours = resolved
    problems = []
    valid = 0
    for case in cases:
        _, _, phone, is_valid = ours[case.customer_id]
        if phone is None:
            assert is_valid is False
            continue
        number = phonenumbers.parse(phone)
        valid += is_valid
        if is_valid != phonenumbers.is_valid_number(number):
            problems.append(f"{phone} (written {case.phone!r}): libphonenumber "
                            f"{phonenumbers.is_valid_number(number)}, ours {is_valid}")
    assert valid > CUSTOMERS // 2
    assert not problems, f"{len(problems)} differ:\n" + "\n".join(problems[:25])


def test_impossible_numbers_are_dropped(resolved):
    cases, ours = resolved
    dropped = kept = 0
    for case in cases:
        country, _, phone, _ = ours[case.customer_id]
        number = libphonenumber_reading(case, country)
        if number is not None and not phonenumbers.is_possible_number(number) and comparable(case, country):
            if phone is None:
                dropped += 1
            else:
                kept += 1
    assert dropped > 100, "too few impossible numbers were generated to show anything"
    assert kept == 0


def test_a_phone_with_its_calling_code_tells_the_country(resolved):
    cases, ours = resolved
    problems = []
    checked = 0
    for case in cases:
        country, source, phone, _ = ours[case.customer_id]
        if case.country.strip():
            assert source == "written", case
            assert country == case.country.strip().lower(), case
            continue
        if case.style not in ("e164", "international", "00") or phone is None:
            continue
        number = phonenumbers.parse(phone)
        region = phonenumbers.region_code_for_number(number)
        if region not in ISO_REGIONS:
            continue
        checked += 1
        if (country, source) != (region.lower(), "phone"):
            problems.append(f"{case.phone!r}: libphonenumber says {region}, ours {country} ({source})")
    assert checked > 100
    assert not problems, f"{len(problems)} of {checked} countries differ:\n" + "\n".join(problems[:25])


def test_the_generated_set_covers_many_countries():
    cases = generate_cases()
    assert len({case.region for case in cases}) > 150
    assert {case.style for case in cases} == set(STYLES)


def test_committed_reference_data_is_what_the_script_generates(tmp_path):
    """Seeds and pattern macros come from the pinned phonenumbers and
    pycountry: a library upgrade without a rerun of the script fails here."""
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, str(PROJECT_DIR / "scripts" / "build_reference_seeds.py"),
         "--out", str(tmp_path / "seeds"), "--macros", str(tmp_path / "macros")],
        check=True, capture_output=True,
    )
    generated = sorted(Path(tmp_path).rglob("*.*"))
    assert generated
    for path in generated:
        committed = (PROJECT_DIR / ("macros/reference" if path.parent.name == "macros" else "seeds") / path.name)
        assert path.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
            f"{committed.relative_to(PROJECT_DIR)} is not what scripts/build_reference_seeds.py "
            "generates from the installed phonenumbers/pycountry: rerun the script and commit"
        )
