"""The ledger is the memory of what was sent; credentials and identifiers stay private."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.redact import register_secret, scrub
from tests.shipper.marts import META_TOKEN, meta_row

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the ledger ---------------------------------------------------------------------------------


def test_a_lost_ledger_stops_the_next_live_run_instead_of_resending(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(20))
    assert workspace.ship("run", "meta") == 0
    assert len(fake.accepted_ids) == 20

    for path in workspace.root.glob("ledger.duckdb*"):
        if not path.name.endswith(".delivered"):
            path.unlink()
    capsys.readouterr()

    assert workspace.ship("run", "meta") == 2
    assert "has no record of what meta delivered" in capsys.readouterr().err
    assert len(fake.accepted_ids) == 20  # nothing sent twice

    # Losing it on purpose: --first-run sends everything again.
    assert workspace.ship("run", "meta", "--first-run") == 0
    assert len(fake.accepted_ids) == 40


def test_a_relative_ledger_path_is_the_same_ledger_from_any_directory(workspace, tmp_path_factory):
    fake = workspace.meta()
    workspace.env(SHIP_LEDGER_PATH="ledger.duckdb")
    workspace.meta_mart(meta_row(i) for i in range(5))
    assert workspace.ship("run", "meta") == 0

    workspace.monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert workspace.ship("run", "meta") == 0
    assert len(fake.accepted_ids) == 5
    assert not (Path.cwd() / "ledger.duckdb").exists()


def test_the_summary_names_the_ledger_and_the_main_file_holds_the_run(workspace, capsys):
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(5))
    assert workspace.ship("run", "meta") == 0
    assert f"ledger: {workspace.ledger_path}" in capsys.readouterr().out
    wal = workspace.ledger_path.with_name("ledger.duckdb.wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed when the run ended


# -- files holding identifiers --------------------------------------------------------------------


def test_the_ledger_and_its_scratch_files_are_the_owners_only(workspace):
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(5))
    assert workspace.ship("run", "meta") == 0
    workspace.meta_mart(meta_row(i) for i in range(9))  # a rerun stages its pending rows
    assert workspace.ship("run", "meta") == 0

    assert _mode(workspace.ledger_path) == 0o600
    # Staged pending rows are removed when the run ends.
    assert list(workspace.root.glob(".ledger.duckdb.*")) == []


def test_scratch_files_a_killed_run_left_are_removed_on_the_next_start(workspace):
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(3))
    leftover = workspace.root / ".ledger.duckdb.pending-meta.parquet"
    leftover.write_bytes(b"identifiers of a killed run")
    spill = workspace.root / ".ledger.duckdb.reader.tmp"
    spill.mkdir()
    (spill / "spill.bin").write_bytes(b"x")

    assert workspace.ship("run", "meta") == 0

    assert not leftover.exists() and not spill.exists()


def test_dry_run_outbox_files_are_the_owners_only(workspace):
    workspace.meta_mart(meta_row(i) for i in range(3))
    assert workspace.ship("run", "meta", "--dry-run") == 0
    (body,) = (workspace.outbox / "meta").glob("*.json")
    assert _mode(body) == 0o600
    assert _mode(workspace.outbox / "meta") == 0o700
    # The umask is the process's own again once ship returns.
    probe = workspace.root / "probe"
    probe.write_text("")
    assert _mode(probe) == 0o666 & ~_current_umask()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- credentials ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok-0123456789\nSECRET-REST", "tok-0123456789\tx",
                                   "tok-0123456789\x7f"])
def test_a_credential_with_a_control_character_is_refused_without_echoing_it(
        workspace, capsys, token):
    fake = workspace.meta()
    workspace.env(META_ACCESS_TOKEN=token)
    workspace.meta_mart(meta_row(i) for i in range(3))

    assert workspace.ship("run", "meta") == 2

    captured = capsys.readouterr()
    assert "META_ACCESS_TOKEN holds a control character" in captured.err
    assert "tok-0123456789" not in captured.out + captured.err
    assert fake.requests == []


def test_every_form_of_a_secret_is_scrubbed():
    secret = "s3cr3t/with+odd chars&more"
    register_secret(secret)
    for form in (secret, "s3cr3t%2Fwith%2Bodd%20chars%26more",
                 "s3cr3t%2Fwith%2Bodd+chars%26more", repr(secret)):
        assert "s3cr3t" not in scrub(f"failed: {form}"), form
    assert META_TOKEN not in scrub(f"url?access_token={META_TOKEN}")


def test_the_contact_mask_leaves_urls_readable():
    assert scrub("upload to sftp://criteo@sftp.criteo.example/in failed") == (
        "upload to sftp://criteo@sftp.criteo.example/in failed")
    assert scrub("profile olivia.x+promo@gmail.com refused") == "profile <email> refused"
    assert scrub("phone +353854157718 refused") == "phone <phone> refused"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_ledger_stops_with_one_sentence(workspace, capsys, damage):
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(3000))
    assert workspace.ship("run", "meta") == 0
    ledger = workspace.ledger_path
    if damage == "truncated":
        with ledger.open("r+b") as file:
            file.truncate(ledger.stat().st_size // 2)
    else:
        ledger.write_bytes(b"not a ledger" * 1000)
    capsys.readouterr()

    assert workspace.ship("run", "meta") == 2

    err = capsys.readouterr().err
    assert err.startswith("ship: ") and str(ledger) in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_full_disk_stops_with_one_sentence(workspace):
    """Writes past a file-size limit fail as on a full disk: the run stops, says so in
    one sentence, and what was recorded before stays true."""
    workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(20_000))
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))

    result = subprocess.run([sys.executable, "-m", "shipper", "run", "meta"], env=env,
                            cwd=workspace.root, capture_output=True, text=True, timeout=120,
                            preexec_fn=small_disk, check=False)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "could not be written" in result.stderr or "cannot be read" in result.stderr


# -- a mart that is not the one to send ---------------------------------------------------------


def test_an_empty_mart_stops_a_live_run_unless_allowed(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart([])

    assert workspace.ship("run", "meta") == 2
    assert "meta_conversions is empty" in capsys.readouterr().err
    with workspace.ledger() as ledger:
        (run,) = ledger.recent_runs(["meta"])
    assert run["status"] == "incomplete" and "is empty" in run["message"]

    assert workspace.ship("run", "meta", "--allow-shrink") == 0
    assert workspace.ship("run", "meta", "--dry-run") == 0  # a rehearsal is not stopped
    assert fake.requests == []


def test_a_mart_that_shrank_stops_a_live_run_unless_allowed(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart(meta_row(i) for i in range(100))
    assert workspace.ship("run", "meta") == 0

    workspace.meta_mart(meta_row(i) for i in range(100, 130))  # 70% fewer rows
    assert workspace.ship("run", "meta") == 2
    assert "70% fewer than the 100 the last live run of meta read" in capsys.readouterr().err
    assert len(fake.accepted_ids) == 100

    workspace.env(SHIP_MAX_SHRINK="0.8")
    assert workspace.ship("run", "meta") == 0
    assert len(fake.accepted_ids) == 130
