"""The `ship` command surface: help, status, validate, progress output, a real subprocess."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipper import cli
from shipper.ledger import RunCounts
from shipper.progress import Progress
from tests.shipper.marts import meta_row, tiktok_row

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["status", "--help"],
                                  ["validate", "--help"]])
def test_help_everywhere(argv, capsys):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ship")


def test_usage_error_exits_2(capsys):
    assert cli.main(["launch"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_real_subprocess_runs_and_reports(workspace):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(20))
    env = dict(os.environ, PYTHONPATH=str(REPO))

    help_run = subprocess.run([sys.executable, "-m", "shipper", "--help"], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert help_run.returncode == 0 and "run" in help_run.stdout

    result = subprocess.run([sys.executable, "-m", "shipper", "run", "meta"], env=env,
                            cwd=workspace.root, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "meta" in result.stdout and "ok" in result.stdout
    assert len(fake.accepted_ids) == 20
    # Not a terminal: plain lines, no carriage returns.
    assert "\r" not in result.stderr


def test_status_lists_runs_and_rejected_rows(workspace, capsys):
    fake = workspace.meta()
    fake.poison = {"evt-4"}
    workspace.meta_mart(meta_row(i) for i in range(8))
    assert workspace.ship("run", "meta") == 1
    capsys.readouterr()

    assert workspace.ship("status") == 0

    out = capsys.readouterr().out
    assert "recent runs:" in out
    assert "rejections" in out  # the run's status
    assert "order-4" in out and "platform" in out and "the event was refused" in out


def test_status_without_a_ledger(workspace, capsys):
    assert workspace.ship("status") == 0
    assert "nothing has been shipped" in capsys.readouterr().out
    assert not workspace.ledger_path.exists()


def test_validate_counts_invalid_rows_by_reason(workspace, capsys):
    workspace.meta_mart([
        *(meta_row(i) for i in range(5)),
        # Phone events: Meta's limit is 7 days (62 for store events).
        meta_row(10, age_seconds=9 * DAY, action_source="phone_call"),
        meta_row(11, age_seconds=10 * DAY, action_source="phone_call"),
        meta_row(12, payload='{"event_name": "Purchase"'),
        meta_row(13, payload='["not an object"]'),
        meta_row(4, delivery_key="order-4"),
    ])
    workspace.tiktok_mart(tiktok_row(i) for i in range(3))

    assert workspace.ship("validate") == 1

    out = capsys.readouterr().out
    assert "payload is not a JSON object" in out
    assert "delivery_key is repeated" in out
    table = out.split("invalid rows, by reason:")[0]
    lines = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    # rows, valid, invalid, expired now
    assert lines["meta"][1:5] == ["10", "7", "3", "2"]
    assert lines["tiktok"][1:5] == ["3", "3", "0", "0"]
    assert not workspace.ledger_path.exists()  # validate only reads


def test_validate_all_valid_exits_0(workspace):
    workspace.meta_mart(meta_row(i) for i in range(3))
    assert workspace.ship("validate", "meta") == 0


def test_validate_missing_mart_exits_2(workspace, capsys):
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("validate", "tiktok") == 2
    assert "has no table tiktok_conversions" in capsys.readouterr().err


def test_progress_rewrites_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    ticks = iter([0.0, 1.0, 1.05, 2.0])
    progress = Progress(stream=stream, clock=lambda: next(ticks))
    counts = RunCounts(read=10, sent=5, accepted=5)
    progress.update("meta", counts)
    progress.update("meta", counts)
    progress.update("meta", counts)  # within 0.2 s of the previous line: not redrawn
    progress.update("meta", counts, final=True)
    text = stream.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("0 failed\n")


def test_progress_is_plain_lines_elsewhere(caplog):
    caplog.set_level(logging.INFO)
    stream = io.StringIO()
    progress = Progress(stream=stream, interval=10, clock=lambda: 100.0)
    progress.update("meta", RunCounts(read=3))
    progress.update("meta", RunCounts(read=4))  # same instant: throttled
    progress.update("meta", RunCounts(read=5), final=True)
    assert stream.getvalue() == ""
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "meta: 3 read, 0 skipped, 0 sent, 0 accepted, 0 rejected, 0 failed",
        "meta: 5 read, 0 skipped, 0 sent, 0 accepted, 0 rejected, 0 failed",
    ]


def test_as_of_judges_event_age_at_that_time_in_a_dry_run(workspace, capsys):
    # A build made for as_of 30 days ago: its (phone, 7-day) events are 31 days old today.
    workspace.meta_mart(meta_row(i, age_seconds=31 * DAY, action_source="phone_call")
                        for i in range(5))
    assert workspace.ship("validate", "meta") == 0
    expired_now = capsys.readouterr().out.splitlines()[1].split()[4]
    assert expired_now == "5"
    thirty_days_ago = dt.datetime.fromtimestamp(time.time() - 30 * DAY, dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%S")
    assert workspace.ship("validate", "meta", "--as-of", thirty_days_ago) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[4] == "0"
    assert workspace.ship("run", "meta", "--dry-run", "--as-of", thirty_days_ago) == 0
    assert len(list((workspace.outbox / "meta").glob("*.json"))) == 1


def test_as_of_is_refused_for_a_live_run(workspace, capsys):
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(3))
    assert workspace.ship("run", "meta", "--as-of", "2026-01-01") == 2
    assert "--as-of only goes with a dry run" in capsys.readouterr().err


def test_both_pinterest_paths_live_is_refused(workspace, capsys):
    workspace.env(PINTEREST_ACCESS_TOKEN="pina-test-access-credential", PINTEREST_AD_ACCOUNT_ID="549755885175",
                  PINTEREST_FILE_TRANSPORT="directory",
                  PINTEREST_FILE_DIRECTORY=str(workspace.root / "drop"))
    assert workspace.ship("run", "pinterest", "pinterest_file") == 2
    assert "count every sale twice" in capsys.readouterr().err


def test_status_escapes_control_characters_a_platform_sent(workspace, capsys):
    fake = workspace.meta()
    fake.misbehave(fake.error(400, 100, "bad \x1b[31mevent\x1b[0m\r\ncolumn"))
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("run", "meta") == 1
    capsys.readouterr()

    assert workspace.ship("status") == 0

    out = capsys.readouterr().out
    assert "bad \\x1b[31mevent" in out
    assert "\x1b" not in out and "\r" not in out


def test_version_is_the_package_version():
    from importlib.metadata import version

    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "shipper", "--version"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"ship {version('offline-conversions')}"


def test_status_names_the_order_of_a_rejected_row(workspace, capsys):
    fake = workspace.meta()
    fake.poison = {"evt-4"}
    workspace.meta_mart(meta_row(i) for i in range(8))
    assert workspace.ship("run", "meta") == 1
    capsys.readouterr()

    assert workspace.ship("status") == 0

    out = capsys.readouterr().out
    rejected = out.split("rejected rows (latest")[1].splitlines()
    assert rejected[1].split()[:3] == ["destination", "order_id", "delivery_key"]
    assert rejected[2].split()[:3] == ["meta", "SO-4", "order-4"]
    with workspace.ledger() as ledger:  # the order id is looked up, not kept
        assert "order_id" not in ledger.rejections(["meta"])[0]


def test_status_json_carries_what_the_tables_show(workspace, capsys):
    fake = workspace.meta()
    fake.poison = {"evt-4"}
    workspace.meta_mart(meta_row(i) for i in range(8))
    assert workspace.ship("run", "meta") == 1
    capsys.readouterr()

    assert workspace.ship("status", "--json") == 0

    document = json.loads(capsys.readouterr().out)
    assert document["ledger"] == str(workspace.ledger_path)
    (run,) = document["runs"]
    assert (run["destination"], run["status"], run["rows_read"], run["rows_rejected"]) == \
        ("meta", "rejections", 8, 1)
    assert dt.datetime.fromisoformat(run["started_at"]).tzinfo is not None
    (rejection,) = document["rejections"]
    assert (rejection["order_id"], rejection["delivery_key"], rejection["rejected_by"]) == \
        ("SO-4", "order-4", "platform")
    assert document["rejections_by_reason"][0]["rows"] == 1
    assert document["requests_by_status"] == [] and document["refresh_problems"] == []


def test_status_json_without_a_ledger(workspace, capsys):
    assert workspace.ship("status", "--json") == 0
    assert json.loads(capsys.readouterr().out)["shipped"] is False


FAKE_DBT = """\
#!{python}
import json, os, sys
with open({record!r}, "w") as handle:
    json.dump({{"argv": sys.argv[1:], "duckdb_path": os.environ.get("DUCKDB_PATH")}}, handle)
sys.exit({code})
"""


def _fake_dbt(workspace, monkeypatch, code: int) -> Path:
    from shipper.commands import dbt_build

    record = workspace.root / "dbt-call.json"
    script = workspace.root / "dbt"
    script.write_text(FAKE_DBT.format(python=sys.executable, record=str(record), code=code))
    script.chmod(0o755)
    monkeypatch.setattr(dbt_build, "dbt_executable", lambda: str(script))
    return record


def test_run_build_ships_only_after_a_successful_build(workspace, monkeypatch, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(5))
    record = _fake_dbt(workspace, monkeypatch, 0)

    assert workspace.ship("run", "meta", "--build", "--vars", "{as_of: 2026-11-28}") == 0

    call = json.loads(record.read_text())
    argv = call["argv"]
    assert argv[0] == "build"
    assert argv[argv.index("--vars") + 1] == "{as_of: 2026-11-28}"
    assert "--profiles-dir" in argv and "--project-dir" in argv
    assert call["duckdb_path"] == str(workspace.mart_path)
    assert len(fake.accepted_ids) == 5


def test_run_build_that_fails_ships_nothing(workspace, monkeypatch, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(5))
    _fake_dbt(workspace, monkeypatch, 1)

    assert workspace.ship("run", "meta", "--build") == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("ship: dbt build failed (exit 1): nothing was shipped; fix the build "
                       "(its output is above) and run ship run --build again.")
    assert fake.accepted_ids == []
    assert not workspace.ledger_path.exists()


def test_progress_estimates_the_time_left_on_a_long_run(caplog):
    caplog.set_level(logging.INFO)
    ticks = iter([0.0, 120.0, 121.0])
    progress = Progress(stream=io.StringIO(), interval=10, clock=lambda: next(ticks))
    progress.start("meta")
    progress.update("meta", RunCounts(read=1_000, sent=250, accepted=250))
    progress.update("meta", RunCounts(read=1_000, sent=1_000, accepted=1_000), final=True)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == ("meta: 1,000 read, 0 skipped, 250 sent, 250 accepted, 0 rejected, "
                        "0 failed; 250 of 1,000 to handle (25%), about 6 min left")
    assert lines[1].endswith("0 failed")  # the final line: counts only
