"""Marts come from the DuckDB file (read-only) or from Parquet, through one streaming reader."""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shipper.reader import DuckDBSource, ParquetSource, stream_mart
from tests.shipper.marts import META_CONVERSIONS, meta_row, payload_of, write_mart


def _export_parquet(workspace, target, parts: int = 1):
    con = duckdb.connect(str(workspace.mart_path), read_only=True)
    try:
        table = con.sql("select * from meta_conversions order by delivery_key").to_arrow_table()
    finally:
        con.close()
    if parts == 1:
        pq.write_table(table, target)
        return table
    target.mkdir(parents=True)
    step = -(-table.num_rows // parts)
    for index in range(parts):
        pq.write_table(table.slice(index * step, step), target / f"part-{index:03d}.parquet")
    return table


@pytest.mark.parametrize("layout", ["single file", "directory of parts"])
def test_parquet_source_ships_the_same_events(workspace, layout):
    workspace.meta_mart(meta_row(i) for i in range(1200))
    export = workspace.root / "export"
    export.mkdir()
    if layout == "single file":
        table = _export_parquet(workspace, export / "meta_conversions.parquet")
    else:
        table = _export_parquet(workspace, export / "meta_conversions", parts=3)
    assert table.schema.field("value").type == pa.decimal128(18, 2)
    workspace.mart_path.unlink()  # prove nothing is read from DuckDB
    fake = workspace.meta()
    workspace.env(SHIP_SOURCE="parquet", SHIP_PARQUET_DIR=str(export))

    assert workspace.ship("run", "meta") == 0

    assert sorted(fake.accepted_ids) == sorted(f"evt-{i}" for i in range(1200))
    assert workspace.ship("run", "meta") == 0  # the ledger anti-join works on Parquet too
    assert len(fake.accepted_ids) == 1200


def test_missing_parquet_is_one_sentence(workspace, capsys):
    workspace.meta()
    (workspace.root / "export").mkdir()
    workspace.env(SHIP_SOURCE="parquet", SHIP_PARQUET_DIR=str(workspace.root / "export"))
    assert workspace.ship("run", "meta") == 2
    assert "no Parquet files for meta_conversions" in capsys.readouterr().out


def test_reader_streams_bounded_record_batches(workspace):
    workspace.meta_mart(meta_row(i) for i in range(2500))
    con = duckdb.connect()
    try:
        relation = DuckDBSource(workspace.mart_path).relation(con, "meta_conversions")
        sizes = [batch.num_rows for batch in stream_mart(con, relation, ["delivery_key"], 700)]
    finally:
        con.close()
    assert sum(sizes) == 2500
    assert max(sizes) <= 700
    assert len(sizes) >= 4


def test_the_mart_database_is_opened_read_only(workspace):
    workspace.meta_mart(meta_row(i) for i in range(3))
    before = hashlib.sha256(workspace.mart_path.read_bytes()).hexdigest()
    con = duckdb.connect()
    try:
        DuckDBSource(workspace.mart_path).relation(con, "meta_conversions")
        with pytest.raises(duckdb.Error):
            con.execute("delete from mart_source.main.meta_conversions")
    finally:
        con.close()
    fake = workspace.meta()
    assert workspace.ship("run", "meta") == 0
    assert len(fake.accepted_ids) == 3
    assert hashlib.sha256(workspace.mart_path.read_bytes()).hexdigest() == before


def test_a_mart_missing_a_contract_column_is_refused(workspace, capsys):
    columns = {name: kind for name, kind in META_CONVERSIONS.items() if name != "event_time"}
    write_mart(workspace.mart_path, "meta_conversions", columns,
               [{**meta_row(1), "payload": payload_of("meta_conversions", meta_row(1))}])
    workspace.meta()
    assert workspace.ship("run", "meta") == 2
    assert "meta_conversions lacks column(s) event_time" in capsys.readouterr().out


def test_parquet_source_lists_both_layouts(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "1.parquet").write_bytes(b"")
    (tmp_path / "b" / "2.parquet").write_bytes(b"")
    source = ParquetSource(tmp_path)
    assert [path.name for path in source.files("a")] == ["a.parquet"]
    assert [path.name for path in source.files("b")] == ["1.parquet", "2.parquet"]
    assert source.files("c") == []
