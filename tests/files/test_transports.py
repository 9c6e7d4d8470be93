"""Transports without a server: the directory's atomic write when the disk fails, the
plain-rename fallback for servers without posix-rename, fingerprints, known_hosts names."""

from __future__ import annotations

import errno
import random
import shutil
from pathlib import Path

import pytest

from shipper.files import transports
from shipper.files.transports import (
    DirectoryTransport,
    SftpSecrets,
    SftpTarget,
    SftpTransport,
    TransportError,
    host_key_entry,
    normalise_fingerprint,
    with_retries,
)
from shipper.retry import RetryPolicy
from tests.files.conftest import FileTests, criteo_row


def test_a_failing_disk_leaves_neither_a_final_nor_a_temporary_file(tmp_path, monkeypatch):
    local = tmp_path / "part.csv"
    local.write_bytes(b"a,b\r\n" * 1000)
    target = tmp_path / "drop"

    def copy_then_fail(source, destination, length=0):
        destination.write(source.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(TransportError, match="No space left") as raised:
        DirectoryTransport(target).put(local, "f.csv")
    assert not raised.value.fatal  # a full disk may clear: retried
    assert list(target.iterdir()) == []


def test_the_file_loop_retries_a_failing_directory_then_records_the_rows_failed(
        files: FileTests, monkeypatch):
    target = files.directory("criteo")
    files.env(CRITEO_MAX_ATTEMPTS="2")
    files.mart("criteo", [criteo_row(1), criteo_row(2)])
    real_put = DirectoryTransport.put
    calls = []

    def flaky_put(self, local, name):
        calls.append(name)
        if len(calls) <= 2:
            raise TransportError("the bucket mount is gone")
        return real_put(self, local, name)

    monkeypatch.setattr(DirectoryTransport, "put", flaky_put)
    assert files.ship("run", "criteo") == 2
    assert files.listing(target) == []
    assert files.statuses("criteo") == {"failed": 2}
    assert files.ship("run", "criteo") == 0
    assert len(files.listing(target)) == 1
    assert files.statuses("criteo") == {"delivered": 2}


class _Flaky:
    """A transport whose `put` raises the errors given, in turn, then succeeds."""

    kind = "directory"

    def __init__(self, *errors: TransportError, took: float = 0.0, clock=None) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.resets = 0
        self.took = took
        self.clock = clock

    def put(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.took
        if self.errors:
            raise self.errors.pop(0)
        return "delivered"

    def reset(self) -> None:
        self.resets += 1


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _retry(flaky: _Flaky, clock: _Clock, policy: RetryPolicy) -> str:
    return with_retries(flaky, "uploading f.csv", flaky.put, policy=policy,
                        clock=lambda: clock.now, sleep=clock.sleep, rng=random.Random(3),
                        name="criteo")


def test_transient_failures_are_retried_under_the_shared_policy_and_the_link_reset():
    clock = _Clock()
    flaky = _Flaky(TransportError("broken pipe"), TransportError("timed out"))

    assert _retry(flaky, clock, RetryPolicy(300.0, 8, 1.0, 60.0)) == "delivered"

    assert flaky.calls == 3 and flaky.resets == 2
    assert len(clock.waits) == 2
    assert 0 <= clock.waits[0] <= 1.0 and 0 <= clock.waits[1] <= 2.0


def test_a_fatal_failure_is_not_retried():
    clock = _Clock()
    flaky = _Flaky(TransportError("permission denied", fatal=True))

    with pytest.raises(TransportError, match="permission denied") as raised:
        _retry(flaky, clock, RetryPolicy(300.0, 8, 1.0, 60.0))
    assert raised.value.fatal and flaky.calls == 1 and clock.waits == []


def test_max_attempts_then_the_last_failure_is_raised():
    clock = _Clock()
    flaky = _Flaky(*(TransportError(f"failure {n}") for n in range(1, 10)))

    with pytest.raises(TransportError, match="uploading f.csv failed 3 times, last: failure 3"):
        _retry(flaky, clock, RetryPolicy(300.0, 3, 1.0, 60.0))
    assert flaky.calls == 3 and flaky.resets == 3 and len(clock.waits) == 2


def test_an_upload_is_retried_while_give_up_after_is_not_spent():
    # Each upload fails after 40 s; backoff ceilings 100 s, so the waits are large too.
    clock = _Clock()
    flaky = _Flaky(*(TransportError("reset") for _ in range(10)), took=40.0, clock=clock)

    with pytest.raises(TransportError, match="failed"):
        _retry(flaky, clock, RetryPolicy(100.0, 10, 100.0, 100.0))
    # Retried after every failure that came before 100 s, whatever the wait then.
    failed_at = []
    total = 0.0
    for index in range(flaky.calls):
        total += 40.0
        failed_at.append(total)
        if index < len(clock.waits):
            total += clock.waits[index]
    assert all(at < 100.0 for at in failed_at[:-1]) and failed_at[-1] >= 100.0


class _OldServer:
    """An SFTP client whose server lacks the posix-rename extension."""

    def __init__(self) -> None:
        self.renamed: list[tuple[str, str]] = []

    def posix_rename(self, old: str, new: str) -> None:
        raise OSError("Operation unsupported")

    def rename(self, old: str, new: str) -> None:
        self.renamed.append((old, new))


def test_plain_rename_is_used_when_the_server_lacks_posix_rename():
    target = SftpTarget("h", 22, "u", "in", None, "", 1.0, 1.0, "CRITEO")
    transport = SftpTransport(target, SftpSecrets(password="x"))
    server = _OldServer()
    transport._rename(server, "in/.f.csv.part", "in/f.csv")
    transport._rename(server, "in/.g.csv.part", "in/g.csv")
    assert server.renamed == [("in/.f.csv.part", "in/f.csv"), ("in/.g.csv.part", "in/g.csv")]
    assert transport._posix_rename is False


@pytest.mark.parametrize("text", ["SHA256:abc+/d", "sha256:abc+/d=", "abc+/d", " SHA256:abc+/d "])
def test_fingerprints_are_compared_in_openssh_form(text):
    assert normalise_fingerprint(text) == "SHA256:abc+/d"


def test_known_hosts_names_servers_off_port_22_with_brackets():
    assert host_key_entry("sftp.example.com", 22) == "sftp.example.com"
    assert host_key_entry("sftp.example.com", 2222) == "[sftp.example.com]:2222"


def test_a_key_that_is_no_key_is_explained():
    with pytest.raises(TransportError, match="holds no readable private key") as raised:
        transports.load_private_key(SftpSecrets(private_key="hello", key_source="X"), "CRITEO")
    assert raised.value.fatal


def test_ship_validate_checks_file_destinations(files: FileTests, capsys):
    files.mart("criteo", [criteo_row(1), criteo_row(2), criteo_row(3, delivery_key=None),
                          criteo_row(4, delivery_key="evt-00001:1")])
    assert files.ship("validate", "criteo") == 1
    out = capsys.readouterr().out
    assert "delivery_key is missing" in out
    assert "delivery_key is repeated" in out

    files.mart("criteo", [criteo_row(1), criteo_row(2)])
    assert files.ship("validate", "criteo") == 0

    files.mart("criteo", [{"delivery_key": "k"}], {"delivery_key": "varchar",
                                                   "event_id": "varchar",
                                                   "when": "timestamp"})
    assert files.ship("validate", "criteo") == 2
    assert 'column "when" is TIMESTAMP' in capsys.readouterr().err


def test_paths_in_the_config_file_are_relative_to_it(files: FileTests, tmp_path: Path):
    config = files.ws.config_path
    config.write_text(config.read_text() + '\n[destinations.criteo]\ntransport = "directory"\n'
                      'directory = "drop-here"\n')
    files.mart("criteo", [criteo_row(1)])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    files.ws.monkeypatch.chdir(elsewhere)
    assert files.ship("run", "criteo") == 0
    assert len(files.listing(config.parent / "drop-here")) == 1


def _ed25519_text(password: bytes | None = None) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption).decode()


def test_key_passphrases_are_checked_and_a_needless_one_is_ignored():
    plain = SftpSecrets(private_key=_ed25519_text(), key_source="K", passphrase="set anyway")
    assert transports.load_private_key(plain, "CRITEO").get_name() == "ssh-ed25519"
    locked = _ed25519_text(b"secret")
    with pytest.raises(TransportError, match="is encrypted: set CRITEO_SFTP_KEY_PASSPHRASE"):
        transports.load_private_key(SftpSecrets(private_key=locked, key_source="K"), "CRITEO")
    with pytest.raises(TransportError, match="does not open with CRITEO_SFTP_KEY_PASSPHRASE"):
        transports.load_private_key(
            SftpSecrets(private_key=locked, key_source="K", passphrase="wrong"), "CRITEO")
    opened = SftpSecrets(private_key=locked, key_source="K", passphrase="secret")
    assert transports.load_private_key(opened, "CRITEO").get_name() == "ssh-ed25519"
