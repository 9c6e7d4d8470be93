"""The file loop with a local directory and the outbox: what goes in the files, splitting,
gzip, the formula guard end to end, dry runs, reruns, --force and the ledger."""

from __future__ import annotations

import hashlib
import re

import duckdb

from shipper.files.destination import as_of_date
from tests.files.conftest import (
    FileTests,
    criteo_row,
    pinterest_row,
    read_rows,
    snapchat_row,
)
from tests.shipper.marts import meta_row

NAME = re.compile(r"(?P<dest>[a-z_]+)_(?P<as_of>\d{4}-\d{2}-\d{2})_(?P<run>\d{8}T\d{6}Z-[0-9a-f]{6})"
                  r"(?:_part(?P<part>\d{3}))?\.csv(?:\.gz)?")


def test_dry_run_writes_the_file_into_the_outbox_and_marks_nothing(files: FileTests, capsys):
    files.mart("criteo", [criteo_row(1, 1), criteo_row(1, 2), criteo_row(2, 1)])

    assert files.ship("run", "criteo", "--dry-run") == 0

    (path,) = sorted((files.ws.outbox / "criteo").iterdir())
    assert NAME.fullmatch(path.name).group("dest") == "criteo"
    rows = read_rows(path)
    assert rows[0] == ["event_id", "event_timestamp", "user_email", "event_item_id",
                       "event_item_price", "event_item_quantity", "event_currency", "store_id"]
    assert [row[0] for row in rows[1:]] == ["evt-00001", "evt-00001", "evt-00002"]
    assert files.statuses("criteo") == {}
    assert files.files_table("criteo") == []
    with files.ws.ledger() as ledger:
        (run,) = ledger.recent_runs(["criteo"])
    assert (run["mode"], run["rows_sent"], run["rows_accepted"]) == ("dry_run", 3, 0)
    out = capsys.readouterr().out
    assert "criteo files:" in out and path.name in out

    # The next dry run writes the same rows again: nothing was delivered.
    assert files.ship("run", "criteo", "--dry-run") == 0
    assert len(list((files.ws.outbox / "criteo").iterdir())) == 2


def test_no_credentials_stop_a_live_run_with_one_line_naming_the_variables(files: FileTests,
                                                                            capsys):
    files.mart("criteo", [criteo_row(1)])
    files.env(CRITEO_SFTP_HOST="127.0.0.1", CRITEO_SFTP_USER="nobody", META_ACCESS_TOKEN="x" * 20)
    files.ws.meta_mart([])
    assert files.ship("run", "criteo", "meta") == 2
    err = capsys.readouterr().err
    assert ("criteo cannot be sent without CRITEO_SFTP_PASSWORD or CRITEO_SFTP_KEY_PATH (or "
            "the key itself in CRITEO_SFTP_PRIVATE_KEY)") in err
    assert not files.ws.ledger_path.exists()  # nothing was attempted


def test_directory_delivery_records_files_and_rows_and_a_rerun_sends_nothing(files: FileTests,
                                                                             capsys):
    target = files.directory("pinterest_file")
    files.mart("pinterest_file", [pinterest_row(index) for index in range(5)])

    assert files.ship("run", "pinterest_file") == 0

    (name,) = files.listing(target)  # no temporary file left behind
    path = target / name
    rows = read_rows(path)
    assert rows[0] == ["email", "event_time", "event_type", "source_type", "value", "currency",
                       "order_id", "quantity"]
    first = pinterest_row(0)
    assert rows[1] == [first["email"], str(first["event_time"]), "checkout", "offline",
                       first["value"], "USD", "SO-0", "1"]
    (record,) = files.files_table("pinterest_file")
    assert record["status"] == "delivered"
    assert record["rows"] == 5
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["bytes"] == path.stat().st_size
    assert record["location"] == str(path)
    assert files.statuses("pinterest_file") == {"delivered": 5}
    assert "delivered" in capsys.readouterr().out

    # A rerun finds every row delivered: no new file, all skipped.
    assert files.ship("run", "pinterest_file") == 0
    assert files.listing(target) == [name]
    with files.ws.ledger() as ledger:
        latest = ledger.recent_runs(["pinterest_file"])[0]
    assert (latest["rows_read"], latest["rows_skipped"], latest["rows_sent"]) == (5, 5, 0)

    # New rows go in a new file of their own, under a new name.
    files.mart("pinterest_file", [pinterest_row(index) for index in range(7)])
    assert files.ship("run", "pinterest_file") == 0
    names = files.listing(target)
    assert len(names) == 2
    newest = next(n for n in names if n != name)
    assert [row[6] for row in read_rows(target / newest)[1:]] == ["SO-5", "SO-6"]


def test_force_writes_every_row_again_in_a_new_file(files: FileTests):
    target = files.directory("snapchat_file")
    files.mart("snapchat_file", [snapchat_row(index) for index in range(3)])
    assert files.ship("run", "snapchat_file") == 0
    assert files.ship("run", "snapchat_file") == 0
    assert len(files.listing(target)) == 1

    assert files.ship("run", "snapchat_file", "--force") == 0

    first, second = (target / name for name in files.listing(target))
    assert read_rows(first) == read_rows(second)
    assert [record["status"] for record in files.files_table("snapchat_file")] == [
        "delivered", "delivered"]
    assert files.statuses("snapchat_file") == {"delivered": 3}


def test_the_same_content_is_not_uploaded_twice_without_force(files: FileTests, capsys):
    target = files.directory("criteo")
    files.mart("criteo", [criteo_row(1), criteo_row(2)])
    assert files.ship("run", "criteo") == 0
    # The deliveries vanish (someone cleared them): a live run refuses to go on until
    # told it is meant; then the rows are pending again, but the file they make is byte
    # for byte one already delivered.
    with duckdb.connect(str(files.ws.ledger_path)) as con:
        con.execute("delete from deliveries")
    assert files.ship("run", "criteo") == 2
    assert files.ship("run", "criteo", "--first-run") == 0
    assert len(files.listing(target)) == 1
    assert [record["status"] for record in files.files_table("criteo")] == [
        "delivered", "duplicate"]
    assert files.statuses("criteo") == {"delivered": 2}
    assert "not uploaded again" in capsys.readouterr().err


def test_a_file_is_split_at_the_row_limit(files: FileTests):
    target = files.directory("pinterest_file")
    files.env(PINTEREST_FILE_MAX_ROWS_PER_FILE="3")
    files.mart("pinterest_file", [pinterest_row(index) for index in range(8)])

    assert files.ship("run", "pinterest_file") == 0

    names = files.listing(target)
    assert [NAME.fullmatch(name).group("part") for name in names] == ["001", "002", "003"]
    assert len({NAME.fullmatch(name).group("run") for name in names}) == 1
    bodies = [read_rows(target / name) for name in names]
    assert [len(body) - 1 for body in bodies] == [3, 3, 2]
    assert all(body[0][0] == "email" for body in bodies)  # every part has the header
    assert [row[6] for body in bodies for row in body[1:]] == [f"SO-{i}" for i in range(8)]
    records = files.files_table("pinterest_file")
    assert [(record["part"], record["rows"], record["status"]) for record in records] == [
        (1, 3, "delivered"), (2, 3, "delivered"), (3, 2, "delivered")]


def test_criteo_lines_of_one_order_stay_in_one_file(files: FileTests):
    target = files.directory("criteo")
    files.env(CRITEO_MAX_ROWS_PER_FILE="3")
    # Orders of 2, 2 and 3 lines: the second order does not fit beside the first.
    rows = [criteo_row(1, 1), criteo_row(1, 2), criteo_row(2, 1), criteo_row(2, 2),
            criteo_row(3, 1), criteo_row(3, 2), criteo_row(3, 3)]
    files.mart("criteo", rows)
    assert files.ship("run", "criteo") == 0
    bodies = [read_rows(target / name)[1:] for name in files.listing(target)]
    assert [[row[0] for row in body] for body in bodies] == [
        ["evt-00001", "evt-00001"], ["evt-00002", "evt-00002"],
        ["evt-00003", "evt-00003", "evt-00003"]]


def test_gzip_files_decompress_to_the_csv(files: FileTests):
    target = files.directory("criteo")
    files.env(CRITEO_GZIP="true")
    files.mart("criteo", [criteo_row(order) for order in range(20)])
    assert files.ship("run", "criteo") == 0
    (name,) = files.listing(target)
    assert name.endswith(".csv.gz")
    rows = read_rows(target / name)
    assert len(rows) == 21
    (record,) = files.files_table("criteo")
    assert record["sha256"] == hashlib.sha256((target / name).read_bytes()).hexdigest()


def test_formula_injection_is_neutralised_and_numbers_stay_numbers(files: FileTests):
    target = files.directory("snapchat_file")
    files.mart("snapchat_file", [
        snapchat_row(1, transaction_id='=HYPERLINK("http://evil","x")', item_ids="+sku;-1",
                     price="-5.00"),
        snapchat_row(2, transaction_id="@SUM(A1:A9)", item_ids="\tsku"),
        snapchat_row(3, transaction_id="SO-3\nsecond line, with comma", item_ids='a "b"'),
    ])
    assert files.ship("run", "snapchat_file") == 0
    (name,) = files.listing(target)
    header, *rows = read_rows(target / name)
    cells = [dict(zip(header, row, strict=True)) for row in rows]
    assert cells[0]["transaction_id"] == "'=HYPERLINK(\"http://evil\",\"x\")"
    assert cells[0]["item_ids"] == "'+sku;-1"
    assert cells[0]["price"] == "-5.00"  # numeric column: a number, not text
    assert cells[1]["transaction_id"] == "'@SUM(A1:A9)"
    assert cells[1]["item_ids"] == "'\tsku"
    assert cells[2]["transaction_id"] == "SO-3\nsecond line, with comma"
    assert cells[2]["item_ids"] == 'a "b"'


def test_the_file_is_the_mart_header_and_cells_in_mart_order(files: FileTests):
    """Whatever columns the mart has (here an analyst's reordered and extra ones), the file
    holds every one but delivery_key, in mart order, the header being the column names;
    numbers stay numbers (unguarded), text is guarded, NULL is an empty cell."""
    target = files.directory("pinterest_file")
    columns = {"delivery_key": "varchar", "order_id": "varchar", "Order Value": "decimal(18, 2)",
               "quantity": "integer", "adjustment": "bigint", "note": "varchar",
               "ratio": "double"}
    files.mart("pinterest_file", [
        {"delivery_key": "k1", "order_id": "SO-1", "Order Value": "7.50", "quantity": 3,
         "adjustment": -5, "note": "-5", "ratio": 0.00001},
        {"delivery_key": "k2", "order_id": "=SUM(A1)", "Order Value": None, "quantity": None,
         "adjustment": 0, "note": None, "ratio": None},
    ], columns)

    assert files.ship("run", "pinterest_file") == 0

    (name,) = files.listing(target)
    assert read_rows(target / name) == [
        ["order_id", "Order Value", "quantity", "adjustment", "note", "ratio"],
        ["SO-1", "7.50", "3", "-5", "'-5", "0.00001"],
        ["'=SUM(A1)", "", "", "0", "", ""],
    ]
    assert files.statuses("pinterest_file") == {"delivered": 2}


def test_a_mart_that_is_not_a_file_is_a_clear_problem(files: FileTests, capsys):
    files.directory("snapchat_file")
    files.mart("snapchat_file", [{"delivery_key": "k1", "day": "2026-11-27"}],
               {"delivery_key": "varchar", "day": "date"})
    assert files.ship("run", "snapchat_file") == 2
    assert 'column "day" is DATE: a file column is varchar' in capsys.readouterr().out

    files.mart("snapchat_file", [{"delivery_key": "k1"}], {"delivery_key": "varchar"})
    assert files.ship("run", "snapchat_file") == 2
    assert "has no column but delivery_key" in capsys.readouterr().out
    assert files.statuses("snapchat_file") == {}


def test_file_names_carry_the_configured_as_of_and_prefix(files: FileTests):
    # No build log beside the mart (a Parquet export, a mart dbt did not build): the
    # as_of setting names the files.
    target = files.directory("criteo")
    files.env(CRITEO_AS_OF="2026-11-28", CRITEO_FILE_PREFIX="acme_offline_sales")
    files.mart("criteo", [criteo_row(1)])
    assert files.ship_at("2026-12-03T09:00:00", "run", "criteo") == 0
    (name,) = files.listing(target)
    assert name.startswith("acme_offline_sales_2026-11-28_")


def test_a_build_for_one_day_shipped_on_another_names_its_files_with_the_build_s_as_of(
        files: FileTests):
    """Issue 14: a dbt build for as_of 2026-11-28 shipped on 2026-12-03 writes
    criteo_2026-11-28_..., not criteo_2026-12-03_...: the as_of comes from the build log
    (dbt_builds), with no setting."""
    target = files.directory("criteo")
    files.mart("criteo", [criteo_row(1), criteo_row(2)])
    files.build_log("criteo_sales", "2026-11-28")

    assert files.ship_at("2026-12-03T09:00:00", "run", "criteo") == 0

    (name,) = files.listing(target)
    match = NAME.fullmatch(name)
    assert (match.group("dest"), match.group("as_of")) == ("criteo", "2026-11-28"), name
    assert match.group("run").startswith("20261203T09")  # the run id keeps the run's time
    (record,) = files.files_table("criteo")
    assert record["as_of"] == "2026-11-28"


def test_the_latest_build_of_the_mart_decides_and_a_timestamp_as_of_gives_its_utc_date(
        files: FileTests):
    target = files.directory("pinterest_file")
    files.mart("pinterest_file", [pinterest_row(1)])
    files.build_log("pinterest_conversions_csv", "2026-11-20", finished_at="2026-11-20 05:00:00")
    # as_of written with an offset: 01:30 in UTC+2 is still the 27th in UTC.
    files.build_log("pinterest_conversions_csv", "2026-11-28T01:30:00+02:00",
                    finished_at="2026-11-28 05:00:00")
    assert files.ship_at("2026-12-01T12:00:00", "run", "pinterest_file") == 0
    (name,) = files.listing(target)
    assert NAME.fullmatch(name).group("as_of") == "2026-11-27"


def test_an_as_of_setting_that_contradicts_the_build_log_is_refused(files: FileTests, capsys):
    target = files.directory("criteo")
    files.mart("criteo", [criteo_row(1)])
    files.build_log("criteo_sales", "2026-11-28")
    files.env(CRITEO_AS_OF="2026-12-03")  # e.g. a scheduler that sets today's date

    assert files.ship_at("2026-12-03T09:00:00", "run", "criteo") == 2

    out = capsys.readouterr().out
    assert ("as_of for criteo is 2026-12-03, but the build log says criteo_sales was built for "
            "as_of 2026-11-28: unset CRITEO_AS_OF") in out
    assert files.listing(target) == []
    assert files.statuses("criteo") == {}

    files.env(CRITEO_AS_OF="2026-11-28")  # agreeing with the build log is fine
    assert files.ship_at("2026-12-03T09:00:00", "run", "criteo") == 0
    (name,) = files.listing(target)
    assert name.startswith("criteo_2026-11-28_")


def test_a_dry_run_with_as_of_names_its_files_with_that_date(files: FileTests):
    files.mart("snapchat_file", [snapchat_row(1)])
    files.build_log("snapchat_conversions_csv", "2026-11-28")
    assert files.ship_at("2026-12-03T09:00:00", "run", "snapchat_file", "--dry-run",
                         "--as-of", "2026-11-28") == 0
    (path,) = sorted((files.ws.outbox / "snapchat_file").iterdir())
    assert NAME.fullmatch(path.name).group("as_of") == "2026-11-28"


def test_without_build_log_or_setting_the_run_date_names_the_files_with_a_warning(
        files: FileTests, capsys):
    target = files.directory("criteo")
    files.mart("criteo", [criteo_row(1)])
    assert files.ship_at("2026-12-03T09:00:00", "run", "criteo") == 0
    (name,) = files.listing(target)
    assert name.startswith("criteo_2026-12-03_")
    assert ("no build log beside criteo_sales says which as_of it was built for" in
            capsys.readouterr().err)


def test_as_of_dates():
    assert as_of_date("2026-11-28") == "2026-11-28"
    assert as_of_date("2026-11-28 23:59:59") == "2026-11-28"
    assert as_of_date("2026-11-28T23:30:00-01:00") == "2026-11-29"
    assert as_of_date("2026-11-28T06:00:00Z") == "2026-11-28"
    assert as_of_date("yesterday") is None


def test_a_missing_directory_setting_is_a_clear_problem(files: FileTests, capsys):
    files.env(CRITEO_TRANSPORT="directory")
    files.mart("criteo", [criteo_row(1)])
    assert files.ship("run", "criteo") == 2
    assert "set CRITEO_DIRECTORY or directory under [destinations.criteo]" in \
        capsys.readouterr().out


def test_running_out_of_memory_stops_that_destination_alone(files: FileTests, capsys):
    """120 Criteo rows with 1 MB cells under the 64MB DuckDB limit: one sentence, the
    run incomplete, exit 2, and the destination after it still ships."""
    files.directory("criteo")
    files.mart("criteo", [criteo_row(i, store_id="s" + "x" * 1_000_000) for i in range(120)])
    meta = files.ws.meta()
    files.ws.meta_mart(meta_row(i) for i in range(3))

    assert files.ship("run", "criteo", "meta") == 2

    captured = capsys.readouterr()
    assert "criteo: could not complete: DuckDB ran out of memory" in captured.out
    assert "raise duckdb_memory_limit" in captured.out
    assert "Traceback" not in captured.out + captured.err
    with duckdb.connect(str(files.ws.ledger_path), read_only=True) as con:
        status = con.execute("select status from runs where destination = 'criteo'").fetchall()
    assert status == [("incomplete",)]
    assert len(meta.accepted_ids) == 3
