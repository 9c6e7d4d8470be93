"""CSV (or TSV) files a platform takes as an upload: typed cells, safe text, parts.

The file's columns are the mart's (docs/marts.md): each mart column but
`delivery_key`, in mart order, its name as the header. The column's type
decides how its cells are written: a number type (integer, decimal, float) is
written as a number, and text (varchar, formatted in SQL) as text.

- UTF-8 without a byte-order mark, RFC 4180: CRLF line ends, a field is quoted
  when it holds the delimiter, a quote, CR or LF, and quotes inside are doubled,
  so a value with a newline never breaks a line.
- Formula guard: a text cell that starts with `=`, `+`, `-`, `@`, a tab or a
  carriage return gets a leading `'`, so a spreadsheet shows it instead of
  running it (OWASP "CSV injection"). Numeric columns are written as numbers,
  unguarded: `-5` stays `-5`. NULL is an empty cell.
- Parts: a file is closed and the next one started before a row would take it
  over `max_rows` data rows or `max_bytes` (bytes before compression, the
  header included, so the limit also holds for the compressed file). With a
  group column (Criteo: the lines of one order), a group is never split over
  two files by the row limit.
- Optional gzip, written with a zero timestamp so the same rows always give the
  same bytes, hence the same SHA-256.
"""

from __future__ import annotations

import csv
import decimal
import gzip as gzip_module
import hashlib
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
KINDS = ("text", "integer", "decimal")
DELIMITERS = {"csv": ",", "tsv": "\t"}

# DuckDB type names (as `DuckDBPyType` prints them) of the columns a file can hold.
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT",
                  "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
_DECIMAL_TYPES = {"FLOAT", "DOUBLE"}
_TEXT_TYPES = {"VARCHAR"}


class CellError(ValueError):
    """A mart value that cannot go in its column; the message names the column."""


def kind_of(duckdb_type: str) -> str | None:
    """The kind of cell a column of this DuckDB type makes, or None when a file cannot
    hold it as it is (a date, a timestamp, a list: format it as text in SQL)."""
    name = duckdb_type.upper()
    if name in _INTEGER_TYPES:
        return "integer"
    if name in _DECIMAL_TYPES or name.startswith("DECIMAL"):
        return "decimal"
    if name in _TEXT_TYPES:
        return "text"
    return None


def guard_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would otherwise evaluate as a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def format_cell(value: object, kind: str, header: str) -> str:
    """The text of one cell: empty for NULL, a plain number for numeric kinds, guarded text."""
    if value is None:
        return ""
    if kind == "text":
        return guard_formula(value if isinstance(value, str) else str(value))
    if isinstance(value, bool):
        raise CellError(f"{header} is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise CellError(f"{header} is not a finite number")
        return format(value, "f")  # keeps the scale: Decimal('5.00') -> 5.00
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CellError(f"{header} is not a finite number")
        return format(decimal.Decimal(repr(value)), "f")  # never 1e-05
    raise CellError(f"{header} is not a number")


class CsvFormat:
    """Turns rows of cells into the exact bytes of CSV (or TSV) lines."""

    def __init__(self, headers: Sequence[str], file_format: str = "csv") -> None:
        if file_format not in DELIMITERS:
            raise ValueError(f"file_format must be 'csv' or 'tsv', not {file_format!r}")
        self.extension = file_format
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, delimiter=DELIMITERS[file_format],
                                  quotechar='"', doublequote=True, lineterminator="\r\n",
                                  quoting=csv.QUOTE_MINIMAL, strict=True)
        self.header_line = self.encode([guard_formula(header) for header in headers])

    def encode(self, cells: Sequence[str]) -> bytes:
        """One line, CRLF-terminated, UTF-8. UnicodeEncodeError for unpaired surrogates."""
        self._writer.writerow(cells)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")


class _HashingSink:
    """What gzip (or the CSV) writes into: counts and hashes the bytes on their way to disk."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


@dataclass(frozen=True)
class FinishedPart:
    """A closed file: where it is staged and what it holds."""

    number: int
    path: Path
    rows: int
    size: int  # bytes on disk (compressed when gzip)
    sha256: str


class PartFile:
    """One file being written: header first, then rows, with the limits it must respect."""

    def __init__(self, path: Path, number: int, fmt: CsvFormat, *, gzip: bool,
                 max_rows: int = 0, max_bytes: int = 0) -> None:
        self.path = path
        self.number = number
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows = 0
        self.uncompressed = 0
        self._raw = path.open("wb")
        self._sink = _HashingSink(self._raw)
        self._gzip = (gzip_module.GzipFile(filename="", mode="wb", fileobj=self._sink,
                                           mtime=0) if gzip else None)
        self._write(fmt.header_line)

    def has_room(self, line_size: int, group_rows: int | None = None) -> bool:
        """Whether the next line may go in this file.

        `group_rows` is the size of the group that line starts (None when it
        continues the group of the previous line, which the row limit never splits).
        """
        if self.rows == 0:
            return True  # a line bigger than the byte limit still needs a file
        if self.max_bytes and self.uncompressed + line_size > self.max_bytes:
            return False
        if self.max_rows and group_rows is not None:
            return self.rows + max(group_rows, 1) <= self.max_rows
        return True

    def write_row(self, line: bytes) -> None:
        self._write(line)
        self.rows += 1

    def _write(self, data: bytes) -> None:
        self.uncompressed += len(data)
        if self._gzip is not None:
            self._gzip.write(data)
        else:
            self._sink.write(data)

    def close(self) -> FinishedPart:
        if self._gzip is not None:
            self._gzip.close()  # writes the trailer into the sink; leaves the file open
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return FinishedPart(self.number, self.path, self.rows, self._sink.size,
                            self._sink.digest.hexdigest())

    def discard(self) -> None:
        """Close without caring about the content (the run is stopping)."""
        try:
            if self._gzip is not None:
                self._gzip.close()
        finally:
            self._raw.close()
            self.path.unlink(missing_ok=True)


_NAME_PART = re.compile(r"[A-Za-z0-9._-]+")


def file_name(prefix: str, as_of: str, run_id: str, part: int | None, extension: str,
              gzip: bool) -> str:
    """`<prefix>_<as_of>_<run_id>[_partNNN].<csv|tsv>[.gz]`: never the name of an earlier file."""
    stem = f"{prefix}_{as_of}_{run_id}" + (f"_part{part:03d}" if part else "")
    return f"{stem}.{extension}" + (".gz" if gzip else "")


def valid_name_part(text: str) -> bool:
    return _NAME_PART.fullmatch(text) is not None and not text.startswith(".")
