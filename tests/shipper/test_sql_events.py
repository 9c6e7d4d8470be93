"""Events built in DuckDB (`Destination.sql_events`) against the Python reference.

The Python methods `validate` and `to_wire` are the reference (shipper/destinations/sql.py).
For every row the SQL path judges itself (not flagged `python_rows`, passing the hex checks
of `hex_columns`), the SQL reason must be the reason `_prepare` would give, and when it is
NULL the event DuckDB built must parse to exactly what `to_wire` returns. The rows the SQL
leaves to Python must be exactly the rows whose hex checks fail (or that `python_rows`
flags). Then the helpers that path relies on (`rows_not_hex`, `encode_body`, `prefetch`),
and the whole `ship run` with and without `build_events_in_sql`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper import cli
from shipper import delivery as delivery_module
from shipper.destinations.base import check_hashes, encode_body
from shipper.destinations.meta import USER_DATA_KEYS, Meta, MetaSettings
from shipper.destinations.sql import Columns, rows_not_hex
from shipper.destinations.tiktok import USER_KEYS, TikTok, TikTokSettings
from shipper.ledger import fingerprint
from shipper.reader import prefetch, quote_identifier, stream_batches
from tests.shipper.marts import META_CONVERSIONS, TIKTOK_CONVERSIONS, meta_row, sha

DAY = 86_400
# Two clocks: a whole second, and one with a fraction (the window edges fall between
# integers, so `event_time > now` and `< now - days` are tested on both sides).
NOWS = (1_767_225_600.0, 1_767_225_600.75)

# SQL_EVENTS_EXAMPLES=2000 explores further (with a random seed) than the default run,
# which keeps to a fixed seed and few examples (each builds DuckDB tables), so the
# suite stays fast on a slow host; the table of named cases covers each rule anyway.
EXPLORE = int(os.environ.get("SQL_EVENTS_EXAMPLES", "0"))
PROPERTY_SETTINGS = settings(max_examples=EXPLORE or 60, deadline=None, derandomize=not EXPLORE,
                             report_multiple_bugs=False,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.data_too_large])
VARIANT_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=EXPLORE or 20)


# -- the destinations, described for the generator ----------------------------------------


@dataclass(frozen=True)
class Spec:
    make: Callable[[Callable[[], float]], Any]
    contract: Mapping[str, str]  # DuckDB types of docs/marts.md
    required: tuple[str, ...]
    name_column: str
    purchase: str
    identifiers: tuple[str, ...]
    other_text: tuple[str, ...]  # optional text columns sent as they are
    max_age_days: int


META = Spec(
    make=lambda now: Meta(MetaSettings(), None, now=now),
    contract=META_CONVERSIONS,
    required=("event_name", "event_id", "action_source"),
    name_column="event_name",
    purchase="Purchase",
    identifiers=USER_DATA_KEYS,
    other_text=("order_id",),
    max_age_days=MetaSettings().max_event_age_days,
)
TIKTOK = Spec(
    make=lambda now: TikTok(TikTokSettings(), None, now=now),
    contract=TIKTOK_CONVERSIONS,
    required=("event", "event_id"),
    name_column="event",
    purchase="CompletePayment",
    identifiers=USER_KEYS,
    other_text=("order_id", "shop_id", "content_type"),
    max_age_days=TikTokSettings().max_event_age_days,
)
SPECS = {"meta": META, "tiktok": TIKTOK}

ARROW_TYPES = {
    "varchar": pa.string(),
    "bigint": pa.int64(),
    "decimal(18, 2)": pa.decimal128(18, 2),
    "integer": pa.int32(),
}


# -- strategies ------------------------------------------------------------------------------

NASTY = [
    "'", '"', "\\", '\\"', "it's", 'say "hi"', "back\\slash\\", "\x00", "nul\x00inside",
    "tab\there", "line\nbreak", "\r\n", "\x01\x1f\x7f", "\u2028\u2029", "é", "日本語", "😀",
    "👩‍👩‍👧", "\ufeff", "\u00a0", "'; drop table t; --", "%s", "{}", "[]", "null", "\\u0000",
    " ", "Purchase ", "CompletePayment\n",
]
# Text DuckDB can hold (UTF-8: no lone surrogates).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
text = st.one_of(st.sampled_from(NASTY), any_text)
nonempty_text = st.one_of(st.sampled_from(NASTY), any_text.filter(bool))

hex_digest = st.binary(min_size=1, max_size=8).map(lambda raw: hashlib.sha256(raw).hexdigest())


@st.composite
def bad_identifiers(draw: st.DrawFn) -> str:
    digest = draw(hex_digest)
    return draw(st.sampled_from([
        digest.upper(),
        digest[:1].upper() + digest[1:],
        digest[:63],
        digest + "0",
        "g" + digest[1:],
        "é" + digest[1:],  # 64 characters, 65 bytes
        "é" * 32,  # 32 characters, 64 bytes
        " " + digest[1:],
        digest[:32] + "\x00" + digest[33:],
        "",
        draw(text),
    ]))


json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 1e16, 1e22, -0.0, 5e-324, 1.7976931348623157e308, 123456789.125]),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(text, children, max_size=3)),
    max_leaves=8,
)
content_items = st.fixed_dictionaries(
    {"id": text, "quantity": st.integers(-5, 1000), "item_price": st.floats(0, 1e6)},
    optional={"name": text, "extra": json_values},
)


@st.composite
def json_text(draw: st.DrawFn, value: Any) -> str:
    """`value` as JSON text, in one of several layouts."""
    layout = draw(st.sampled_from(["compact", "default", "indent", "ascii", "padded"]))
    if layout == "compact":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if layout == "default":
        return json.dumps(value, ensure_ascii=False)
    if layout == "indent":
        return json.dumps(value, indent=draw(st.sampled_from([1, "\t"])), ensure_ascii=False)
    if layout == "ascii":
        return json.dumps(value)
    padding = st.text(alphabet=" \t\r\n", max_size=3)
    return draw(padding) + json.dumps(value, ensure_ascii=False) + draw(padding)


CONTENTS_EDGES = [
    "[]", "[ ]", " [\n] ", "[{}]", '[{"id":"a"}]', '[ {"id" : "a" , "quantity" : 2} ]',
    '"[]"', '{"id": 1}', "{}", "1", "null", "true", "", " ", "[", "]", "[1,]", "[1,,2]",
    '[{"a":1,}]', "[1]]", "[] []", "[1] x", "['a']", "[.5]", "[01]", "[+1]", "[0x10]",
    "[NaN]", "[ -Infinity ]", '[{"p": NaN}]', "NaN", "Infinity", "[1e400]", "[-1e400]",
    "[1e-400]", "[1E+308]", "[1e99]", "[12345678901234567890123]", "[-9223372036854775809]",
    '["\\ud800"]', '["\\ud83d\\ude00"]', '["\\u0000"]', '["a\tb"]', '["a\x01b"]',
    '["\\/"]', '[{"a":1,"a":2}]', "\ufeff[]", "[]\f", "[\u00a0]", "/*c*/[]", "[]//c",
    '[{"id":"x,nan"}]', '[{"id":"inf"}]', '[[[[[[[[[[1]]]]]]]]]]',
]


@st.composite
def contents_texts(draw: st.DrawFn) -> str | None:
    kind = draw(st.sampled_from(["none", "edge", "items", "any", "broken"]))
    if kind == "none":
        return None
    if kind == "edge":
        return draw(st.sampled_from(CONTENTS_EDGES))
    if kind == "items":
        return draw(json_text(draw(st.lists(content_items, max_size=3))))
    if kind == "any":
        return draw(json_text(draw(json_values)))
    # Valid JSON, then broken: truncated, a character added, a trailing comma.
    base = draw(json_text(draw(st.lists(json_values, min_size=1, max_size=3))))
    how = draw(st.sampled_from(["cut", "insert", "comma"]))
    if how == "cut":
        return base[:draw(st.integers(0, max(0, len(base) - 1)))]
    if how == "comma":
        return base.rstrip()[:-1] + ",]" if base.rstrip().endswith("]") else base + ","
    at = draw(st.integers(0, len(base)))
    return base[:at] + draw(st.sampled_from(list(",:[]{}\"'\\ x0\t\x00é"))) + base[at:]


values = st.one_of(
    st.integers(-(10**18) + 1, 10**18 - 1).map(lambda cents: Decimal(cents).scaleb(-2)),
    st.integers(-100_000, 100_000).map(lambda cents: Decimal(cents).scaleb(-2)),
    st.sampled_from([Decimal("0.00"), Decimal("-0.00"), Decimal("9999999999999999.99"),
                     Decimal("-9999999999999999.99"), Decimal("0.01"), Decimal("12.34")]),
)
CURRENCIES_BAD = ["", "usd", "Usd", "US", "USDD", "ÜSD", " USD", "USD ", "U$D", "USD\n",
                  "ＵＳＤ", "\x00US"]


def edge_times(now: float, days: int) -> list[int]:
    oldest = now - days * DAY
    times = {math.floor(now), math.ceil(now), math.floor(now) + 1, math.floor(now) - 1,
             math.floor(oldest), math.ceil(oldest), math.floor(oldest) - 1,
             math.ceil(oldest) + 1}
    return sorted(times) + [0, -1, -(2**63), 2**63 - 1, 2**53 + 1, int(now) + DAY * 365]


MUTATIONS = st.sampled_from([0, 0, 1, 1, 2, 3])  # how many things a row gets wrong


@st.composite
def rows(draw: st.DrawFn, spec: Spec, now: float,
         mutations: st.SearchStrategy[int] = MUTATIONS) -> dict[str, Any]:
    """A valid row, then a few things made wrong (or odd but valid)."""
    oldest = now - spec.max_age_days * DAY
    row: dict[str, Any] = {name: None for name in spec.contract}
    row[spec.name_column] = draw(st.sampled_from([spec.purchase, spec.purchase, "Lead",
                                                  "AddToCart"]))
    row["event_time"] = draw(st.integers(math.ceil(oldest), math.floor(now)))
    row["event_id"] = draw(nonempty_text)
    if "action_source" in row:
        row["action_source"] = draw(st.sampled_from(["physical_store", "phone_call"]))
    present = draw(st.lists(st.sampled_from(spec.identifiers), min_size=1, unique=True,
                            max_size=len(spec.identifiers)))
    for key in present:
        row[key] = draw(hex_digest)
    if row[spec.name_column] == spec.purchase or draw(st.booleans()):
        row["value"] = draw(values)
        row["currency"] = draw(st.sampled_from(["USD", "EUR", "JPY"]))
    for name in spec.other_text:
        row[name] = draw(st.one_of(st.none(), text))
    row["contents"] = draw(contents_texts())
    if "num_items" in row:
        row["num_items"] = draw(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)))

    for _ in range(draw(mutations)):
        what = draw(st.sampled_from([
            "required", "event_time", "event_name", "value", "currency", "identifier",
            "no_identifier", "contents", "text",
        ]))
        if what == "required":
            row[draw(st.sampled_from(spec.required))] = draw(st.sampled_from([None, ""]))
        elif what == "event_time":
            row["event_time"] = draw(st.one_of(st.none(),
                                               st.sampled_from(edge_times(now, spec.max_age_days)),
                                               st.integers(-(2**63), 2**63 - 1)))
        elif what == "event_name":
            row[spec.name_column] = draw(st.one_of(
                st.sampled_from([spec.purchase, spec.purchase.lower(), spec.purchase + " "]),
                nonempty_text))
        elif what == "value":
            row["value"] = draw(st.one_of(st.none(), values))
        elif what == "currency":
            row["currency"] = draw(st.one_of(st.none(), st.sampled_from(CURRENCIES_BAD), text))
        elif what == "identifier":
            row[draw(st.sampled_from(spec.identifiers))] = draw(
                st.one_of(st.none(), bad_identifiers()))
        elif what == "no_identifier":
            for key in spec.identifiers:
                row[key] = None
        elif what == "contents":
            row["contents"] = draw(contents_texts())
        else:
            name = draw(st.sampled_from([*spec.required, *spec.other_text]))
            row[name] = draw(text)
    return row


# -- running both paths on a table ---------------------------------------------------------


def _table(con: duckdb.DuckDBPyConnection, columns: Mapping[str, pa.DataType],
           records: Sequence[Mapping[str, Any]]) -> str:
    """A table `t` holding `records`, with the Arrow types given (DuckDB maps them)."""
    records = [{**record, "delivery_key": f"k{index}"} for index, record in enumerate(records)]
    schema = pa.schema([("delivery_key", pa.string()),
                        *((name, kind) for name, kind in columns.items()
                          if name != "delivery_key")])
    source = pa.Table.from_pylist(records, schema=schema)
    con.register("source_rows", source)
    try:
        con.execute("create or replace table t as select * from source_rows")
    finally:
        con.unregister("source_rows")
    return "t"


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON: a platform cannot parse this event")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)


def python_outcome(destination: Any, row: dict[str, Any]) -> tuple[str | None, Any]:
    """What `delivery._prepare` makes of a row: (reason, event)."""
    try:
        event = destination.to_wire(row)
        fingerprint(event)
    except (TypeError, ValueError, KeyError) as exc:
        event, wire_problem = None, f"row cannot become an event ({type(exc).__name__})"
    else:
        wire_problem = None
    return destination.validate(row) or wire_problem, event


@dataclass
class Compared:
    sql_judged: int = 0
    sql_valid: int = 0
    to_python: int = 0


def compare_paths(con: duckdb.DuckDBPyConnection, destination: Any, relation: str,
                  *, read_batch_rows: int = 7) -> Compared:
    """Stream `relation` the way `_Shipment.run` does with the SQL events, and check every
    row against the Python methods."""
    selected = ", ".join(quote_identifier(column) for column in destination.columns)
    described = con.sql(f"select {selected} from {relation} limit 0")
    types = dict(zip(described.columns, (str(kind) for kind in described.types), strict=True))
    built = destination.sql_events(Columns(types))
    assert built is not None
    pending = (f"select {selected}, cast(null as varchar) as __ledger_status, "
               f"cast(null as varchar) as __ledger_fingerprint, "
               f"cast(null as varchar) as __ledger_rejected_by from {relation}")
    sql = delivery_module._with_sql_events(pending, built)
    compared = Compared()
    for batch in stream_batches(con, sql, None, read_batch_rows):
        names = batch.schema.names
        not_hex: set[int] = set()
        for name in built.hex_columns:
            not_hex.update(rows_not_hex(batch.column(names.index(name))))
        records = batch.select(list(destination.columns)).to_pylist()
        flags = batch.column(names.index("__python")).to_pylist()
        reasons = batch.column(names.index("__reason")).to_pylist()
        events = batch.column(names.index("__event")).to_pylist()
        for index, row in enumerate(records):
            # rows_not_hex flags exactly the rows whose hex check fails in Python.
            hex_problem = check_hashes(row, built.hex_columns)
            assert (index in not_hex) == (hex_problem is not None), (row, hex_problem)
            expected_reason, expected_event = python_outcome(destination, dict(row))
            if flags[index] or index in not_hex:
                compared.to_python += 1
                continue
            compared.sql_judged += 1
            assert reasons[index] == expected_reason, {
                "row": row, "sql_reason": reasons[index], "python_reason": expected_reason}
            if reasons[index] is None:
                compared.sql_valid += 1
                text = events[index]
                assert isinstance(text, bytes)
                built_event = json.loads(text, parse_constant=_not_json)
                assert _canonical(built_event) == _canonical(expected_event), {
                    "row": row, "sql_event": text.decode(), "python_event": expected_event}
    return compared


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def _contract_columns(spec: Spec) -> dict[str, pa.DataType]:
    return {name: ARROW_TYPES[kind] for name, kind in spec.contract.items()}


# -- 1. parity, row by row -------------------------------------------------------------------


def _check_contract(con: duckdb.DuckDBPyConnection, spec: Spec, now: float,
                    records: list[dict[str, Any]]) -> Compared:
    destination = spec.make(lambda: now)
    relation = _table(con, _contract_columns(spec), records)
    return compare_paths(con, destination, relation)


@st.composite
def batches(draw: st.DrawFn, spec: Spec) -> tuple[float, list[dict[str, Any]]]:
    now = draw(st.sampled_from(NOWS))
    return now, draw(st.lists(rows(spec, now), min_size=1, max_size=12))


@PROPERTY_SETTINGS
@given(case=batches(META))
def test_meta_sql_events_match_validate_and_to_wire(con, case):
    now, records = case
    _check_contract(con, META, now, records)


@PROPERTY_SETTINGS
@given(case=batches(TIKTOK))
def test_tiktok_sql_events_match_validate_and_to_wire(con, case):
    now, records = case
    _check_contract(con, TIKTOK, now, records)


@pytest.mark.parametrize("name", ["meta", "tiktok"])
def test_every_kind_of_row_once(con, name):
    """Each named case in one table: the property tests draw these too, but a regression
    should point at the row by name."""
    spec = SPECS[name]
    now = NOWS[1]
    oldest = now - spec.max_age_days * DAY
    base = {key: None for key in spec.contract}
    base.update({spec.name_column: spec.purchase, "event_time": int(now) - 3600,
                 "event_id": "evt", "value": Decimal("12.34"), "currency": "USD",
                 spec.identifiers[0]: sha("a"), spec.identifiers[1]: sha("b"),
                 "contents": '[{"id": "sku-1", "quantity": 1, "item_price": 10.5}]'})
    if "action_source" in base:
        base["action_source"] = "physical_store"
    hashed = spec.identifiers[0]
    cases: dict[str, dict[str, Any]] = {
        "valid": {},
        "valid, not a purchase, no value": {spec.name_column: "Lead", "value": None,
                                            "currency": None},
        "valid, not a purchase, lower-case currency": {spec.name_column: "Lead",
                                                       "value": None, "currency": "usd"},
        "valid at now": {"event_time": math.floor(now)},
        "valid at the oldest second": {"event_time": math.ceil(oldest)},
        "future by a fraction": {"event_time": math.ceil(now)},
        "too old by a fraction": {"event_time": math.floor(oldest)},
        "event_time NULL": {"event_time": None},
        "value NULL": {"value": None},
        "value zero": {"value": Decimal("0.00")},
        "value large": {"value": Decimal("9999999999999999.99")},
        "currency NULL": {"currency": None},
        "currency empty": {"currency": ""},
        "currency lower": {"currency": "usd"},
        "currency 2 letters": {"currency": "US"},
        "currency 4 letters": {"currency": "USDD"},
        "no identifier": {key: None for key in spec.identifiers},
        "identifier upper hex": {hashed: sha("a").upper()},
        "identifier 63 chars": {hashed: sha("a")[:63]},
        "identifier non-hex": {hashed: "z" * 64},
        "identifier non-ascii": {hashed: "é" + sha("a")[1:]},
        "contents NULL": {"contents": None},
        "contents []": {"contents": "[]"},
        "contents with whitespace": {"contents": ' \n[ {"id" : "a"} ,\t2 ]\r\n'},
        "contents invalid": {"contents": "[{"},
        "contents object": {"contents": '{"id": "a"}'},
        "contents trailing comma": {"contents": "[1,]"},
        "contents NaN": {"contents": "[NaN]"},
        "contents huge exponent": {"contents": "[1e400]"},
        "strings with quotes": {"event_id": 'a"b\'c\\d\x00e\x1f😀日本', "order_id": "\\\""},
        **{f"{key} missing": {key: None} for key in spec.required},
        **{f"{key} empty": {key: ""} for key in spec.required},
    }
    records = [{**base, **overrides} for overrides in cases.values()]
    compared = _check_contract(con, spec, now, records)
    assert compared.sql_valid >= 8
    assert compared.to_python >= 6


@pytest.mark.parametrize("name", ["meta", "tiktok"])
@pytest.mark.parametrize("contents", [
    # Python reads 400 digits without an exponent as float('inf'), which the fingerprint
    # (allow_nan=False) refuses; DuckDB keeps the digits.
    pytest.param("[1" + "0" * 400 + ".0]", id="400-digit-float"),
    # Python refuses integers past 4,300 digits (sys.get_int_max_str_digits).
    pytest.param("[1" + "0" * 4400 + "]", id="4400-digit-int"),
    # Python's json gives up past ~1,000 levels (RecursionError); DuckDB does not.
    pytest.param("[" * 1000 + "]" * 1000, id="nesting-1000"),
])
def test_json_contents_python_cannot_take(con, name, contents):
    spec = SPECS[name]
    now = NOWS[0]
    row = {key: None for key in spec.contract}
    row.update({spec.name_column: "Lead", "event_time": int(now) - 60, "event_id": "evt",
                spec.identifiers[0]: sha("a"), "contents": contents})
    if "action_source" in row:
        row["action_source"] = "physical_store"
    _check_contract(con, spec, now, [row])


# -- 1b. column types a Parquet export may hold ----------------------------------------------

ITEM_FIELDS = {
    "double": pa.float64(),
    "decimal": pa.decimal128(10, 2),
}


def _item_structs(price: str) -> st.SearchStrategy[Any]:
    if price == "double":  # a Parquet double may hold NaN or infinity
        prices: st.SearchStrategy[Any] = st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf]), st.floats())
    else:
        prices = st.integers(-10**6, 10**6).map(lambda cents: Decimal(cents).scaleb(-2))
    item = st.fixed_dictionaries({
        "id": st.one_of(st.none(), text),
        "quantity": st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
        "item_price": st.one_of(st.none(), prices),
    })
    return st.one_of(st.none(), st.lists(st.one_of(item, st.none()), max_size=3))


def _variant_values(variant: str) -> tuple[str, pa.DataType, st.SearchStrategy[Any]]:
    """(column, Arrow type, values) of a variant table."""
    if variant.startswith("contents list of struct"):
        price = variant.rsplit(" ", 1)[1]
        kind = pa.list_(pa.struct([("id", pa.string()), ("quantity", pa.int32()),
                                   ("item_price", ITEM_FIELDS[price])]))
        return "contents", kind, _item_structs(price)
    if variant == "event_time timestamp":
        stamps = st.datetimes(min_value=dt.datetime(1970, 1, 1),
                              max_value=dt.datetime(2100, 1, 1))
        return "event_time", pa.timestamp("us"), st.one_of(st.none(), stamps)
    if variant == "event_time varchar":
        return "event_time", pa.string(), st.one_of(
            st.none(), st.integers(0, 2**40).map(str), text,
            st.sampled_from([str(int(NOWS[0]) - 60), " 1767225540", "1767225540.0"]))
    if variant == "value varchar":
        return "value", pa.string(), st.one_of(
            st.none(), values.map(str),
            st.sampled_from(["12.50", " 12.5 ", "1_000", "1e3", "1e400", "-inf", "nan", "NaN",
                             "Infinity", "", " ", "abc", "12,50", "١٢", "0x10", "+5", ".5",
                             "5."]),
            text)
    if variant == "value double":
        return "value", pa.float64(), st.one_of(
            st.none(), st.floats(), st.sampled_from([0.1, 1e300, 12.5, -0.0]))
    raise AssertionError(variant)


VARIANTS = [
    "contents list of struct double",
    "contents list of struct decimal",
    "event_time timestamp",
    "event_time varchar",
    "value varchar",
    "value double",
]


@st.composite
def variant_batches(draw: st.DrawFn, spec: Spec, variant: str):
    column, kind, replacement = _variant_values(variant)
    now = draw(st.sampled_from(NOWS))
    # Few other problems: the column of the variant is what is tested.
    records = draw(st.lists(rows(spec, now, st.sampled_from([0, 0, 0, 1])), min_size=1,
                            max_size=10))
    for record in records:
        if draw(st.integers(0, 4)):  # mostly replaced; sometimes the contract's NULL
            record[column] = draw(replacement)
        elif column != "value":
            record[column] = None
    return now, column, kind, records


def _variant_test(con, spec: Spec, variant: str, case) -> Compared:
    now, column, kind, records = case
    if column == "value":
        records = [{**record, "value": None if record["value"] is None else
                    (str(record["value"]) if kind == pa.string() else float(record["value"]))}
                   if isinstance(record["value"], Decimal) else record
                   for record in records]
    columns = {**_contract_columns(spec), column: kind}
    relation = _table(con, columns, records)
    return compare_paths(con, spec.make(lambda: now), relation)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", ["meta", "tiktok"])
def test_sql_events_on_other_column_types(con, name, variant):
    spec = SPECS[name]

    @VARIANT_SETTINGS
    @given(case=variant_batches(spec, variant))
    def check(case):
        _variant_test(con, spec, variant, case)

    check()


@pytest.mark.parametrize("name", ["meta", "tiktok"])
@pytest.mark.parametrize(("price_type", "price"), [
    pytest.param(pa.float64(), math.nan, id="double-nan"),
    pytest.param(pa.float64(), -math.inf, id="double-infinity"),
    pytest.param(pa.decimal128(10, 2), Decimal("10.50"), id="decimal"),
])
def test_contents_list_values_python_cannot_send(con, name, price_type, price):
    """A contents list whose items hold what JSON has no number for (NaN, infinity), or a
    decimal: the fingerprint refuses the row in Python (ValueError, TypeError)."""
    spec = SPECS[name]
    now = NOWS[0]
    row = {key: None for key in spec.contract}
    row.update({spec.name_column: "Lead", "event_time": int(now) - 60, "event_id": "evt",
                spec.identifiers[0]: sha("a"),
                "contents": [{"id": "sku", "quantity": 1, "item_price": price}]})
    if "action_source" in row:
        row["action_source"] = "physical_store"
    kind = pa.list_(pa.struct([("id", pa.string()), ("quantity", pa.int32()),
                               ("item_price", price_type)]))
    relation = _table(con, {**_contract_columns(spec), "contents": kind}, [row])
    compare_paths(con, spec.make(lambda: now), relation)


@pytest.mark.parametrize("name", ["meta", "tiktok"])
@pytest.mark.parametrize("value", ["12.50", " 7 ", "1_000", "abc", "", "nan", "1e400", "١٢",
                                   "\u00a05"])
def test_value_as_text(con, name, value):
    """`value` held as text (Columns.not_number handles it): a value Python cannot turn into
    a finite float is "row cannot become an event (ValueError)"; the others are sent."""
    spec = SPECS[name]
    now = NOWS[0]
    row = {key: None for key in spec.contract}
    row.update({spec.name_column: spec.purchase, "event_time": int(now) - 60,
                "event_id": "evt", spec.identifiers[0]: sha("a"), "value": value,
                "currency": "USD"})
    if "action_source" in row:
        row["action_source"] = "physical_store"
    relation = _table(con, {**_contract_columns(spec), "value": pa.string()}, [row])
    compare_paths(con, spec.make(lambda: now), relation)


def test_event_time_of_another_type_is_not_unix_seconds(con):
    now = NOWS[0]
    records = [meta_row(1, event_time=None), meta_row(2, event_time=None)]
    records[1]["event_time"] = dt.datetime(2025, 12, 31, 12)
    for record in records:
        record["value"] = Decimal(record["value"])
    columns = {**_contract_columns(META), "event_time": pa.timestamp("us")}
    relation = _table(con, columns, records)
    destination = META.make(lambda: now)
    selected = ", ".join(quote_identifier(column) for column in destination.columns)
    described = con.sql(f"select {selected} from {relation} limit 0")
    built = destination.sql_events(Columns(dict(zip(
        described.columns, (str(kind) for kind in described.types), strict=True))))
    reasons = con.sql(f"select {built.reason} from {relation} order by delivery_key").fetchall()
    assert reasons == [("event_time is missing",), ("event_time is not unix seconds",)]
    compare_paths(con, destination, relation)


def _meta_table(con, records: list[dict[str, Any]]) -> str:
    for record in records:
        if isinstance(record["value"], str):
            record["value"] = Decimal(record["value"])
    return _table(con, _contract_columns(META), records)


def _stream_with_the_shipper_wrapper(con, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows, reasons and events as `_Shipment.run` streams them (`_with_sql_events`)."""
    destination = META.make(time.time)
    relation = _meta_table(con, records)
    selected = ", ".join(quote_identifier(column) for column in destination.columns)
    types = {name: kind.upper().replace(", ", ",") for name, kind in META_CONVERSIONS.items()}
    built = destination.sql_events(Columns(types))
    pending = (f"select {selected}, cast(null as varchar) as __ledger_status, "
               f"cast(null as varchar) as __ledger_fingerprint, "
               f"cast(null as varchar) as __ledger_rejected_by from {relation} "
               f"order by delivery_key")
    sql = delivery_module._with_sql_events(pending, built)
    return [row for batch in stream_batches(con, sql, None, 100) for row in batch.to_pylist()]


def test_with_sql_events_takes_non_ascii_events(con):
    """A valid event holding a non-ASCII character (an order id, a product name in contents)
    comes out of the shipper's wrapper as its UTF-8 bytes."""
    row = meta_row(1, order_id="SO-é-😀", contents='[{"id": "sku", "name": "Café"}]')
    (streamed,) = _stream_with_the_shipper_wrapper(con, [row])
    assert streamed["__reason"] is None
    event = json.loads(streamed["__event"])
    assert event["custom_data"]["order_id"] == "SO-é-😀"
    assert event["custom_data"]["contents"] == [{"id": "sku", "name": "Café"}]


def test_with_sql_events_survives_a_non_ascii_identifier(con):
    """A row with a non-ASCII identifier is left to Python (rows_not_hex) and never sent; it
    must not stop the valid rows streamed with it."""
    rows_in = [meta_row(1), meta_row(2, em="é" + sha("2")[1:])]
    streamed = _stream_with_the_shipper_wrapper(con, rows_in)
    assert [row["delivery_key"] for row in streamed] == ["k0", "k1"]
    assert rows_not_hex(pa.array([row["em"] for row in streamed])) == [1]


# -- 2. rows_not_hex -------------------------------------------------------------------------

H = [sha(str(index)) for index in range(8)]


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_rows_not_hex(kind):
    def check(values: list[Any], expected: list[int]) -> None:
        assert rows_not_hex(pa.array(values, kind)) == expected

    check(H, [])
    check([], [])
    check([None, None], [])
    check([H[0], None, H[1], None], [])
    check([H[0], H[1], "x" * 64, H[2]], [2])
    check([H[0], H[1].upper(), H[2]], [1])
    check([H[0], "A" + H[1][1:], None], [1])
    check([H[0], H[1][:63], H[2]], [1])
    check([H[0], H[1] + "a", H[2]], [1])
    check([H[0], "", H[2]], [1])
    check([H[0], "é" + H[1][1:], H[2]], [1])  # 64 characters, 65 bytes
    check(["é" * 32, H[2]], [0])  # 64 bytes, 32 characters
    check([H[0], H[1][:32] + "\x00" + H[1][33:]], [1])
    check([H[0][:63], H[1] + "0"], [0, 1])  # lengths average to 64
    check([None, "G" * 64, None, H[3], "bad"], [1, 4])


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_rows_not_hex_on_slices(kind):
    values = ["bad", H[0], H[1], None, H[2], "X" * 64, H[3]]
    array = pa.array(values, kind)
    # Slices see only their own values, and report indexes within the slice.
    assert rows_not_hex(array.slice(1, 4)) == []
    assert rows_not_hex(array.slice(1, 5)) == [4]
    assert rows_not_hex(array.slice(0, 2)) == [0]
    assert rows_not_hex(array.slice(6)) == []
    assert rows_not_hex(array.slice(5, 1)) == [0]
    assert rows_not_hex(array.slice(3, 1)) == []
    assert rows_not_hex(array.slice(2, 0)) == []
    # The bytes next to a slice are hex-free garbage: the fast path must not read them.
    assert rows_not_hex(pa.array(["zz", H[0], H[1], "zz"], kind).slice(1, 2)) == []
    assert rows_not_hex(pa.array([H[0], H[1], "z" * 64], kind).slice(0, 2)) == []
    # A slice of a record batch column, as pyarrow hands out after take/filter.
    batch = pa.record_batch({"em": pa.array(values, kind)})
    assert rows_not_hex(batch.slice(1, 5).column(0)) == [4]


def test_rows_not_hex_on_other_types():
    # A non-string column cannot hold a hash: every present value is flagged, as
    # check_hashes does (its value is not a str).
    assert rows_not_hex(pa.array([1, None, 2])) == [0, 2]
    assert rows_not_hex(pa.array([None, None], pa.int64())) == []
    assert rows_not_hex(pa.array([H[0].encode(), None], pa.binary())) == [0]
    assert rows_not_hex(pa.array([None, H[0]], pa.string()).slice(1)) == []


@given(values=st.lists(st.one_of(st.none(), hex_digest, bad_identifiers()), max_size=12),
       start=st.integers(0, 12), large=st.booleans())
@settings(max_examples=200, deadline=None)
def test_rows_not_hex_matches_check_hashes(values, start, large):
    array = pa.array(values, pa.large_string() if large else pa.string()).slice(start)
    expected = [index for index, value in enumerate(values[start:])
                if check_hashes({"k": value}, ["k"]) is not None]
    assert rows_not_hex(array) == expected


# -- 3. encode_body --------------------------------------------------------------------------


def test_encode_body_inlines_bytes_as_raw_json():
    body = {"data": [b'{"a":1}', b'{"b":"x"}'], "k": "v"}
    encoded = encode_body(body)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == {"data": [{"a": 1}, {"b": "x"}], "k": "v"}
    assert encoded == b'{"data":[{"a":1},{"b":"x"}],"k":"v"}'


def test_encode_body_mixes_dicts_and_bytes():
    body = {"data": [{"a": "é\"\\"}, b'{"b":"\xc3\xa9"}', {"c": None}], "n": 1.5}
    assert json.loads(encode_body(body)) == {
        "data": [{"a": "é\"\\"}, {"b": "é"}, {"c": None}], "n": 1.5}


def test_encode_body_without_bytes_is_plain_compact_json():
    body = {"data": [{"a": 1, "é": ["x", None, True]}], "test_event_code": "T1"}
    encoded = encode_body(body)
    assert encoded == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(encoded) == body


def test_encode_body_refuses_its_own_placeholder():
    from shipper.destinations import base

    with pytest.raises(ValueError, match="placeholder"):
        encode_body({"data": [b'{"a":1}'], "k": base._RAW_MARK})
    with pytest.raises(ValueError, match="placeholder"):
        encode_body({"data": [b'{"a":1}', {base._RAW_MARK: 1}]})
    # The placeholder text alone is just a string.
    assert json.loads(encode_body({"k": base._RAW_MARK})) == {"k": base._RAW_MARK}
    # After a refusal the next body encodes normally.
    assert encode_body({"data": [b"[1]"]}) == b'{"data":[[1]]}'


def test_encode_body_refuses_what_json_cannot_hold():
    with pytest.raises(ValueError):
        encode_body({"data": [float("nan")]})
    with pytest.raises(TypeError):
        encode_body({"data": [object()]})
    # The collected bytes of a failed body do not leak into the next one.
    assert encode_body({"data": [b"2"]}) == b'{"data":[2]}'


def test_encode_body_from_many_threads():
    def body(index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        raw = [json.dumps({"i": index, "j": j, "s": "x" * (index % 7)}).encode()
               for j in range(index % 5 + 1)]
        mixed = [raw[j] if j % 2 else json.loads(raw[j]) for j in range(len(raw))]
        return ({"data": mixed, "k": f"v{index}"},
                {"data": [json.loads(item) for item in raw], "k": f"v{index}"})

    cases = [body(index) for index in range(400)]

    def encode(case: tuple[dict[str, Any], dict[str, Any]]) -> bytes:
        return encode_body(case[0])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(encode, cases))
    for (_body, expected), result in zip(cases, results, strict=True):
        assert json.loads(result) == expected


# -- 4. the whole run, with and without build_events_in_sql ----------------------------------


FLAVOURS = ["plain", "escapes", "non-ascii"]


def _e2e_rows(flavour: str) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """(mart rows, event ids of the valid rows, delivery keys the SQL path leaves to Python).

    "escapes": ids hold quotes, backslashes and control characters (JSON escapes them);
    "non-ascii": also non-ASCII text (as real order ids, product names, emoji may), and one
    invalid row a non-ASCII identifier."""
    non_ascii = flavour == "non-ascii"
    nasty = {"plain": "plain id", "escapes": 'q"uote\'s \\back\\slash \x01 \x7f',
             "non-ascii": 'q"uote\'s é 😀 日本'}[flavour]
    valid = [meta_row(i) for i in range(20)]
    valid[1]["event_id"] = nasty
    valid[2]["order_id"] = nasty + ("\n\t" if flavour != "plain" else "")
    valid[3]["contents"] = ' [ {"id" : "a" ,\n "quantity" : 2} ]\n'
    valid[4]["contents"] = None
    valid[5]["contents"] = "[]"
    valid[6]["value"] = "9999999999999999.99"
    valid[7]["num_items"] = None
    valid[8].update(event_name="Lead", value=None, currency=None)
    valid[9].update(em=None, ph=None, country=None, external_id=sha("x"))
    # Valid, but the contents look like NaN to the quick pattern: built by Python.
    valid[10]["contents"] = '[{"id": "x,nan"}]'
    python_keys = {"order-10"}
    if non_ascii:
        valid[11]["contents"] = '[{"id": "\\ud83d\\ude00", "name": "Café crème"}]'
        valid[12]["contents"] = '[{"id": "sku", "name": "Café crème"}]'
        python_keys.add("order-11")
    invalid = [
        meta_row(100, value=None),
        meta_row(101, currency="usd"),
        meta_row(102, currency=""),
        meta_row(103, age_seconds=8 * DAY),
        meta_row(104, age_seconds=-3600 - 700),
        meta_row(105, **{key: None for key in USER_DATA_KEYS}),
        meta_row(106, contents='{"id": 1}'),
        meta_row(107, event_id=""),
        meta_row(108, action_source=None),
        meta_row(109, contents="[{"),
        # These go to the Python methods (bad hex; DuckDB's reader takes them).
        meta_row(110, em=sha("110").upper()),
        meta_row(111, contents="[1,]"),
        meta_row(112, contents="[NaN]"),
        meta_row(113, ph=sha("113")[:63]),
    ]
    python_keys.update({"order-110", "order-111", "order-112", "order-113"})
    for index in range(114, 130):  # more of the same, so reasons count above one
        if index % 2:
            invalid.append(meta_row(index, value=None))
        else:
            invalid.append(meta_row(index, fn=sha(str(index)).upper()))
            python_keys.add(f"order-{index}")
    if non_ascii:
        invalid.append(meta_row(130, zp="é" + sha("130")[1:]))
        python_keys.add("order-130")
    return valid + invalid, {row["event_id"] for row in valid}, python_keys


@pytest.fixture
def spies(monkeypatch):
    """Records the reports of each `ship run`, the SQL wrappers built, and the rows
    `Meta.to_wire` saw."""
    seen: dict[str, list[Any]] = {"reports": [], "sql": [], "to_wire": []}
    print_summary = cli.print_summary

    def keep_reports(reports, run_id):
        seen["reports"].append(list(reports))
        return print_summary(reports, run_id)

    with_sql_events = delivery_module._with_sql_events

    def keep_sql(pending_sql, built):
        seen["sql"].append(built)
        return with_sql_events(pending_sql, built)

    to_wire = Meta.to_wire

    def keep_rows(self, row):
        seen["to_wire"].append(row.get("delivery_key"))
        return to_wire(self, row)

    monkeypatch.setattr(cli, "print_summary", keep_reports)
    monkeypatch.setattr(delivery_module, "_with_sql_events", keep_sql)
    monkeypatch.setattr(Meta, "to_wire", keep_rows)
    return seen


def _outbox_events(directory: Path) -> list[str]:
    files = sorted((directory / "meta").glob("*.json"))
    assert files
    return sorted(_canonical(event) for path in files
                  for event in json.loads(path.read_bytes())["data"])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_dry_runs_with_and_without_sql_events_agree(workspace, spies, flavour):
    records, valid_ids, python_keys = _e2e_rows(flavour)
    workspace.meta_mart(records)
    workspace.env(META_BATCH_SIZE="7")

    assert workspace.ship("run", "meta", "--dry-run", "--outbox", "out_sql") == 1
    assert len(spies["sql"]) == 1
    assert set(spies["to_wire"]) == python_keys  # only those rows went through Python
    (sql_report,) = spies["reports"][-1]

    spies["to_wire"].clear()
    workspace.env(META_BUILD_EVENTS_IN_SQL="false")
    assert workspace.ship("run", "meta", "--dry-run", "--outbox", "out_py") == 1
    assert len(spies["sql"]) == 1  # not built in SQL this time
    assert len(spies["to_wire"]) == len(records)
    (python_report,) = spies["reports"][-1]

    sql_events = _outbox_events(workspace.root / "out_sql")
    python_events = _outbox_events(workspace.root / "out_py")
    assert sql_events == python_events
    assert sorted(json.loads(event)["event_id"] for event in sql_events) == sorted(valid_ids)
    assert sql_report.counts.rejected_by_reason == python_report.counts.rejected_by_reason
    assert (sql_report.counts.read, sql_report.counts.sent, sql_report.counts.rejected) == (
        python_report.counts.read, python_report.counts.sent, python_report.counts.rejected)
    expected = {
        "value is missing": 9,
        "currency is not a 3-letter upper-case ISO 4217 code": 1,
        "currency is missing": 1,
        "event_time is older than 7 days": 1,
        "event_time is in the future": 1,
        "no user data (every identifier is NULL)": 1,
        "contents is not a JSON array": 3,
        "event_id is missing": 1,
        "action_source is missing": 1,
        "em is not a 64-character lower-case hex SHA-256": 1,
        "ph is not a 64-character lower-case hex SHA-256": 1,
        "fn is not a 64-character lower-case hex SHA-256": 8,
        "row cannot become an event (ValueError)": 1,
    }
    if flavour == "non-ascii":
        expected["zp is not a 64-character lower-case hex SHA-256"] = 1
    assert sql_report.counts.rejected_by_reason == expected


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_live_run_with_sql_events_sends_each_valid_event_once(workspace, spies, flavour):
    fake = workspace.meta()
    records, valid_ids, _python_keys = _e2e_rows(flavour)
    workspace.meta_mart(records)
    workspace.env(META_BATCH_SIZE="7")

    assert workspace.ship("run", "meta", "--dry-run", "--outbox", "out_sql") == 1
    assert workspace.ship("run", "meta") == 1
    assert len(spies["sql"]) == 2
    assert sorted(fake.accepted_ids) == sorted(valid_ids)
    assert fake.duplicates() == {}
    # What went on the wire is what the dry run wrote.
    assert sorted(_canonical(event) for event in fake.accepted) == _outbox_events(
        workspace.root / "out_sql")
    assert workspace.statuses("meta") == {"delivered": len(valid_ids),
                                          "rejected": len(records) - len(valid_ids)}
    (report,) = spies["reports"][-1]
    assert report.counts.accepted == len(valid_ids)
    assert report.counts.failed == 0

    requests = len(fake.requests)
    workspace.ship("run", "meta")
    assert len(fake.requests) == requests
    assert sorted(fake.accepted_ids) == sorted(valid_ids)
    (rerun,) = spies["reports"][-1]
    assert rerun.counts.sent == 0
    assert rerun.counts.accepted == 0
    assert rerun.counts.skipped >= len(valid_ids)


# -- 5. prefetch -----------------------------------------------------------------------------


def _threads_back_to(count: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if threading.active_count() <= count:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("depth", [1, 3])
def test_prefetch_yields_every_item_in_order(depth):
    before = threading.active_count()
    assert list(prefetch(iter(range(500)), depth=depth)) == list(range(500))
    assert list(prefetch(iter([]), depth=depth)) == []
    assert _threads_back_to(before)


def test_prefetch_reads_ahead_in_another_thread():
    where: list[str] = []

    def source() -> Iterator[int]:
        for index in range(3):
            where.append(threading.current_thread().name)
            yield index

    assert list(prefetch(source())) == [0, 1, 2]
    assert set(where) == {"mart-reader"}


def test_prefetch_raises_the_source_error_in_the_consumer():
    before = threading.active_count()
    failure = RuntimeError("the mart went away")

    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise failure

    got: list[int] = []
    with pytest.raises(RuntimeError) as raised:
        got.extend(prefetch(source()))  # keeps the items taken before the error
    assert raised.value is failure
    assert got == [1, 2]
    assert _threads_back_to(before)


@pytest.mark.parametrize("depth", [1, 4])
def test_closing_prefetch_early_stops_the_thread(depth):
    before = threading.active_count()
    pulled = [0]

    def endless() -> Iterator[int]:
        while True:
            pulled[0] += 1
            yield pulled[0]

    batches = prefetch(endless(), depth=depth)
    assert [next(batches) for _ in range(3)] == [1, 2, 3]
    started = time.monotonic()
    batches.close()
    assert time.monotonic() - started < 5
    assert _threads_back_to(before)
    # The reader stopped: it did not go on pulling from the source.
    assert pulled[0] <= 3 + depth + 2
    count = pulled[0]
    time.sleep(0.05)
    assert pulled[0] == count


def test_closing_prefetch_while_the_source_is_slow():
    before = threading.active_count()

    def slow() -> Iterator[int]:
        for index in range(1000):
            time.sleep(0.002)
            yield index

    batches = prefetch(slow())
    assert next(batches) == 0
    batches.close()
    assert _threads_back_to(before)


def test_closing_prefetch_before_it_starts_is_harmless():
    before = threading.active_count()
    batches = prefetch(iter(range(10)))
    batches.close()
    assert threading.active_count() == before


def test_breaking_out_of_a_loop_over_prefetch_stops_the_thread():
    before = threading.active_count()

    def run() -> list[int]:
        got = []
        batches = prefetch(iter(range(10_000)))
        try:
            for item in batches:
                got.append(item)
                if item == 5:
                    break
        finally:
            batches.close()
        return got

    assert run() == list(range(6))
    assert _threads_back_to(before)
