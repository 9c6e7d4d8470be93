"""Rebuild the reference seeds in seeds/ from phonenumbers and pycountry metadata.

Run by hand when either library is upgraded, then review the diff and commit:

    python scripts/build_reference_seeds.py [--out seeds]

The dbt build never runs this script: the seeds are committed so that a build
needs neither library and the reference data only changes in a reviewed commit.
"""

from __future__ import annotations

import argparse
import csv
import sys
import unicodedata
from pathlib import Path

import phonenumbers
import pycountry

# pycountry's ISO names are catalogue names ("Korea, Republic of"); the seed
# carries the name people write, so these replace it where pycountry has no
# common_name of its own.
NAME_OVERRIDES = {
    "BN": "Brunei",
    "CD": "Democratic Republic of the Congo",
    "CG": "Republic of the Congo",
    "FK": "Falkland Islands",
    "FM": "Micronesia",
    "MF": "Saint Martin",
    "PS": "Palestine",
    "RU": "Russia",
    "SH": "Saint Helena",
    "SX": "Sint Maarten",
    "VA": "Vatican City",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
}

# Names customers and tills actually type that no ISO name variant covers.
HAND_ALIASES = {
    "america": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "usa": "US",
    "us of a": "US",
    "britain": "GB",
    "england": "GB",
    "great britain": "GB",
    "northern ireland": "GB",
    "scotland": "GB",
    "u.k.": "GB",
    "uk": "GB",
    "wales": "GB",
    "deutschland": "DE",
    "west germany": "DE",
    "españa": "ES",
    "espana": "ES",
    "italia": "IT",
    "holland": "NL",
    "nederland": "NL",
    "the netherlands": "NL",
    "eire": "IE",
    "éire": "IE",
    "republic of ireland": "IE",
    "korea": "KR",
    "republic of korea": "KR",
    "south korea": "KR",
    "russia": "RU",
    "czech republic": "CZ",
    "ivory coast": "CI",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
    "turkey": "TR",
    "cape verde": "CV",
    "east timor": "TL",
    "vatican": "VA",
    "uae": "AE",
    "drc": "CD",
    "dr congo": "CD",
    "brasil": "BR",
    "méxico": "MX",
    "schweiz": "CH",
    "suisse": "CH",
    "österreich": "AT",
    "osterreich": "AT",
    "belgique": "BE",
    "belgië": "BE",
    "the bahamas": "BS",
    "the gambia": "GM",
}

# Outlying areas have their own ISO code, which the US state seed also lists.
US_STATE_NAME_OVERRIDES = {"VI": "U.S. Virgin Islands"}
US_STATE_EXCLUDED = {"UM"}  # uninhabited; no postal state code in use


def country_rows() -> list[dict[str, str]]:
    """One row per phonenumbers region that has an ISO 3166-1 entry."""
    rows = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        country = pycountry.countries.get(alpha_2=region)
        if country is None:  # AC, TA, XK: dialling regions without an ISO code
            continue
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        rows.append(
            {
                "alpha2": country.alpha_2.upper(),
                "alpha3": country.alpha_3.upper(),
                "country_name": display_name(country),
                "calling_code": str(phonenumbers.country_code_for_region(region)),
                "trunk_prefix": metadata.national_prefix or "",
            }
        )
    return rows


def display_name(country) -> str:
    return NAME_OVERRIDES.get(country.alpha_2) or getattr(country, "common_name", country.name)


def fold_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def alias_rows(countries: list[dict[str, str]]) -> list[dict[str, str]]:
    """Every lower-cased name variant of each seeded country, plus HAND_ALIASES.

    The seed's own country_name is included too, so a single join on alias
    resolves any written name; accent-free spellings are added because tills
    and CRMs often drop accents ("cote d'ivoire", "turkiye").
    """
    seeded = {row["alpha2"]: row for row in countries}
    aliases: dict[str, str] = {}
    for alpha2, row in seeded.items():
        country = pycountry.countries.get(alpha_2=alpha2)
        variants = {
            row["country_name"],
            country.name,
            getattr(country, "official_name", None),
            getattr(country, "common_name", None),
        }
        for variant in filter(None, variants):
            for spelling in {variant.lower(), fold_accents(variant).lower()}:
                add_alias(aliases, spelling, alpha2)
    for alias, alpha2 in HAND_ALIASES.items():
        if alpha2 not in seeded:
            raise SystemExit(f"hand alias {alias!r} points at unseeded country {alpha2}")
        add_alias(aliases, alias, alpha2)
    return [{"alias": alias, "alpha2": aliases[alias]} for alias in sorted(aliases)]


def add_alias(aliases: dict[str, str], alias: str, alpha2: str) -> None:
    # An alias naming two countries would make the join fan out; fail loudly.
    previous = aliases.setdefault(alias, alpha2)
    if previous != alpha2:
        raise SystemExit(f"alias {alias!r} is ambiguous: {previous} and {alpha2}")


def us_state_rows() -> list[dict[str, str]]:
    rows = []
    for subdivision in pycountry.subdivisions.get(country_code="US"):
        code = subdivision.code.split("-", 1)[1]
        if code in US_STATE_EXCLUDED:
            continue
        name = US_STATE_NAME_OVERRIDES.get(code, subdivision.name)
        rows.append({"state_name": name, "state_code": code})
    return sorted(rows, key=lambda row: row["state_code"])


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    # LF line ends keep the committed seeds diff-friendly; dbt reads either.
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows):>4} rows to {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "seeds"
    parser.add_argument("--out", type=Path, default=default_out, help="seed directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    countries = country_rows()
    write_csv(args.out / "country_codes.csv", countries)
    write_csv(args.out / "country_aliases.csv", alias_rows(countries))
    write_csv(args.out / "us_states.csv", us_state_rows())


if __name__ == "__main__":
    main()
