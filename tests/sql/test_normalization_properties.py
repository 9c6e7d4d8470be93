"""Property tests: the SQL macros, compiled by dbt and run in DuckDB, against
the Python reference (tests/sql/reference.py). Phone numbers are held against
libphonenumber itself in test_phone_oracle.py."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sql import reference
from tests.sql.conftest import AS_OF

CASE_COLUMNS = "(select ?::varchar as value, ?::varchar as calling_code, ?::varchar as trunk_prefix, ?::varchar as country_code) as cases"

MACROS = {
    "email": "offline_conversions.normalize_email('value')",
    "email_google": "offline_conversions.normalize_email_google(offline_conversions.normalize_email('value'))",
    "email_uid2": "offline_conversions.normalize_email_uid2('value')",
    "name": "offline_conversions.normalize_name('value')",
    "name_google": "offline_conversions.normalize_name_google('value')",
    "postal_code_google": "offline_conversions.normalize_postal_code_google('value', 'country_code')",
    "city": "offline_conversions.normalize_city('value')",
    "state": "offline_conversions.normalize_state('value')",
    "zip": "offline_conversions.normalize_zip('value', 'country_code')",
    "gender": "offline_conversions.normalize_gender('value')",
    "birth_date": "offline_conversions.normalize_birth_date('value')",
    "hash": "offline_conversions.hash_identifier('value')",
}

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sql_rules(dbt_project):
    """Each macro compiled once; a function that runs it on one value."""
    compiled = {
        name: dbt_project.compile_inline(f"select {{{{ {macro} }}}} as result from {CASE_COLUMNS}")
        for name, macro in MACROS.items()
    }
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")

    def run(rule: str, value, calling_code="1", trunk_prefix="1", country_code="us"):
        return connection.execute(
            compiled[rule], [value, calling_code, trunk_prefix, country_code]
        ).fetchone()[0]

    yield run
    connection.close()



whitespace = st.sampled_from(sorted(reference.WHITESPACE))
padding = st.text(alphabet=whitespace, max_size=3)
latin = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéèüöñçøåÉÜÆœß"
messy_text = st.lists(
    st.sampled_from(list(latin + "0123456789 .-'_+@,()/#\t") + ["\u00a0", "\u3000", "e\u0301"]),
    max_size=30,
).map("".join)


@st.composite
def emails(draw):
    local = draw(st.text(alphabet=latin + "0123456789._+-", min_size=1, max_size=15))
    domain = draw(st.sampled_from(["gmail.com", "GoogleMail.com", "example.co.uk", "exa mple.com", "nodot", "x.", ""]))
    at = draw(st.sampled_from(["@", "@", "@", "", "@@"]))
    core = local + at + domain
    if draw(st.booleans()) and draw(st.booleans()):
        core = draw(st.sampled_from(["ABCDEF" * 10 + "ABCD", "0123456789abcdef" * 4]))
    return draw(padding) + core + draw(padding)


@given(value=st.one_of(emails(), messy_text, st.none()))
@SETTINGS
def test_email_rules_agree(sql_rules, value):
    expected = reference.normalize_email(value)
    assert sql_rules("email", value) == expected
    assert sql_rules("email_google", value) == reference.normalize_email_google(expected)
    assert sql_rules("email_uid2", value) == reference.normalize_email_uid2(value)


@given(value=st.one_of(messy_text, st.none()))
@SETTINGS
def test_name_city_state_rules_agree(sql_rules, value):
    assert sql_rules("name", value) == reference.normalize_name(value)
    assert sql_rules("city", value) == reference.normalize_city(value)
    assert sql_rules("state", value) == reference.normalize_state(value)


@given(
    value=st.one_of(
        messy_text,
        st.from_regex(r"[0-9]{5}(-[0-9]{4})?", fullmatch=True),
        st.from_regex(r"[A-Za-z][0-9][A-Za-z]? ?[0-9][A-Za-z]{2}", fullmatch=True),
    ),
    country_code=st.sampled_from(["us", "gb", "fr"]),
    pad=padding,
)
@SETTINGS
def test_zip_rules_agree(sql_rules, value, country_code, pad):
    value = pad + value + pad
    assert sql_rules("zip", value, country_code=country_code) == reference.normalize_zip(value, country_code)


# Names as people write them, in many scripts and cases (Turkish dotted
# capital I, German sharp s, Greek capitals, Cyrillic, CJK, combining marks).
name_text = st.lists(
    st.sampled_from(list(latin + " .-'’,") + list("İıŞşĞğÇçÖöÜüẞßΣσςΑΒΓΔДЖЯжя王李ØøÅåŁł") + ["e\u0301", "\u00a0"]),
    max_size=20,
).map("".join)


@given(value=st.one_of(name_text, messy_text, st.none()), pad=padding)
@SETTINGS
def test_google_name_rule_agrees(sql_rules, value, pad):
    value = None if value is None else pad + value + pad
    assert sql_rules("name_google", value) == reference.normalize_name_google(value)


@given(
    value=st.one_of(
        messy_text,
        st.from_regex(r"[0-9]{5}(-?[0-9]{4})?", fullmatch=True),
        st.from_regex(r"[A-Za-z][0-9][A-Za-z]? ?[0-9][A-Za-z]{2}", fullmatch=True),
        st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True),
        st.none(),
    ),
    country_code=st.sampled_from(["us", "gb", "jp", "pt", None]),
    pad=padding,
)
@SETTINGS
def test_google_postal_code_rule_agrees(sql_rules, value, country_code, pad):
    value = None if value is None else pad + value + pad
    assert sql_rules("postal_code_google", value, country_code=country_code) == (
        reference.normalize_postal_code_google(value, country_code))


@given(value=st.one_of(st.sampled_from(["f", "F", " Female ", "male", "M", "woman", "x", "", "n"]), messy_text))
@SETTINGS
def test_gender_rule_agrees(sql_rules, value):
    assert sql_rules("gender", value) == reference.normalize_gender(value)


@given(day=st.dates(min_value=date(1850, 1, 1), max_value=date(2030, 12, 31)), style=st.integers(0, 3), pad=padding)
@SETTINGS
def test_birth_date_rule_agrees(sql_rules, day, style, pad):
    written = [
        day.isoformat(),
        f"{day.month}/{day.day}/{day.year}",
        f"{day.month:02d}/{day.day:02d}/{day.year}",
        f"{day.day}.{day.month}.{day.year}",
    ][style]
    value = pad + written + pad
    assert sql_rules("birth_date", value) == reference.normalize_birth_date(value, date.fromisoformat(AS_OF))


@given(value=st.one_of(messy_text, st.from_regex(r"[0-9a-fA-F]{64}", fullmatch=True), st.none()))
@SETTINGS
def test_hash_rule_agrees(sql_rules, value):
    trimmed = None if value is None else value
    assert sql_rules("hash", trimmed) == reference.sha256_hex(trimmed)
