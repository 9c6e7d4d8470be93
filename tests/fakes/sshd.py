"""A real OpenSSH server on loopback for the SFTP tests, and a proxy that cuts connections.

`OpenSSHServer` runs the system's `sshd` as the current user on a free
127.0.0.1 port with throwaway host and client keys and its own sshd_config:
`ForceCommand internal-sftp -d <root>` makes every login an SFTP session that
starts in `root` (ChrootDirectory is not usable under /tmp: sshd wants a
root-owned path with no group or world write access up to /). Key login works
for ed25519, ECDSA and RSA keys (RSA also in PEM format, and an ed25519 key
encrypted with a passphrase). Password login is switched on and tested for
real with `create_password_user`: a throwaway system account with a random
password (useradd, chpasswd; removed with userdel after the session), which
needs root, as the tests have here and in CI. When it cannot be made the test
fails with the reason: it is never skipped.

`CuttingProxy` forwards loopback connections to the server and hangs up a
connection after a given number of client bytes: a dropped link in the middle
of an upload, reproducibly.

If `sshd` is not installed the tests fail when the environment variable CI is
set (CI installs openssh-server) and are skipped otherwise.
"""

from __future__ import annotations

import getpass
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Self

import pytest

PASSPHRASE = "correct horse battery staple"

# kind -> ssh-keygen arguments
CLIENT_KEYS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa": ["-t", "ecdsa", "-b", "256"],
    "rsa": ["-t", "rsa", "-b", "2048"],
    "rsa_pem": ["-t", "rsa", "-b", "2048", "-m", "PEM"],
    "ed25519_encrypted": ["-t", "ed25519"],
}


def find_sshd() -> str | None:
    for candidate in ("/usr/sbin/sshd", shutil.which("sshd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_openssh() -> tuple[str, str]:
    """Paths of sshd and ssh-keygen; fail under CI, skip elsewhere, when missing."""
    sshd = find_sshd()
    keygen = shutil.which("ssh-keygen")
    if sshd and keygen:
        return sshd, keygen
    missing = "sshd" if not sshd else "ssh-keygen"
    message = f"OpenSSH's {missing} is not installed (apt-get install openssh-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must install it to run the SFTP tests", pytrace=False)
    pytest.skip(f"{message}; the SFTP tests need a real server")
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError("the server exited before accepting connections")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing accepts connections on 127.0.0.1:{port} after {timeout} s")


@dataclass(frozen=True)
class KeyPair:
    path: Path
    public: str  # "ssh-ed25519 AAAA... comment"
    fingerprint: str  # "SHA256:..."


def generate_key(keygen: str, path: Path, args: list[str], passphrase: str = "") -> KeyPair:
    subprocess.run([keygen, "-q", *args, "-N", passphrase, "-C", "ship-tests", "-f", str(path)],
                   check=True, capture_output=True)
    public = path.with_suffix(path.suffix + ".pub").read_text().strip()
    listing = subprocess.run([keygen, "-l", "-E", "sha256", "-f", str(path) + ".pub"],
                             check=True, capture_output=True, text=True).stdout.split()
    return KeyPair(path, public, listing[1])


@dataclass(frozen=True)
class PasswordUser:
    """A throwaway account that logs in with a password; `upload` is its writable folder."""

    name: str
    password: str
    uid: int
    gid: int
    home: Path  # root's, world-readable: the account can reach `upload` through it
    upload: Path

    def folder(self, name: str) -> Path:
        """A fresh folder under `upload` that the account owns."""
        path = self.upload / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(0o700)
        return path


def _admin_tool(name: str) -> str | None:
    for candidate in (f"/usr/sbin/{name}", f"/sbin/{name}", shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def create_password_user() -> PasswordUser:
    """Add a system account with a random password for the password-login tests.

    Fails the test (pytest.fail, never a skip) with the reason when it cannot: the
    password path must be proved against the real sshd, not passed over.
    """
    def fail(reason: str) -> NoReturn:
        pytest.fail(f"cannot create the throwaway SFTP account for the password-login test: "
                    f"{reason}. The test adds one with useradd/chpasswd (root needed, as in "
                    "CI) and removes it afterwards; it is never skipped.", pytrace=False)

    if os.geteuid() != 0:
        fail(f"the tests run as uid {os.geteuid()}, not root")
    tools = {name: _admin_tool(name) for name in ("useradd", "chpasswd", "userdel")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        fail(f"{', '.join(missing)} not found (apt-get install passwd)")
    shell = next((path for path in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
                  if os.access(path, os.X_OK)), None)
    if shell is None:
        fail("no nologin or false shell to give the account")
    name = f"shipsftp{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    home = Path(tempfile.mkdtemp(prefix="ship-sftp-password-", dir="/tmp"))
    home.chmod(0o755)
    created = False
    try:
        subprocess.run([tools["useradd"], "--system", "--user-group", "--no-create-home",
                        "--home-dir", str(home), "--shell", str(shell), name],
                       check=True, capture_output=True, text=True)
        created = True
        subprocess.run([tools["chpasswd"]], input=f"{name}:{password}\n", check=True,
                       capture_output=True, text=True)
        entry = pwd.getpwnam(name)
    except (subprocess.CalledProcessError, KeyError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        if created:
            subprocess.run([tools["userdel"], "--force", name], check=False,
                           capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        fail(f"adding {name} failed ({str(detail).strip()})")
    upload = home / "upload"
    upload.mkdir()
    os.chown(upload, entry.pw_uid, entry.pw_gid)
    upload.chmod(0o700)
    return PasswordUser(name, password, entry.pw_uid, entry.pw_gid, home, upload)


def remove_password_user(user: PasswordUser) -> None:
    """Delete the account (and its group) and its folder; a failure is reported, not hidden."""
    userdel = _admin_tool("userdel") or "userdel"
    result = subprocess.run([userdel, "--force", user.name], check=False, capture_output=True,
                            text=True)
    shutil.rmtree(user.home, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"userdel {user.name} failed: {result.stderr.strip()}")


class OpenSSHServer:
    """sshd on 127.0.0.1 serving SFTP only, with its own keys and config in `workdir`."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "sftp-root"
        self.port = 0
        self.user = getpass.getuser()
        self.process: subprocess.Popen[bytes] | None = None
        self.client_keys: dict[str, KeyPair] = {}
        self.host_key: KeyPair | None = None
        self.other_host_key: KeyPair | None = None  # never served: the "changed key" case

    def start(self) -> OpenSSHServer:
        sshd, keygen = require_openssh()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        keys = self.workdir / "keys"
        keys.mkdir(exist_ok=True)
        self.host_key = generate_key(keygen, keys / "host_ed25519", ["-t", "ed25519"])
        self.other_host_key = generate_key(keygen, keys / "other_host_ed25519", ["-t", "ed25519"])
        for kind, args in CLIENT_KEYS.items():
            passphrase = PASSPHRASE if kind.endswith("_encrypted") else ""
            self.client_keys[kind] = generate_key(keygen, keys / f"client_{kind}", args,
                                                  passphrase)
        authorized = self.workdir / "authorized_keys"
        authorized.write_text("".join(key.public + "\n" for key in self.client_keys.values()))
        try:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
        except OSError:
            pass  # not root: sshd runs without privilege separation then
        self.port = free_port()
        config = self.workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {self.host_key.path}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin yes",
            "PubkeyAuthentication yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no",
            "MaxStartups 100",
            "MaxAuthTries 10",
            "LogLevel INFO",  # "Accepted password for ...": what a login used
            "Subsystem sftp internal-sftp",
            f"ForceCommand internal-sftp -d {self.root}",
            "",
        ]))
        self.log = self.workdir / "sshd.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, 10, alive=lambda: self.process.poll() is None)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.log.read_text()}") from None
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def known_hosts_line(self, port: int | None = None, key: KeyPair | None = None) -> str:
        port = self.port if port is None else port
        key_type, blob = (key or self.host_key).public.split()[:2]  # type: ignore[union-attr]
        name = self.host if port == 22 else f"[{self.host}]:{port}"
        return f"{name} {key_type} {blob}\n"

    @property
    def fingerprint(self) -> str:
        assert self.host_key is not None
        return self.host_key.fingerprint

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a target; hangs up connections after N client bytes.

    `cut(after_bytes, connections)` cuts the next `connections` connections once the
    client has sent `after_bytes` bytes through them; later ones pass untouched.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._cut_after: int | None = None
        self._cuts_left = 0
        self.connections = 0
        self.cut_count = 0
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def cut(self, after_bytes: int, connections: int = 1_000_000) -> None:
        with self._lock:
            self._cut_after = after_bytes
            self._cuts_left = connections

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                limit = self._cut_after if self._cuts_left > 0 else None
                if limit is not None:
                    self._cuts_left -= 1
                self._sockets += [client, upstream]
            budget = {"left": limit}
            for source, sink, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, counted, budget, client,
                                                          upstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool,
              budget: dict[str, int | None], client: socket.socket,
              upstream: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if counted and budget["left"] is not None:
                    if len(data) >= budget["left"]:
                        sink.sendall(data[:budget["left"]])
                        with self._lock:
                            self.cut_count += 1
                        break
                    budget["left"] -= len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
