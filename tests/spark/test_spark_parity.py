"""The same dbt project on Apache Spark and on DuckDB gives the same marts.

`make test-spark` runs this (it is marked `spark`, and `make test` leaves it
out): the fixture data is built with `dbt build` (seeds, models, unit tests
and data tests) on Spark, through dbt-spark's session method and a local
pyspark, and on DuckDB; then every mart, and the customer models the marts
read, must hold the same rows on both, compared as sorted rows with numbers compared as
values, `payload` parsed (the same members in the same order, the same
values: two JSON encoders may escape a string differently) and other text
(hashes, JSON columns, formatted times) byte for byte. The
normalisation rules are also compared one value at a time on a few hundred
awkward values, so a difference that the small fixture does not reach still
shows.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import shutil
import unicodedata
from decimal import Decimal

import pytest

from tests.spark.conftest import FIXTURE_RAW, MACROS, SPARK_SCHEMA

pytestmark = pytest.mark.spark

# Columns holding JSON text the platforms parse: compared parsed (canonical),
# since two JSON encoders may escape the same string differently.
JSON_COLUMNS = {"payload"}

MARTS = [
    "meta_conversions",
    "tiktok_conversions",
    "the_trade_desk_conversions",
    "google_ads_conversions",
    "pinterest_conversions",
    "pinterest_conversions_csv",
    "snapchat_conversions",
    "snapchat_conversions_csv",
    "criteo_sales",
    "braze_attributes",
    "klaviyo_profiles",
    "destination_coverage",
    "destination_identifier_coverage",
    "destination_exclusions",
]

# The customer models every mart reads, compared row by row too: the country and phone
# each customer ends up with are decided here (int_customer_countries), and a difference
# would otherwise show only in the marts' hashes.
CUSTOMER_MODELS = [
    "int_customers_latest",
    "int_customer_countries",
    "int_customers_normalized",
]

# DuckDB's type names as Spark writes the same types.
SPARK_TYPE_OF_DUCKDB = {
    "VARCHAR": "string",
    "INTEGER": "int",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}


def spark_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.lower().replace(" ", "")
    return SPARK_TYPE_OF_DUCKDB.get(duckdb_type, duckdb_type.lower())


def comparable(value):
    """Numbers as values (an int 3, a Decimal 3.00 and a float 3.0 differ in
    type between drivers, not in value); everything else as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def canonical_json(text):
    """JSON text in one canonical spelling: members in their order, compact,
    every character unescaped, numbers by value (7.50 and 7.5 alike)."""
    if text is None:
        return None

    def number(literal: str) -> str:
        value = Decimal(literal).normalize()
        return format(value, "f") if value == value.to_integral() else str(value)

    def walk(value):
        if isinstance(value, dict):
            return "{" + ",".join(f"{json.dumps(key, ensure_ascii=False)}:{walk(item)}"
                                  for key, item in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ",".join(walk(item) for item in value) + "]"
        if isinstance(value, Decimal):
            return number(str(value))
        return json.dumps(value, ensure_ascii=False)

    return walk(json.loads(text, parse_float=Decimal, parse_int=Decimal))


def comparable_column(name, value):
    return canonical_json(value) if name in JSON_COLUMNS else comparable(value)


def sort_key(row):
    return tuple((value is None, str(value)) for value in row)


def spark_table(builds, name):
    frame = builds.spark.table(f"{SPARK_SCHEMA}.{name}")
    columns = [(field.name, field.dataType.simpleString()) for field in frame.schema.fields]
    rows = sorted(
        (tuple(comparable_column(column, v) for (column, _), v in zip(columns, row, strict=True))
         for row in frame.collect()),
        key=sort_key,
    )
    return columns, rows


def duckdb_table(connection, name):
    cursor = connection.execute(f"select * from main.{name}")
    columns = [(column[0], spark_type(str(column[1]))) for column in cursor.description]
    rows = sorted(
        (tuple(comparable_column(column, v) for (column, _), v in zip(columns, row, strict=True))
         for row in cursor.fetchall()),
        key=sort_key,
    )
    return columns, rows


@pytest.fixture(scope="module")
def duckdb_connection(builds):
    import duckdb

    with duckdb.connect(str(builds.duckdb_path), read_only=True) as connection:
        yield connection


@pytest.mark.parametrize("mart", MARTS + CUSTOMER_MODELS)
def test_mart_is_identical_on_spark_and_duckdb(builds, duckdb_connection, mart):
    spark_columns, spark_rows = spark_table(builds, mart)
    duckdb_columns, duckdb_rows = duckdb_table(duckdb_connection, mart)
    assert spark_columns == duckdb_columns
    assert spark_rows, f"{mart} is empty on the fixture: nothing was compared"
    differences = [
        (spark_row, duckdb_row)
        for spark_row, duckdb_row in zip(spark_rows, duckdb_rows)
        if spark_row != duckdb_row
    ]
    assert len(spark_rows) == len(duckdb_rows) and not differences, (
        f"{mart}: {len(spark_rows)} rows on Spark, {len(duckdb_rows)} on DuckDB; first differences "
        f"(Spark, DuckDB): {differences[:3]}"
    )


def test_build_log_records_the_same_nodes_on_spark_and_duckdb(builds, duckdb_connection):
    """The on-run-end hook wrote dbt_builds on both: every node of the build,
    each with the run's as_of and the build command, and all succeeded."""
    def nodes(rows):
        return sorted((name, kind, model, status, as_of, command) for name, kind, model, status, as_of, command in rows)

    columns = "node_name, resource_type, tested_model, status, as_of, command"
    on_spark = nodes(builds.spark.sql(f"select {columns} from {SPARK_SCHEMA}.dbt_builds").collect())
    on_duckdb = nodes(duckdb_connection.execute(f"select {columns} from main.dbt_builds").fetchall())
    assert on_spark and on_spark == on_duckdb
    assert {row[3] for row in on_spark} <= {"success", "pass"}
    assert {(row[4], row[5]) for row in on_spark} == {("2026-11-28", "build")}


def test_every_set_aside_row_is_identical(builds, duckdb_connection):
    """What the marts leave out is the same too (destination_coverage only counts it)."""
    assert spark_table(builds, "int_rows_set_aside") == duckdb_table(
        duckdb_connection, "int_rows_set_aside"
    )


RAW_COLUMNS = {
    "customers": ["customer_id", "email", "phone", "first_name", "last_name", "birth_date", "gender",
                  "street", "city", "state", "postal_code", "country", "marketing_consent", "updated_at"],
    "orders": ["order_id", "customer_id", "ordered_at", "store_id", "channel", "currency", "status"],
    "order_items": ["order_id", "line_number", "product_id", "product_name", "category", "brand",
                    "quantity", "unit_price", "line_total"],
    "stores": ["store_id", "name", "city", "state", "postal_code", "country"],
}


def test_raw_files_may_be_parquet_gzip_or_lack_optional_columns_on_spark(builds, tmp_path):
    """raw_table on Spark reads what it reads on DuckDB: .parquet before .csv
    before .csv.gz, every column as text, a missing column as NULL, and
    quoted commas, doubled quotes and non-ASCII text as written."""
    import duckdb

    raw = tmp_path / "raw"
    raw.mkdir()
    with open(FIXTURE_RAW / "customers.csv", newline="", encoding="utf-8") as source:
        customers = list(csv.DictReader(source))
    kept = [c for c in customers[0] if c not in ("birth_date", "gender")]
    with open(raw / "customers.csv", "w", newline="", encoding="utf-8") as target:
        writer = csv.DictWriter(target, fieldnames=[c.upper() if c == "email" else c for c in kept],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows({(k.upper() if k == "email" else k): v for k, v in row.items()} for row in customers)
    with open(FIXTURE_RAW / "orders.csv", "rb") as source, gzip.open(raw / "orders.csv.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    with duckdb.connect() as connection:
        connection.execute(
            f"copy (select * from read_csv('{FIXTURE_RAW}/order_items.csv', all_varchar = true)) "
            f"to '{raw}/order_items.parquet' (format parquet)"
        )
    (raw / "order_items.csv").write_text("order_id\nnot read: the parquet file wins\n", encoding="utf-8")
    shutil.copy(FIXTURE_RAW / "stores.csv", raw / "stores.csv")

    for table, columns in RAW_COLUMNS.items():
        column_list = ", ".join(f"'{column}'" for column in columns)
        sql = builds.compile_on_spark(
            f"select * from {{{{ offline_conversions.raw_table('{table}', [{column_list}]) }}}} as raw_rows",
            {"raw_path": str(raw)},
        )
        read = sorted(
            (tuple(row) for row in builds.spark.sql(sql).collect()), key=lambda row: tuple(map(str, row))
        )
        with open(FIXTURE_RAW / f"{table}.csv", newline="", encoding="utf-8") as source:
            expected = sorted(
                (
                    tuple(
                        None if table == "customers" and column in ("birth_date", "gender")
                        else (row[column] or None)
                        for column in columns
                    )
                    for row in csv.DictReader(source)
                ),
                key=lambda row: tuple(map(str, row)),
            )
        assert read == expected, table


# ---------------------------------------------------------------------------
# The rules, value by value.

WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\u00a0", "\u1680",
              "\u2002", "\u2009", "\u200b", "\u2028", "\u2029", "\u202f", "\u3000", "\ufeff"]
LETTERS = ["a", "B", "z", "é", "É", "ß", "ñ", "Ø", "ç", "Å", "Ω", "ж", "Й", "山", "ع", "ı",
           "e\u0301", "a\u0308", "n\u0303", "o\u0323\u0302", "\u0438\u0306", "\u212b", "\u2126",
           "\u0958", "\ufb01"]
OTHER = ["0", "1", "7", "9", "-", ".", "+", "(", ")", "@", "#", "/", "'", '"', "\\", "$", ",",
         "_", "%", "😀", "x", "ext", "'", "\u0301"]
TEXT = [
    None, "", " ", "\u00a0\u2009\u3000", "John_Smith@gmail.com", "\u00a0 J.Doe+News@GoogleMail.com\t",
    "a.b+c@gmail.com", "x@nodot", "in side@example.com", "no-at-sign.example.com",
    "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F",
    " 62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f\n",
    "(650)555-1212", "+44 (0)20 7946 0958 ext. 45", "0044 7700 900123", "213-373-4253 x12",
    "555-1212", "call 213 373 4253", "1 (213) 373-4253", "+1 213 373 4253 4253 4253 42",
    "07700 900123", "01 23 45 67 89", "06 1 234 5678", "#12", "123\n", "12\u20283",
    "Valéry", "Vale\u0301ry", "O'Brien", "New York", "N.Y.", "  São Paulo ", "Zürich",
    "Ñandú", "Ærøskøbing", "İstanbul", "ΟΔΥΣΣΕΥΣ", "Σίσυφος ΣΑΣ", "ǅemal", "Đorđe", "Łódź", "Mr. 王小明", "김민준",
    "98101-1234", "W1D 1BS", "75001", "m1 1ae", "F", "female", "W", "Man", "x",
    "United States", "U.S.A.", "u.s.a", "  great\u00a0britain ", "Côte d'Ivoire", "Deutschland",
    "Shoe, \"Runner\"", "back\\slash", "dollar $1 \\1", "line\nbreak", "tab\there",
]
TIMESTAMPS = [
    "2026-11-27T10:00:00Z", "2026-11-20T23:30:00-05:00", "2026-11-24T08:00:00+01:00",
    "2026-11-27 10:00:00", "2026-11-27", "2026", "2026-11", "2026-11-27T10:00", "2026-11-27T10:00Z",
    "2026-11-27T10:00:00.123456Z", "2026-11-27T10:00:00+0100", "2026-11-27T10:00:00+01",
    "2026-11-27T10:00:00 +01:00", "2026-11-27T10:00:00 UTC", "2026-11-27T10:00:00 America/New_York",
    "2026-1-5 10:00:00", "2026-11-27T25:00:00Z", "2026-02-30", "not a date", "20261127",
    "2026-11-27T10:00:00z", "2026-11-27T10", "2026-11-27 10", "2026-11-27T10:00:00.5",
    "2026-11-27T1:2:3", "2026-11-27T10:00:00-0530", "2026-11-27T10:00:00GMT+1",
    "2026-11-27T10:00:00+14:00", " 2026-11-27T10:00:00Z\u00a0", "2026-11-27T10:00:00.000Z",
    "1969-12-31T23:59:59Z", "2024-02-29T12:00:00Z", "2025-02-29T12:00:00Z",
]
DATES = [
    "2026-11-27", "1997-2-16", "2/16/1997", "02/16/1997", "16/02/1997", "2026-02-30", "2/30/1997",
    "1997-02-16T00:00", "19970216", "1997/02/16", "0002/16/1997", "1997-002-16", "12/31/1999",
    "1/1/2000", "2000-1-1", "10000-01-01", "1-2-2000", "1899-12-31", "1900-01-01", "2026-11-28",
    "2026-11-27", "1980-05-01", " 2/16/1997 ", "2024-02-29", "2/29/2023",
]
NUMBERS = [
    "1", "-1", "12.5", "12.4", "-12.5", "1e2", "01", "+3", "1.0", "3.", ".5", "2147483648", "-0",
    "50.00", "2.555", "2.545", "-2.555", "1.5e1", "abc", "12345678901234567.891", "-0.005",
    "0.005", "1,5", "", " 7 ", "1e-3", "99999999999999999.99",
]


def random_text(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(0, 10)):
        pool = rng.choice([WHITESPACE, LETTERS, LETTERS, OTHER])
        pieces.append(rng.choice(pool))
    return "".join(pieces)


def random_email(rng: random.Random) -> str:
    def word() -> str:
        pool = LETTERS[:12] + ["1", ".", "+", "_", "-"]
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))

    domain = rng.choice(["gmail.com", "GoogleMail.com", "example.co.uk", "exa mple.com", "nodot", "x.y"])
    padding = WHITESPACE + [""]
    return rng.choice(padding) + word() + rng.choice(["@", "@@", "", "@"]) + domain + rng.choice(padding)


def random_phone(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 16)))
    separated = "".join(d + rng.choice(["", "", " ", "-", ".", "\u00a0"]) for d in digits)
    return (rng.choice(["", "+", "00", "(0)", "+44 (0)", " "]) + separated
            + rng.choice(["", " x12", " ext. 4", " extension 7", " #9", "a"]))


COUNTRY_CODES = [("1", "1", "us"), ("44", "0", "gb"), ("33", "0", "fr"), ("39", None, "it"),
                 ("36", "06", "hu"), ("7", "8", "ru"), ("1", "1", None)]


def cases() -> list[tuple]:
    rng = random.Random(20261128)
    rows = []
    texts = TEXT + [random_text(rng) for _ in range(150)] + [random_email(rng) for _ in range(60)] \
        + [random_phone(rng) for _ in range(80)]
    for kind, values in (("text", texts), ("timestamp", TIMESTAMPS), ("date", DATES), ("number", NUMBERS)):
        for value in values:
            calling_code, trunk_prefix, country_code = rng.choice(COUNTRY_CODES)
            rows.append((len(rows), kind, value, calling_code, trunk_prefix, country_code))
    return rows


# Which rules are compared on which values; every text rule on every value.
RULES_BY_KIND = {
    "text": [name for name in MACROS if name not in ("timestamp", "epoch", "date", "integer", "decimal")],
    "timestamp": ["timestamp", "epoch", "trim"],
    "date": ["date", "birth_date", "trim"],
    "number": ["integer", "decimal", "trim"],
}
COLUMNS = "case_id int, kind string, value string, calling_code string, trunk_prefix string, country_code string"


@pytest.fixture(scope="module")
def rule_results(builds):
    import duckdb

    rows = cases()
    frame = builds.spark.createDataFrame(rows, COLUMNS)
    frame.createOrReplaceTempView("cases")
    spark_rows = {row[0]: row for row in builds.spark.sql(builds.spark_compiled_macros).collect()}
    with duckdb.connect() as connection:
        connection.execute("set TimeZone = 'UTC'")
        connection.execute(
            "create table cases (case_id integer, kind varchar, value varchar, calling_code varchar,"
            " trunk_prefix varchar, country_code varchar)"
        )
        connection.executemany("insert into cases values (?, ?, ?, ?, ?, ?)", rows)
        duckdb_rows = {row[0]: row for row in connection.execute(builds.duckdb_compiled_macros).fetchall()}
    return rows, spark_rows, duckdb_rows


def test_every_rule_gives_the_same_value_on_spark_and_duckdb(rule_results):
    rows, spark_rows, duckdb_rows = rule_results
    names = ["case_id", *MACROS]
    differences = []
    for case_id, kind, value, calling_code, trunk_prefix, country_code in rows:
        for rule in RULES_BY_KIND[kind]:
            index = names.index(rule)
            on_spark, on_duckdb = spark_rows[case_id][index], duckdb_rows[case_id][index]
            if rule.startswith("json"):
                same = canonical_json(on_spark) == canonical_json(on_duckdb)
            else:
                same = comparable(on_spark) == comparable(on_duckdb)
            if not same:
                differences.append(
                    f"{rule}({value!r}, calling code {calling_code}, trunk {trunk_prefix}, "
                    f"country {country_code}): Spark {on_spark!r}, DuckDB {on_duckdb!r}"
                )
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences[:40])


def test_spark_nfc_is_unicode_nfc(rule_results):
    """Spark's NFC (a table, since Spark has none) against Python's, on text
    whose combining marks come in canonical order."""
    rows, spark_rows, _ = rule_results
    index = ["case_id", *MACROS].index("nfc")
    wrong = [
        (value, spark_rows[case_id][index], unicodedata.normalize("NFC", value))
        for case_id, kind, value, *_ in rows
        if kind == "text" and value is not None
        and spark_rows[case_id][index] != unicodedata.normalize("NFC", value)
    ]
    assert not wrong, wrong[:10]
