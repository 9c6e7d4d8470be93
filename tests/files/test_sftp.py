"""File delivery against a real OpenSSH server on loopback (tests/fakes/sshd.py).

Covers: a good upload byte for byte, every key type, a password login (a throwaway
account with a password, from the environment), the host key checks (known_hosts, pinned
fingerprint, unknown and changed keys), refused credentials, a connection cut mid-upload,
reruns, --force, and a run killed between the upload and the ledger write.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.files.conftest import FileTests, criteo_row, read_rows

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _orders(count: int, lines: int = 1) -> list[dict]:
    return [criteo_row(order, line) for order in range(count) for line in range(1, lines + 1)]


def _finals(folder: Path) -> list[str]:
    return [name for name in FileTests.listing(folder) if not name.startswith(".")]


def test_upload_lands_byte_for_byte_and_is_recorded(files: FileTests, capsys):
    files.mart("criteo", _orders(40, lines=2))
    assert files.ship("run", "criteo", "--dry-run") == 0
    (dry,) = sorted((files.ws.outbox / "criteo").iterdir())
    remote = files.sftp("criteo")

    assert files.ship("run", "criteo") == 0

    assert files.listing(remote) == _finals(remote)  # no temporary file left
    (name,) = files.listing(remote)
    uploaded = (remote / name).read_bytes()
    assert uploaded == dry.read_bytes()  # the bytes the dry run showed are the bytes sent
    (record,) = files.files_table("criteo")
    assert record["status"] == "delivered"
    assert record["sha256"] == hashlib.sha256(uploaded).hexdigest()
    assert (record["rows"], record["bytes"], record["transport"]) == (80, len(uploaded), "sftp")
    assert record["location"] == f"sftp://{files.server.user}@127.0.0.1:{files.server.port}" \
        f"{remote}/{name}"
    assert files.statuses("criteo") == {"delivered": 80}
    out = capsys.readouterr().out
    assert "criteo files:" in out and f"delivered {name}" in " ".join(out.split())


@pytest.mark.parametrize("key", ["ecdsa", "rsa", "rsa_pem", "ed25519_encrypted"])
def test_every_key_type_logs_in(files: FileTests, key):
    files.mart("criteo", _orders(2))
    remote = files.sftp("criteo", key=key)
    assert files.ship("run", "criteo") == 0
    assert len(_finals(remote)) == 1


def test_the_key_itself_can_be_given_in_the_environment(files: FileTests):
    files.mart("criteo", _orders(2))
    remote = files.sftp("criteo", key=None)
    text = files.server.client_keys["ed25519"].path.read_text()
    files.env(CRITEO_SFTP_PRIVATE_KEY=text.replace("\n", "\\n"))  # pasted on one line
    assert files.ship("run", "criteo") == 0
    assert len(_finals(remote)) == 1


@pytest.mark.parametrize(("passphrase", "message"), [
    (None, "is encrypted: set CRITEO_SFTP_KEY_PASSPHRASE."),
    ("wrong passphrase", "does not open with CRITEO_SFTP_KEY_PASSPHRASE"),
])
def test_an_encrypted_key_without_the_right_passphrase_is_explained(files: FileTests, capsys,
                                                                     passphrase, message):
    files.mart("criteo", _orders(2))
    remote = files.sftp("criteo", key="ed25519_encrypted")
    if passphrase is None:
        files.ws.monkeypatch.delenv("CRITEO_SFTP_KEY_PASSPHRASE")
    else:
        files.env(CRITEO_SFTP_KEY_PASSPHRASE=passphrase)
    assert files.ship("run", "criteo") == 2
    assert message in capsys.readouterr().out
    assert files.listing(remote) == []


def test_an_unreadable_key_file_is_explained(files: FileTests, capsys):
    files.mart("criteo", _orders(2))
    files.sftp("criteo")
    not_a_key = files.root / "not-a-key"
    not_a_key.write_text("hello\n")
    files.env(CRITEO_SFTP_KEY_PATH=str(not_a_key))
    assert files.ship("run", "criteo") == 2
    assert "holds no readable private key: give an ed25519, ECDSA or RSA key" in \
        capsys.readouterr().out
    files.env(CRITEO_SFTP_KEY_PATH=str(files.root / "missing"))
    assert files.ship("run", "criteo") == 2
    assert "cannot read the private key file" in capsys.readouterr().out


def test_a_changed_host_key_is_refused_and_nothing_is_uploaded(files: FileTests, capsys):
    files.mart("criteo", _orders(3))
    server = files.server
    remote = files.sftp("criteo", known_hosts=server.known_hosts_line(key=server.other_host_key))

    assert files.ship("run", "criteo") == 2

    out = capsys.readouterr().out
    assert (f"the SFTP server 127.0.0.1:{server.port} presented host key ssh-ed25519 "
            f"{server.fingerprint}, which does not match") in out
    assert "refusing to connect (the key changed, or someone is intercepting the connection)" \
        in out
    assert files.listing(remote) == []
    assert files.statuses("criteo") == {"failed": 3}
    (record,) = files.files_table("criteo")
    assert record["status"] == "failed"

    # Fixed known_hosts: the next run delivers the rows.
    files.sftp("criteo")
    assert files.ship("run", "criteo") == 0
    assert len(_finals(remote)) == 1
    assert files.statuses("criteo") == {"delivered": 3}


def test_an_unknown_host_is_refused(files: FileTests, capsys):
    files.mart("criteo", _orders(3))
    remote = files.sftp("criteo", known_hosts="")
    assert files.ship("run", "criteo") == 2
    out = capsys.readouterr().out
    assert f"the SFTP server 127.0.0.1:{files.server.port} is not in the known_hosts file" in out
    assert "refusing to connect to an unknown host" in out
    assert files.listing(remote) == []
    # A host entry for another port is not this server either.
    files.sftp("criteo", known_hosts=files.server.known_hosts_line(port=2222))
    assert files.ship("run", "criteo") == 2
    assert files.listing(remote) == []


def test_a_pinned_fingerprint_decides(files: FileTests, capsys):
    files.mart("criteo", _orders(3))
    remote = files.sftp("criteo", known_hosts="")
    files.env(CRITEO_SFTP_HOST_KEY_SHA256=files.server.other_host_key.fingerprint)
    assert files.ship("run", "criteo") == 2
    assert "not the pinned" in capsys.readouterr().out
    assert files.listing(remote) == []

    files.env(CRITEO_SFTP_HOST_KEY_SHA256=files.server.fingerprint.removeprefix("SHA256:"))
    assert files.ship("run", "criteo") == 0
    assert len(_finals(remote)) == 1


def test_a_password_from_the_environment_logs_in_after_the_host_key_is_checked(
        files: FileTests, capsys):
    """Not only keys: a real account with a password (CRITEO_SFTP_PASSWORD) uploads to the
    real sshd; the host key is verified first, so a changed key stops the run before the
    password is offered; the password appears in no output and no ledger message."""
    files.mart("criteo", _orders(4, lines=2))
    user, remote = files.sftp_password("criteo")
    server = files.server

    # A changed host key: refused, nothing uploaded.
    (files.root / "known_hosts").write_text(server.known_hosts_line(key=server.other_host_key))
    assert files.ship("run", "criteo") == 2
    out = capsys.readouterr()
    assert "which does not match" in out.out
    assert files.listing(remote) == []
    assert f"password for {user.name}" not in server.log.read_text()  # never offered

    # The right key: the password logs in and the file lands, written by that account.
    (files.root / "known_hosts").write_text(server.known_hosts_line())
    assert files.ship("run", "criteo") == 0
    captured = capsys.readouterr()
    (name,) = files.listing(remote)
    assert (remote / name).stat().st_uid == user.uid  # uploaded as the password account
    assert f"Accepted password for {user.name} from 127.0.0.1" in server.log.read_text()
    assert len(read_rows(remote / name)) == 9
    assert files.statuses("criteo") == {"delivered": 8}
    (record,) = [r for r in files.files_table("criteo") if r["status"] == "delivered"]
    assert record["location"].startswith(f"sftp://{user.name}@127.0.0.1:{server.port}/")
    assert user.password not in captured.out + captured.err
    with duckdb.connect(str(files.ws.ledger_path), read_only=True) as con:
        messages = " ".join(str(value) for row in con.execute(
            "select message from runs union all select error from files").fetchall()
            for value in row)
    assert user.password not in messages


def test_a_wrong_password_for_a_real_account_is_refused_clearly(files: FileTests, capsys):
    files.mart("criteo", _orders(2))
    user, remote = files.sftp_password("criteo")
    files.env(CRITEO_SFTP_PASSWORD=user.password + "-wrong")
    assert files.ship("run", "criteo") == 2
    out = capsys.readouterr().out
    assert (f"the SFTP server 127.0.0.1:{files.server.port} refused the password in "
            f"CRITEO_SFTP_PASSWORD for user {user.name}.") in out
    assert user.password not in out
    assert files.listing(remote) == []
    assert files.statuses("criteo") == {"failed": 2}


def test_a_refused_password_is_explained(files: FileTests, capsys):
    # The password is offered for root, whose password is locked: a refusal, reported
    # clearly (the throwaway account above proves a right password logs in).
    files.mart("criteo", _orders(2))
    remote = files.sftp("criteo", key=None)
    files.env(CRITEO_SFTP_PASSWORD="not-the-password")
    assert files.ship("run", "criteo") == 2
    out = capsys.readouterr().out
    assert (f"the SFTP server 127.0.0.1:{files.server.port} refused the password in "
            f"CRITEO_SFTP_PASSWORD for user {files.server.user}.") in out
    assert "not-the-password" not in out
    assert files.listing(remote) == []


def test_a_missing_remote_folder_is_explained(files: FileTests, capsys):
    files.mart("criteo", _orders(2))
    files.sftp("criteo")
    files.env(CRITEO_SFTP_REMOTE_DIR=str(files.server.root / "no-such-folder"))
    assert files.ship("run", "criteo") == 2
    assert "does not exist (fix sftp_remote_dir)" in capsys.readouterr().out


def test_a_connection_cut_mid_upload_leaves_no_final_file_and_a_rerun_completes(
        files: FileTests, capsys):
    files.mart("criteo", _orders(1500))  # ~280 KB
    proxy = files.proxy()
    remote = files.sftp("criteo", port=proxy.port)
    files.env(CRITEO_MAX_ATTEMPTS="3")
    proxy.cut(after_bytes=60_000)  # every connection dies ~60 KB into the upload

    assert files.ship("run", "criteo") == 2

    assert proxy.cut_count == 3
    assert _finals(remote) == []  # nothing under a final name, ever
    assert files.listing(remote) == []  # and the partial temporary file was removed
    out = capsys.readouterr().out
    assert "uploading criteo_" in out and "failed 3 times" in out
    assert files.statuses("criteo") == {"failed": 1500}
    (record,) = files.files_table("criteo")
    assert (record["status"], record["attempts"]) == ("failed", 3)
    assert len(files.ws.clock.waits) == 2  # backed off between the three attempts

    proxy.cut(after_bytes=0, connections=0)  # the link is back
    assert files.ship("run", "criteo") == 0
    (name,) = files.listing(remote)
    assert len(read_rows(remote / name)) == 1501
    assert files.statuses("criteo") == {"delivered": 1500}


def test_a_single_drop_is_retried_within_the_run(files: FileTests):
    files.mart("criteo", _orders(1500))
    proxy = files.proxy()
    remote = files.sftp("criteo", port=proxy.port)
    proxy.cut(after_bytes=60_000, connections=1)
    assert files.ship("run", "criteo") == 0
    assert proxy.cut_count == 1
    (name,) = files.listing(remote)
    (record,) = files.files_table("criteo")
    assert (record["status"], record["attempts"]) == ("delivered", 2)
    assert record["sha256"] == hashlib.sha256((remote / name).read_bytes()).hexdigest()


def test_a_rerun_skips_the_delivered_file_and_force_uploads_again(files: FileTests):
    files.mart("criteo", _orders(5, lines=2))
    remote = files.sftp("criteo")
    assert files.ship("run", "criteo") == 0
    (first,) = files.listing(remote)

    assert files.ship("run", "criteo") == 0
    assert files.listing(remote) == [first]

    assert files.ship("run", "criteo", "--force") == 0
    names = files.listing(remote)
    assert len(names) == 2
    second = next(name for name in names if name != first)
    assert (remote / second).read_bytes() == (remote / first).read_bytes()
    assert [record["status"] for record in files.files_table("criteo")] == [
        "delivered", "delivered"]


def _run_killed_after_upload(files: FileTests) -> None:
    """`ship run criteo` in a subprocess that SIGKILLs itself once the server holds the file
    under its final name, before the ledger hears of it."""
    script = (
        "import os, signal, sys\n"
        "from shipper.files import journal\n"
        "def die(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "journal.FileJournal.mark_uploaded = die\n"
        "from shipper import cli\n"
        "sys.exit(cli.main(['run', 'criteo']))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], cwd=files.root, env=env,
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()


def test_a_run_killed_after_the_upload_loses_nothing_and_sends_nothing_twice(files: FileTests):
    files.mart("criteo", _orders(6))
    remote = files.sftp("criteo")
    _run_killed_after_upload(files)
    (name,) = files.listing(remote)  # the upload finished
    (record,) = files.files_table("criteo")
    assert record["status"] == "uploading"  # the ledger did not hear of it
    assert files.statuses("criteo") == {}

    assert files.ship("run", "criteo") == 0

    assert files.listing(remote) == [name]  # found on the server: not uploaded again
    assert files.statuses("criteo") == {"delivered": 6}
    (record,) = files.files_table("criteo")
    assert record["status"] == "delivered"


def test_a_killed_run_whose_file_was_picked_up_sends_that_file_s_rows_again(files: FileTests):
    files.mart("criteo", _orders(6))
    remote = files.sftp("criteo")
    _run_killed_after_upload(files)
    (name,) = files.listing(remote)
    (remote / name).unlink()  # the platform took the file away before the rerun

    assert files.ship("run", "criteo") == 0

    (resent,) = files.listing(remote)
    assert resent != name
    assert len(read_rows(remote / resent)) == 7  # the duplicates: exactly that file's rows
    assert [record["status"] for record in files.files_table("criteo")] == [
        "abandoned", "delivered"]
    assert files.statuses("criteo") == {"delivered": 6}


@pytest.mark.parametrize("broken", ["not root", "no useradd"])
def test_the_password_account_fails_loudly_when_it_cannot_be_made(monkeypatch, broken):
    """The password test is never skipped: without root or the tools it fails, saying why."""
    from tests.fakes import sshd as fake_sshd

    if broken == "not root":
        monkeypatch.setattr(fake_sshd.os, "geteuid", lambda: 1000)
        expected = "the tests run as uid 1000, not root"
    else:
        monkeypatch.setattr(fake_sshd, "_admin_tool",
                            lambda name: None if name == "useradd" else f"/usr/sbin/{name}")
        expected = "useradd not found"
    with pytest.raises(pytest.fail.Exception) as failure:
        fake_sshd.create_password_user()
    assert "cannot create the throwaway SFTP account for the password-login test" in \
        str(failure.value)
    assert expected in str(failure.value)
    assert "never skipped" in str(failure.value)
