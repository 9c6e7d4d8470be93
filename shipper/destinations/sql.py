"""Events validated and built by DuckDB, a read batch at a time.

A destination can describe its `validate` and `to_wire` as two SQL expressions
over the mart's columns (`Destination.sql_events`): the reason a row cannot be
sent (NULL when it can), and the JSON text of its wire event. The shipper then
streams key, reason and event from DuckDB and does no per-row Python work but
hashing and batching: that took `ship run meta` from about 14,000 to 55,000 to
75,000 events a second (README, Benchmarks). Without them a destination runs
row by row in Python, and `build_events_in_sql = false` forces that for one
that has them.

The Python methods stay the reference. tests/shipper/test_sql_events.py checks,
for rows of every shape (valid ones and each way a row can be wrong), that both
give the same reason and, for a valid row, the same event once parsed.

Rules for the expressions, so that they agree with the Python methods:

- the reason is the first failing check, in the order of `check_event`, then
  a problem `to_wire` would raise (`row cannot become an event (ValueError)`);
- the event must be valid JSON whenever the reason is NULL (when it is not, the
  event is never sent and may be anything); members whose value is NULL are
  left out, as `drop_none` does;
- the checks depend on the column types DuckDB reports (a Parquet export may
  hold `contents` as a list, or `event_time` as a timestamp), so the builders
  take them.

Only DuckDB runs these expressions: the shipper reads every source (the dbt
DuckDB file or Parquet files) through DuckDB, whatever warehouse built the marts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import pyarrow as pa
import pyarrow.compute as pc

from shipper.destinations.base import is_sha256_hex

_INTEGER_TYPES = frozenset({
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL"})
_TEXT_TYPES = frozenset({"VARCHAR"})


@dataclass(frozen=True)
class SqlEvents:
    """What `Destination.sql_events` returns: two DuckDB SQL expressions."""

    reason: str  # the first reason the row cannot be sent, or NULL
    event: str  # the wire event as JSON text (VARCHAR)
    # True for rows the SQL cannot judge the way Python does: they go through
    # `validate` and `to_wire` instead (see `Columns.json_needs_python`).
    python_rows: str = "false"
    # Columns that must hold a SHA-256 hex digest when present. The shipper checks them
    # on the Arrow buffers (`rows_not_hex`), far faster than a regular expression per
    # value; the rare row with another value goes through the Python methods, which
    # give its exact reason. `reason` leaves these checks out.
    hex_columns: tuple[str, ...] = ()


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _json_key(name: str) -> str:
    # The key as JSON, then as SQL: '"name":'
    return literal(json.dumps(name, ensure_ascii=False) + ":")


class Columns:
    """The mart columns a destination reads, with their DuckDB types."""

    def __init__(self, types: Mapping[str, str]) -> None:
        self.types = {name: str(kind).upper() for name, kind in types.items()}

    def ref(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def kind(self, name: str) -> str:
        """text | integer | float | decimal | boolean | list | other"""
        kind = self.types[name]
        if kind in _TEXT_TYPES or kind.startswith("VARCHAR"):
            return "text"
        if kind in _INTEGER_TYPES:
            return "integer"
        if kind in _FLOAT_TYPES:
            return "float"
        if kind.startswith("DECIMAL"):
            return "decimal"
        if kind == "BOOLEAN":
            return "boolean"
        if kind.endswith("[]"):
            return "list"
        return "other"

    # -- checks (each is a boolean SQL expression, true when the check fails) ------------

    def missing(self, name: str) -> str:
        """Python's `not row.get(name)`: NULL, or a falsy value of the column's type."""
        column, kind = self.ref(name), self.kind(name)
        if kind == "text":
            return f"coalesce({column}, '') = ''"
        if kind in ("integer", "float", "decimal"):
            return f"coalesce({column}, 0) = 0"
        if kind == "boolean":
            return f"not coalesce({column}, false)"
        if kind == "list":
            return f"coalesce(len({column}), 0) = 0"
        return f"{column} is null"

    def not_json_array(self, name: str) -> str:
        """Present, but not a JSON array (`parse_json_array` gives None)."""
        column, kind = self.ref(name), self.kind(name)
        if kind == "list":
            return "false"
        if kind != "text":
            return f"{column} is not null"
        # CASE, not AND: DuckDB evaluates both sides of an AND, and json_type fails on
        # text that is not JSON.
        return (f"{column} is not null and not (case when json_valid({column}) "
                f"then json_type({column}) = 'ARRAY' else false end)")

    def not_number(self, name: str) -> str:
        """Present, but `float(value)` fails or is not finite (JSON has no NaN)."""
        column, kind = self.ref(name), self.kind(name)
        if kind in ("integer", "decimal"):
            return "false"
        if kind in ("text", "float", "boolean"):
            number = f"try_cast({column} as double)"
            return (f"{column} is not null and ({number} is null or isnan({number}) "
                    f"or isinf({number}))")
        return f"{column} is not null"

    def json_needs_python(self, name: str) -> str:
        """True when a JSON column holds what DuckDB takes and Python does not, or takes
        differently: NaN or Infinity (Python parses them, then cannot send them),
        trailing commas (DuckDB drops them, Python refuses), exponents or runs of digits
        past a double's range or Python's integer limit, lone surrogate escapes, nesting
        deep enough to reach Python's recursion limit. Rare, so those rows are simply
        handed to the Python methods; a false alarm (`",nan"` inside a string) costs only
        speed. A column of another type than text (a list exported to Parquet) is left
        to Python whole: its values (NaN doubles, decimals) do not map one to one."""
        column, kind = self.ref(name), self.kind(name)
        if kind != "text":
            return f"{column} is not null"
        pattern = (r"[\[,:]\s*[-+]?(?i:nan|inf)|[eE][+-]?[0-9]{3}|[0-9]{300}|,\s*[\]}]"
                   r"|\\u[dD][89abAB]")
        deep = (f"case when strlen({column}) >= 1000 then strlen({column}) - strlen("
                f"replace(replace({column}, '[', ''), '{{', '')) >= 400 else false end")
        return f"coalesce(regexp_matches({column}, {literal(pattern)}) or {deep}, false)"

    def number_needs_python(self, name: str) -> str:
        """True when a value `money` turns into a float is not of a numeric type: what
        Python's float() reads in text (Unicode digits, spaces) is not what DuckDB reads."""
        column, kind = self.ref(name), self.kind(name)
        if kind in ("integer", "decimal", "float"):
            return "false"
        return f"{column} is not null"

    # -- JSON members (each is NULL when the value is NULL: concat_ws leaves it out) --------

    def member(self, key: str, name: str) -> str:
        """"key":<the value as JSON>"""
        column = self.ref(name)
        return f"case when {column} is not null then concat({_json_key(key)}, to_json({column})) end"

    def money_member(self, key: str, name: str) -> str:
        """"key":<the value as a JSON number> (`money`)."""
        column = self.ref(name)
        return (f"case when {column} is not null then concat({_json_key(key)}, "
                f"to_json(try_cast({column} as double))) end")

    def hex_member(self, key: str, name: str, *, as_list: bool = False) -> str:
        """"key":"<hash>" (or ["<hash>"]). Quoted without escaping: only for a column in
        `SqlEvents.hex_columns`, so a row with any other text goes through Python."""
        column = self.ref(name)
        opening, closing = ('["', '"]') if as_list else ('"', '"')
        key_and_opening = literal(json.dumps(key, ensure_ascii=False) + ":" + opening)
        return (f"case when {column} is not null then "
                f"concat({key_and_opening}, {column}, {literal(closing)}) end")

    def json_array_member(self, key: str, name: str) -> str:
        """"key":<the JSON array>, left out when NULL or empty (`parse_json_array(...) or None`).
        The array is re-serialised by DuckDB (compact, same order); only for a column the
        reason checks with `not_json_array`."""
        column = self.ref(name)
        if self.kind(name) == "list":
            return (f"case when len({column}) > 0 then "
                    f"concat({_json_key(key)}, to_json({column})) end")
        # Nested CASE: json_array_length fails on text that is not JSON.
        return (f"case when json_valid({column}) then case when json_type({column}) = 'ARRAY' "
                f"and json_array_length({column}) > 0 then concat({_json_key(key)}, "
                f"json({column})) end end")


def value(columns: Columns, name: str) -> str:
    """The column's value as JSON (for `event_object`'s required members)."""
    return f"to_json({columns.ref(name)})"


def event_object(required: Sequence[tuple[str, str | ObjectOf]],
                 optional: Sequence[str]) -> str:
    """A JSON object: `required` (key, JSON expression or ObjectOf) pairs first, then
    the `optional` members (each NULL when left out, as from `Columns.member`), in one
    concat.

    Only for keys the reason makes sure of: a row whose required value is NULL must
    have a reason, so its (broken) event is never sent. One flat concat copies the
    event's bytes once, where nested objects would copy them at every level.
    """
    parts: list[str] = []
    for position, (key, expression) in enumerate(required):
        prefix = ("{" if position == 0 else ",") + json.dumps(key, ensure_ascii=False) + ":"
        if isinstance(expression, ObjectOf):
            parts.extend([literal(prefix + "{"), f"concat_ws(',', {', '.join(expression.members)})",
                          "'}'"])
        else:
            parts.extend([literal(prefix), expression])
    parts.extend(f"(',' || {member})" for member in optional)
    parts.append("'}'")
    return f"concat({', '.join(parts)})"


@dataclass(frozen=True)
class ObjectOf:
    """For `event_object`: a nested object of the members that are not NULL (maybe {})."""

    members: tuple[str, ...]


def object_member(key: str, members: Sequence[str]) -> str:
    """"key":{...}, left out (NULL) when every member is NULL (`drop_none(...) or None`)."""
    return (f"({_json_key(key)} || '{{' || nullif(concat_ws(',', {', '.join(members)}), '') "
            f"|| '}}')")


def first_reason(checks: Sequence[tuple[str, str]]) -> str:
    """CASE over (failing condition, reason) pairs, in order; NULL when none fails."""
    if not checks:
        return "cast(null as varchar)"
    arms = " ".join(f"when {condition} then {literal(reason)}" for condition, reason in checks)
    return f"(case {arms} end)"


def event_checks(columns: Columns, *, required: Sequence[str], now: float, max_age_days: int,
                 identifier_keys: Sequence[str], purchase: tuple[str, str] | None = None,
                 json_array: str | None = None) -> list[tuple[str, str]]:
    """`base.check_event` as (condition, reason) pairs, in the same order, without the
    hex checks of `identifier_keys`: pass those as `SqlEvents.hex_columns`."""
    checks: list[tuple[str, str]] = [
        (columns.missing(key), f"{key} is missing") for key in required
    ]
    event_time = columns.ref("event_time")
    checks.append((f"{event_time} is null", "event_time is missing"))
    if columns.kind("event_time") != "integer":
        checks.append(("true", "event_time is not unix seconds"))
    else:
        oldest = now - max_age_days * 86_400
        checks.append((f"{event_time} > {now!r}", "event_time is in the future"))
        checks.append((f"{event_time} < {oldest!r}",
                       f"event_time is older than {max_age_days} days"))
    if purchase is not None:
        name_column, purchase_name = purchase
        value, currency = columns.ref("value"), columns.ref("currency")
        is_purchase = (f"(coalesce(cast({columns.ref(name_column)} as varchar) = "
                       f"{literal(purchase_name)}, false) or {value} is not null)")
        if columns.kind("currency") == "text":
            bad_currency = f"not regexp_full_match({currency}, '[A-Z]{{3}}')"
        else:
            bad_currency = "true"
        checks.extend([
            (f"{is_purchase} and {value} is null", "value is missing"),
            (f"{is_purchase} and ({currency} is null or cast({currency} as varchar) = '')",
             "currency is missing"),
            (f"{is_purchase} and {bad_currency}",
             "currency is not a 3-letter upper-case ISO 4217 code"),
        ])
    all_null = " and ".join(f"{columns.ref(key)} is null" for key in identifier_keys)
    checks.append((all_null, "no user data (every identifier is NULL)"))
    # The hex checks of identifier_keys come here in check_event; they are made on the
    # Arrow buffers instead (SqlEvents.hex_columns, rows_not_hex).
    if json_array is not None:
        checks.append((columns.not_json_array(json_array), f"{json_array} is not a JSON array"))
    return checks



_HEX_DIGITS = b"0123456789abcdef"


def rows_not_hex(array: pa.Array) -> list[int]:
    """Rows of `array` holding a value that is not 64 lower-case hex digits (`is_sha256_hex`).

    One pass of bytes.translate over the array's data buffer checks every value at
    once; only when it finds a stray byte are the values looked at one by one.
    """
    if array.null_count == len(array):
        return []
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return [index for index, valid in enumerate(array.is_valid().to_pylist()) if valid]
    lengths = pc.min_max(pc.binary_length(array)).as_py()
    if lengths["min"] == 64 and lengths["max"] == 64:
        _validity, offsets_buffer, data_buffer = array.buffers()
        offsets = memoryview(offsets_buffer).cast(
            "q" if pa.types.is_large_string(array.type) else "i")
        first, last = offsets[array.offset], offsets[array.offset + len(array)]
        if not bytes(memoryview(data_buffer)[first:last]).translate(None, _HEX_DIGITS):
            return []
    return [index for index, value in enumerate(array.to_pylist())
            if value is not None and not is_sha256_hex(value)]


def binary_views(array: pa.Array) -> list[memoryview]:
    """The values of a binary Arrow array as views into its data buffer (no copies);
    a NULL is an empty view."""
    if not len(array):
        return []
    _validity, offsets_buffer, data_buffer = array.buffers()
    offsets = memoryview(offsets_buffer).cast(
        "q" if pa.types.is_large_binary(array.type) else "i"
    )[array.offset:array.offset + len(array) + 1].tolist()
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    return [data[start:stop] for start, stop in pairwise(offsets)]
