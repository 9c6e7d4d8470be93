"""The file format on its own: quoting, the formula guard, numeric cells, headers, parts, gzip."""

from __future__ import annotations

import csv
import decimal
import gzip
import hashlib
import io

import pytest

from shipper import destinations
from shipper.config import ConfigError, load_config
from shipper.files.csvfile import (
    CellError,
    CsvFormat,
    PartFile,
    file_name,
    format_cell,
    guard_formula,
    kind_of,
)


@pytest.mark.parametrize("text", ["=1+2", "+33 1 23", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd",
                                  '=HYPERLINK("http://x","y")'])
def test_formula_triggers_get_a_quote_in_front(text):
    assert guard_formula(text) == "'" + text
    assert format_cell(text, "text", "order_id") == "'" + text


@pytest.mark.parametrize("text", ["abc", "1=1", "a-b", "", " =x", "'=already", "é=x"])
def test_other_text_is_left_alone(text):
    assert format_cell(text, "text", "order_id") == text


@pytest.mark.parametrize(("value", "kind", "expected"), [
    (-5, "integer", "-5"),
    (decimal.Decimal(3), "integer", "3"),
    (decimal.Decimal("-5.00"), "decimal", "-5.00"),
    (decimal.Decimal("50.00"), "decimal", "50.00"),
    (0.00001, "decimal", "0.00001"),
    (-2.5, "decimal", "-2.5"),
    (12, "decimal", "12"),
    (None, "decimal", ""),
    (None, "text", ""),
])
def test_numeric_columns_stay_numbers_and_are_not_guarded(value, kind, expected):
    assert format_cell(value, kind, "value") == expected


@pytest.mark.parametrize(("value", "kind"), [
    (True, "integer"), (decimal.Decimal("NaN"), "decimal"), (float("inf"), "decimal"),
    ("12", "decimal"),
])
def test_a_value_no_number_cell_can_hold_is_refused_naming_the_column(value, kind):
    with pytest.raises(CellError, match="^value is not"):
        format_cell(value, kind, "value")


@pytest.mark.parametrize(("duckdb_type", "kind"), [
    ("VARCHAR", "text"), ("INTEGER", "integer"), ("BIGINT", "integer"),
    ("DECIMAL(18,2)", "decimal"), ("DOUBLE", "decimal"), ("DATE", None), ("TIMESTAMP", None),
    ("BOOLEAN", None), ("VARCHAR[]", None),
])
def test_the_column_type_decides_the_kind_of_cell(duckdb_type, kind):
    assert kind_of(duckdb_type) == kind


def test_lines_follow_rfc_4180_and_read_back_exactly():
    fmt = CsvFormat(["a", "b", "c", "d"])
    cells = ['line one\nline two', 'comma, inside', 'a "quoted" word', "café ☕ \r end"]
    line = fmt.encode(cells)
    assert line.endswith(b"\r\n")
    assert line == ('"line one\nline two","comma, inside","a ""quoted"" word",'
                    '"café ☕ \r end"\r\n').encode()
    assert list(csv.reader(io.StringIO(line.decode(), newline=""))) == [cells]
    assert fmt.header_line == b"a,b,c,d\r\n"


def test_tsv_quotes_tabs_inside_cells():
    fmt = CsvFormat(["a", "b"], "tsv")
    assert fmt.encode(["x\ty", "z"]) == b'"x\ty"\tz\r\n'


def test_a_headers_setting_is_no_longer_understood(tmp_path):
    """Header names are the mart's columns (one mapping, in SQL), not a setting."""
    path = tmp_path / "ship.toml"
    path.write_text('[destinations.pinterest_file]\nheaders = ["order_id=Order ID"]\n')
    with pytest.raises(ConfigError, match="headers"):
        load_config(path, env={}, catalog=destinations.catalog())


def test_a_password_in_the_config_file_is_refused(tmp_path):
    path = tmp_path / "ship.toml"
    path.write_text('[destinations.criteo]\nsftp_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="CRITEO_SFTP_PASSWORD"):
        load_config(path, env={}, catalog=destinations.catalog())


def test_parts_respect_the_row_limit_and_keep_groups_whole(tmp_path):
    fmt = CsvFormat(["k"])
    part = PartFile(tmp_path / "p.csv", 1, fmt, gzip=False, max_rows=3)
    line = fmt.encode(["x"])
    assert part.has_room(len(line), 2)
    part.write_row(line)
    part.write_row(line)
    assert part.has_room(len(line), 1)  # 3rd row fits
    assert not part.has_room(len(line), 2)  # a 2-line group would make 4
    assert part.has_room(len(line), None)  # continuing a group is never split by rows
    part.write_row(line)
    assert not part.has_room(len(line), 1)
    finished = part.close()
    assert finished.rows == 3
    assert finished.sha256 == hashlib.sha256((tmp_path / "p.csv").read_bytes()).hexdigest()


def test_parts_respect_the_byte_limit(tmp_path):
    fmt = CsvFormat(["k"])
    line = fmt.encode(["0123456789"])  # 12 bytes
    part = PartFile(tmp_path / "p.csv", 1, fmt, gzip=False, max_bytes=3 + 2 * len(line))
    assert part.has_room(len(line))
    part.write_row(line)
    assert part.has_room(len(line))
    part.write_row(line)
    assert not part.has_room(len(line), None)  # bytes split even inside a group
    assert part.close().size == 3 + 2 * len(line)


def test_gzip_round_trip_is_byte_exact_and_reproducible(tmp_path):
    fmt = CsvFormat(["k", "v"])
    lines = [fmt.encode([f"key-{index}", "é=x"]) for index in range(500)]
    digests = []
    for name in ("a.csv.gz", "b.csv.gz"):
        part = PartFile(tmp_path / name, 1, fmt, gzip=True)
        for line in lines:
            part.write_row(line)
        finished = part.close()
        data = (tmp_path / name).read_bytes()
        assert finished.size == len(data)
        assert finished.sha256 == hashlib.sha256(data).hexdigest()
        assert gzip.decompress(data) == fmt.header_line + b"".join(lines)
        digests.append(finished.sha256)
    assert digests[0] == digests[1]  # no timestamp inside: same rows, same checksum


def test_file_names_carry_destination_as_of_run_and_part():
    assert file_name("criteo", "2026-11-28", "20261128T060000Z-abc123", None, "csv", False) == \
        "criteo_2026-11-28_20261128T060000Z-abc123.csv"
    assert file_name("pinterest_file", "2026-11-28", "R", 2, "csv", True) == \
        "pinterest_file_2026-11-28_R_part002.csv.gz"
