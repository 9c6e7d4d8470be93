"""destination_identifier_coverage counts what the payloads carry.

The shares are read back from the payloads themselves (the JSON each platform
receives), not from the columns the model counts, so a model that counted the
wrong column would disagree here.
"""

from __future__ import annotations

import json

import pytest

# (destination, mart, identifier): does a parsed payload carry it?
FROM_PAYLOAD = [
    ("meta", "meta_conversions", "email", lambda p: bool(p["user_data"].get("em"))),
    ("meta", "meta_conversions", "birth_date", lambda p: bool(p["user_data"].get("db"))),
    ("pinterest", "pinterest_conversions", "gender", lambda p: bool(p["user_data"].get("ge"))),
    ("google_ads", "google_ads_conversions", "address",
     lambda p: any("address" in i for i in p["userData"]["userIdentifiers"])),
    ("google_ads", "google_ads_conversions", "items",
     lambda p: bool(p.get("cartData", {}).get("items"))),
    ("klaviyo", "klaviyo_profiles", "first_name",
     lambda p: "first_name" in p["attributes"]),
]


@pytest.mark.parametrize(("destination", "mart", "identifier", "carries"), FROM_PAYLOAD,
                         ids=[f"{d}-{i}" for d, _, i, _ in FROM_PAYLOAD])
def test_shares_are_what_the_payloads_carry(built_fixture, dbt_project, destination, mart,
                                            identifier, carries):
    _, failures = built_fixture
    assert not failures, failures
    payloads = [json.loads(row[0]) for row in dbt_project.query(f"select payload from main.{mart}")]
    assert payloads, f"{mart} is empty on the fixtures: nothing to compare"
    ((events, with_identifier, share),) = dbt_project.query(
        "select events, events_with_identifier, share from main.destination_identifier_coverage"
        " where destination = ? and identifier = ?", [destination, identifier])
    expected = sum(1 for payload in payloads if carries(payload))
    assert (events, with_identifier) == (len(payloads), expected)
    assert share == round(expected / len(payloads), 4)


def test_every_destination_is_counted(built_fixture, dbt_project):
    destinations = {row[0] for row in dbt_project.query(
        "select destination from main.destination_coverage")}
    counted = {row[0] for row in dbt_project.query(
        "select distinct destination from main.destination_identifier_coverage")}
    assert counted == destinations
