"""Rebuild the reference seeds in seeds/ from phonenumbers and pycountry metadata.

country_codes, country_aliases and us_states resolve what customers write;
phone_number_rules carries libphonenumber's per-region dialling metadata
(calling code, national prefix, possible lengths, number patterns) so that the
SQL reads phone numbers the way libphonenumber does without calling it.

Run by hand when either library is upgraded, then review the diff and commit
(tests/sql/test_reference_seeds.py fails while they are out of date):

    python scripts/build_reference_seeds.py [--out seeds] [--macros macros/reference]

The dbt build never runs this script: the seeds are committed so that a build
needs neither library and the reference data only changes in a reviewed commit.
"""

from __future__ import annotations

import argparse
import csv
import json
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


# The number types whose patterns make a number valid (PhoneNumberUtil's
# is_valid_number tries each); their alternation is a region's valid_pattern.
NUMBER_TYPES = (
    "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost",
    "personal_number", "voip", "pager", "uan", "voicemail",
)


def phone_rule_rows() -> list[dict[str, str]]:
    """One row per libphonenumber region (geographic ones: no +800 and the like).

    region_rank is the region's place among those sharing its calling code,
    main region first (0), the order libphonenumber tries them in.
    national_prefix is the region's plain trunk prefix; the few regions whose
    prefix for parsing is a pattern (AR, BR, MX's carrier codes...) keep only
    the plain prefix, which covers numbers written the common way.
    """
    rows = []
    for calling_code, regions in sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()):
        for rank, region in enumerate(regions):
            if region == "001":  # non-geographic entities
                continue
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            general = metadata.general_desc
            lengths = sorted(general.possible_length)
            type_patterns = [
                desc.national_number_pattern
                for desc in (getattr(metadata, name) for name in NUMBER_TYPES)
                if desc is not None and desc.national_number_pattern
            ]
            rows.append(
                {
                    "region": region,
                    "calling_code": str(calling_code),
                    "region_rank": str(rank),
                    "national_prefix": metadata.national_prefix or "",
                    "possible_lengths": " ".join(str(length) for length in lengths),
                    "min_length": str(lengths[0]),
                    "max_length": str(lengths[-1]),
                    "leading_digits": metadata.leading_digits or "",
                    "general_pattern": general.national_number_pattern,
                    "valid_pattern": "|".join(type_patterns),
                }
            )
    return rows


def write_pattern_macros(path: Path, rules: list[dict[str, str]]) -> None:
    """The same patterns as Jinja data, so that the SQL compares against them
    as constants: a pattern read from a joined column is compiled again for
    every row (about 20 times slower in DuckDB on a million customers)."""
    shared = {row["calling_code"] for row in rules if row["region_rank"] != "0"}
    general = {row["region"]: row["general_pattern"] for row in rules}
    valid = {row["region"]: row["valid_pattern"] for row in rules if row["calling_code"] in shared}
    leading = {row["region"]: row["leading_digits"] for row in rules
               if row["calling_code"] in shared and row["leading_digits"]}
    by_calling_code: dict[str, list[str]] = {}
    for row in rules:
        by_calling_code.setdefault(row["calling_code"], []).append(f"(?:{row['valid_pattern']})")
    valid_by_code = {code: "|".join(patterns) for code, patterns in by_calling_code.items()}
    text = (
        "{#\n"
        f"    Generated by scripts/build_reference_seeds.py from phonenumbers {phonenumbers.__version__}\n"
        "    (the seed phone_number_rules holds the same patterns): do not edit.\n"
        "#}\n\n"
        "{# Each region's general pattern: every national number of the region matches it. #}\n"
        "{% macro phone_general_patterns() -%}\n"
        f"    {{{{ return({json.dumps(general, indent=8, sort_keys=True)}) }}}}\n"
        "{%- endmacro %}\n\n"
        "{# Valid-number patterns of the regions that share a calling code with another. #}\n"
        "{% macro phone_valid_patterns() -%}\n"
        f"    {{{{ return({json.dumps(valid, indent=8, sort_keys=True)}) }}}}\n"
        "{%- endmacro %}\n\n"
        "{# Per calling code, every one of its regions' number-type patterns: a number matching is valid. #}\n"
        "{% macro phone_valid_patterns_by_calling_code() -%}\n"
        f"    {{{{ return({json.dumps(valid_by_code, indent=8, sort_keys=True)}) }}}}\n"
        "{%- endmacro %}\n\n"
        "{# Leading digits that mark a number as the region's, among regions sharing a calling code. #}\n"
        "{% macro phone_leading_digits() -%}\n"
        f"    {{{{ return({json.dumps(leading, indent=8, sort_keys=True)}) }}}}\n"
        "{%- endmacro %}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {len(general):>4} patterns to {path}", file=sys.stderr)


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
    project = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=project / "seeds", help="seed directory")
    parser.add_argument("--macros", type=Path, default=project / "macros" / "reference",
                        help="directory of the generated pattern macros")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    countries = country_rows()
    write_csv(args.out / "country_codes.csv", countries)
    write_csv(args.out / "country_aliases.csv", alias_rows(countries))
    write_csv(args.out / "us_states.csv", us_state_rows())
    phone_rules = phone_rule_rows()
    write_csv(args.out / "phone_number_rules.csv", phone_rules)
    write_pattern_macros(args.macros / "phone_number_patterns.sql", phone_rules)


if __name__ == "__main__":
    main()
