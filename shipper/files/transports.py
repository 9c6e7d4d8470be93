"""Where a finished file goes: an SFTP server, or a local directory (a mounted
bucket, a folder someone uploads by hand, the dry run's outbox).

Every transport puts a file the same way: under a temporary name first
(`.<name>.part`), its size checked, then renamed into place, so a dropped
connection or a crash never leaves a partial file under the final name. A
platform that picks up every new file therefore only ever sees whole ones.

Failures are `TransportError`s; `fatal` ones (host key refused, credentials
refused, no such directory, permission denied) stop the destination because no
retry can help; the others are retried (`with_retries`, the file loop's way)
under `shipper.retry`'s one policy: full-jitter backoff, `max_attempts`, and
`give_up_after_seconds`, an upload being retried as long as that budget is not
spent when it fails. The connection is dropped before each retry.

SFTP host keys are always verified: against a pinned SHA-256 fingerprint when
one is configured, otherwise against a known_hosts file. An unknown host, or a
key that differs from the one on record, is refused; nothing is ever added to
known_hosts on the fly.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import random
import shutil
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from shipper.redact import get_logger
from shipper.retry import GaveUp, Retrier, Retry, RetryPolicy

if TYPE_CHECKING:  # paramiko is imported where it is used: `ship` commands that upload
    # nothing skip its cost
    import paramiko
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

log = get_logger(__name__)

T = TypeVar("T")

COPY_CHUNK = 256 * 1024


class TransportError(Exception):
    """A delivery failure worded for people; `fatal` when retrying cannot help."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def temporary_name(name: str) -> str:
    """The name a file has while it is being written: hidden, and not matching `*.csv`."""
    return f".{name}.part"


class Transport(Protocol):
    kind: str  # "sftp" | "directory"

    def describe(self, name: str = "") -> str:
        """Where `name` goes, for people (no credentials)."""
        ...

    def put(self, local: Path, name: str) -> str:
        """Deliver `local` as `name` atomically; return its location."""
        ...

    def size(self, name: str) -> int | None:
        """Size of the delivered file `name`, or None when it is not there."""
        ...

    def discard_temporary(self, name: str) -> None:
        """Remove what an interrupted put of `name` left under its temporary name."""
        ...

    def reset(self) -> None:
        """Drop the connection after a failure; the next call reconnects."""
        ...

    def close(self) -> None: ...


def with_retries(transport: Transport, what: str, action: Callable[[], T], *,
                 policy: RetryPolicy, clock: Callable[[], float],
                 sleep: Callable[[float], None], rng: random.Random, name: str) -> T:
    """`action()` (a call on `transport`), retried under `policy` while it raises a
    TransportError that is not fatal, the connection reset before each retry; a fatal
    one is raised at once, and the last one, worded "<what> failed N times", when the
    budget is spent. `name` (the destination) starts each log line."""

    def attempt(number: int) -> T | Retry:
        try:
            return action()
        except TransportError as exc:
            if exc.fatal:
                raise
            transport.reset()
            return Retry(str(exc))

    def log_retry(retry: Retry, wait: float, attempts: int) -> None:
        log.info("%s: %s failed (%s); attempt %d of %d in %.1f s", name, what, retry.reason,
                 attempts + 1, policy.max_attempts, wait)

    retrier = Retrier(policy, clock=clock, sleep=sleep, rng=rng, wait_may_end_past_budget=True)
    outcome = retrier.run(attempt, subject=transport, on_retry=log_retry)
    if isinstance(outcome, GaveUp):
        raise TransportError(f"{what} failed {outcome.attempts} times, last: {outcome.reason}")
    return outcome


# -- local directory -----------------------------------------------------------------------


class DirectoryTransport:
    """Writes into a local (or mounted) directory: copy to a temp name, fsync, rename."""

    kind = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self, name: str = "") -> str:
        return str(self.directory / name) if name else str(self.directory)

    def put(self, local: Path, name: str) -> str:
        final = self.directory / name
        temporary = self.directory / temporary_name(name)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with local.open("rb") as source, temporary.open("wb") as target:
                shutil.copyfileobj(source, target, COPY_CHUNK)
                target.flush()
                os.fsync(target.fileno())
            expected = local.stat().st_size
            written = temporary.stat().st_size
            if written != expected:
                raise TransportError(
                    f"{temporary} holds {written} bytes instead of {expected}; it is written again"
                )
            os.replace(temporary, final)
            _fsync_directory(self.directory)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            fatal = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR)
            raise TransportError(f"cannot write {final} ({exc.strerror or exc})",
                                 fatal=fatal) from None
        return str(final)

    def size(self, name: str) -> int | None:
        try:
            return (self.directory / name).stat().st_size
        except FileNotFoundError:
            return None

    def discard_temporary(self, name: str) -> None:
        (self.directory / temporary_name(name)).unlink(missing_ok=True)

    def reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def _fsync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some mounted filesystems do not support it; the rename already happened
    finally:
        os.close(handle)


# -- SFTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SftpTarget:
    """Where and how to connect; nothing secret."""

    host: str
    port: int
    user: str
    remote_dir: str
    known_hosts: Path | None
    host_key_sha256: str
    connect_timeout: float
    timeout: float
    # The env variables people set, for messages ("set CRITEO_SFTP_KEY_PASSPHRASE").
    env_prefix: str

    def describe(self, name: str = "") -> str:
        path = posixpath.join(self.remote_dir, name) if self.remote_dir else name
        return f"sftp://{self.user}@{self.host}:{self.port}/{path.lstrip('/')}"


@dataclass(frozen=True)
class SftpSecrets:
    """Credentials from the environment; `private_key` is the key text (read from a path or given)."""

    password: str | None = None
    private_key: str | None = None
    key_source: str = ""  # what to name in a message: the env var or the path
    passphrase: str | None = None


def normalise_fingerprint(text: str) -> str:
    """'SHA256:abc', 'sha256:abc=' and 'abc' all become 'SHA256:abc' (OpenSSH's form)."""
    value = text.strip()
    if value.lower().startswith("sha256:"):
        value = value[len("sha256:"):]
    return "SHA256:" + value.rstrip("=")


def load_private_key(secrets: SftpSecrets, env_prefix: str) -> paramiko.PKey:
    """A paramiko key from OpenSSH or PEM text; its type (ed25519, ECDSA, RSA) is detected."""
    import paramiko
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    text = secrets.private_key or ""
    if "\\n" in text and "\n" not in text.strip():
        text = text.replace("\\n", "\n")  # a key pasted into one env line
    text = text.strip() + "\n"
    data = text.encode()
    passphrase = secrets.passphrase or None
    source = secrets.key_source

    def parse(password: bytes | None) -> PrivateKeyTypes:
        try:
            return serialization.load_ssh_private_key(data, password=password)
        except ValueError as exc:
            if "not openssh" not in str(exc).lower():
                raise
            return serialization.load_pem_private_key(data, password=password)

    try:
        try:
            loaded = parse(passphrase.encode() if passphrase else None)
        except TypeError:
            # cryptography's way of saying the passphrase and the key disagree.
            if passphrase is None:
                raise TransportError(
                    f"the private key in {source} is encrypted: set "
                    f"{env_prefix}_SFTP_KEY_PASSPHRASE.", fatal=True) from None
            loaded = parse(None)  # a passphrase for a key that has none: not needed
            passphrase = None
    except ValueError as exc:
        message = str(exc).lower()
        # A wrong passphrase shows as a bad checksum (OpenSSH format) or a bad decrypt (PEM).
        if passphrase is not None and any(word in message for word in
                                          ("checksum", "decrypt", "password")):
            raise TransportError(
                f"the private key in {source} does not open with {env_prefix}_SFTP_KEY_PASSPHRASE: "
                "check the passphrase.", fatal=True) from None
        raise TransportError(
            f"{source} holds no readable private key: give an ed25519, ECDSA or RSA key in "
            "OpenSSH or PEM format.", fatal=True) from None
    except UnsupportedAlgorithm:
        raise TransportError(
            f"the private key in {source} is of a type this shipper cannot use: give an "
            "ed25519, ECDSA or RSA key.", fatal=True) from None
    try:
        return _paramiko_key_class(loaded, source).from_private_key(io.StringIO(text),
                                                                    password=passphrase)
    except (paramiko.SSHException, ValueError) as exc:
        raise TransportError(f"the private key in {source} cannot be used ({exc}).",
                             fatal=True) from None


def _paramiko_key_class(loaded: PrivateKeyTypes, source: str) -> type[paramiko.PKey]:
    """paramiko's class for a key `cryptography` loaded: ed25519, ECDSA or RSA."""
    import paramiko
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return paramiko.Ed25519Key
    if isinstance(loaded, ec.EllipticCurvePrivateKey):
        return paramiko.ECDSAKey
    if isinstance(loaded, rsa.RSAPrivateKey):
        return paramiko.RSAKey
    raise TransportError(
        f"the private key in {source} is a {type(loaded).__name__}: give an ed25519, ECDSA "
        "or RSA key.", fatal=True)


def host_key_entry(host: str, port: int) -> str:
    """How known_hosts names a server: `host`, or `[host]:port` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def known_host_keys(path: Path | None, host: str, port: int) -> Mapping[str, paramiko.PKey]:
    """The keys known_hosts holds for this server, by key type (empty when none)."""
    import paramiko

    if path is None or not path.is_file():
        return {}
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except (OSError, paramiko.SSHException) as exc:
        raise TransportError(f"cannot read the known_hosts file {path} ({exc}).",
                             fatal=True) from None
    return keys.lookup(host_key_entry(host, port)) or {}


def check_host_key(key: paramiko.PKey, target: SftpTarget,
                   known: Mapping[str, paramiko.PKey]) -> None:
    """Accept the server's key or raise a fatal TransportError saying why not."""
    where = f"{target.host}:{target.port}"
    presented = f"{key.get_name()} {key.fingerprint}"
    if target.host_key_sha256:
        if key.fingerprint == normalise_fingerprint(target.host_key_sha256):
            return
        raise TransportError(
            f"the SFTP server {where} presented host key {presented}, not the pinned "
            f"{normalise_fingerprint(target.host_key_sha256)}: refusing to connect (check "
            f"sftp_host_key_sha256, or someone may be intercepting the connection).", fatal=True)
    if not known:
        place = (f"the known_hosts file {target.known_hosts}" if target.known_hosts
                 and target.known_hosts.is_file() else
                 f"a known_hosts file (none at {target.known_hosts})")
        raise TransportError(
            f"the SFTP server {where} is not in {place}: refusing to connect to an unknown host "
            f"(its key is {presented}; check it with the platform, then add it to known_hosts "
            f"or set sftp_host_key_sha256).", fatal=True)
    expected = known.get(key.get_name())
    if expected is not None and expected.asbytes() == key.asbytes():
        return
    raise TransportError(
        f"the SFTP server {where} presented host key {presented}, which does not match "
        f"{target.known_hosts}: refusing to connect (the key changed, or someone is "
        f"intercepting the connection).", fatal=True)


def _host_key_algorithms(known: Mapping[str, paramiko.PKey]) -> list[str]:
    # Ask the server for a key of a type we hold, as OpenSSH does; otherwise a server
    # with several host keys may offer one we have never seen and look "changed".
    algorithms: list[str] = []
    for key_type in known:
        if key_type == "ssh-rsa":
            algorithms += ["rsa-sha2-512", "rsa-sha2-256"]
        else:
            algorithms.append(key_type)
    return algorithms


class SftpTransport:
    """paramiko over one connection, opened on first use and again after a failure."""

    kind = "sftp"

    def __init__(self, target: SftpTarget, secrets: SftpSecrets) -> None:
        self.target = target
        self.secrets = secrets
        self._pkey: paramiko.PKey | None = None
        self._ssh: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._posix_rename = True

    def describe(self, name: str = "") -> str:
        return self.target.describe(name)

    # -- connection ---------------------------------------------------------------------------

    def _session(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            return self._connect()
        return self._sftp

    def _connect(self) -> paramiko.SFTPClient:
        import paramiko

        target = self.target
        if self.secrets.private_key and self._pkey is None:
            self._pkey = load_private_key(self.secrets, target.env_prefix)
        known = {} if target.host_key_sha256 else known_host_keys(
            target.known_hosts, target.host, target.port)
        where = f"{target.host}:{target.port}"
        try:
            sock = socket.create_connection((target.host, target.port),
                                            timeout=target.connect_timeout)
        except socket.gaierror as exc:
            raise TransportError(f"cannot resolve the SFTP host {target.host} ({exc.strerror})",
                                 fatal=False) from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {where} ({exc.strerror or exc})") from None
        ssh = paramiko.Transport(sock)
        self._ssh = ssh
        try:
            ssh.banner_timeout = target.connect_timeout
            ssh.handshake_timeout = target.connect_timeout
            ssh.auth_timeout = target.connect_timeout
            if known:
                ssh.get_security_options().key_types = _host_key_algorithms(known)
            try:
                ssh.start_client(timeout=target.connect_timeout)
            except paramiko.SSHException as exc:
                if known and "host key" in str(exc).lower():
                    raise TransportError(
                        f"the SFTP server {where} offers no host key of the type(s) "
                        f"{', '.join(known)} recorded in {target.known_hosts}: refusing to "
                        "connect (its key changed).", fatal=True) from None
                raise
            check_host_key(ssh.get_remote_server_key(), target, known)
            self._authenticate(ssh)
            sftp = paramiko.SFTPClient.from_transport(ssh)
            if sftp is None:
                raise TransportError(f"the SFTP server {where} opened no SFTP session")
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(target.timeout)
            ssh.set_keepalive(30)
            self._sftp = sftp
        except TransportError:
            self.reset()
            raise
        except paramiko.AuthenticationException as exc:
            self.reset()
            raise TransportError(self._auth_message(exc), fatal=True) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self.reset()
            raise TransportError(f"the SSH connection to {where} failed ({_short(exc)})") from None
        return sftp

    def _authenticate(self, ssh: paramiko.Transport) -> None:
        user = self.target.user
        if self._pkey is not None:
            ssh.auth_publickey(user, self._pkey)
        else:
            ssh.auth_password(user, self.secrets.password or "")

    def _auth_message(self, exc: Exception) -> str:
        import paramiko

        target = self.target
        where = f"{target.host}:{target.port}"
        if isinstance(exc, paramiko.BadAuthenticationType):
            allowed = ", ".join(exc.allowed_types) or "none"
            return (f"the SFTP server {where} does not accept this kind of login for "
                    f"{target.user} (it allows: {allowed}).")
        method = (f"the key from {self.secrets.key_source}" if self._pkey is not None
                  else f"the password in {target.env_prefix}_SFTP_PASSWORD")
        return f"the SFTP server {where} refused {method} for user {target.user}."

    def reset(self) -> None:
        for closable in (self._sftp, self._ssh):
            if closable is not None:
                try:
                    closable.close()
                except _broken_link() + (OSError,) as exc:  # already broken: best effort
                    log.debug("closing a broken SFTP connection: %s", _short(exc))
        self._sftp = None
        self._ssh = None

    def close(self) -> None:
        self.reset()

    # -- files ----------------------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return posixpath.join(self.target.remote_dir, name) if self.target.remote_dir else name

    def put(self, local: Path, name: str) -> str:
        expected = local.stat().st_size
        final = self._path(name)
        temporary = self._path(temporary_name(name))
        try:
            sftp = self._session()
            if _stat_size(sftp, final) == expected:
                # An earlier attempt of this run renamed it, and then lost the answer.
                return self.describe(name)
            with local.open("rb") as source, sftp.open(temporary, "wb") as target:
                target.set_pipelined(True)
                while chunk := source.read(COPY_CHUNK):
                    target.write(chunk)
            written = _stat_size(sftp, temporary)
            if written != expected:
                raise TransportError(
                    f"{self.describe(temporary_name(name))} holds {written} bytes instead of "
                    f"{expected}; it is uploaded again")
            self._rename(sftp, temporary, final)
        except TransportError:
            raise
        except OSError as exc:
            raise self._file_error(exc, final) from None
        except _broken_link() as exc:
            raise TransportError(
                f"the upload of {name} to {self.target.host}:{self.target.port} broke "
                f"({_short(exc)})") from None
        return self.describe(name)

    def _rename(self, sftp: paramiko.SFTPClient, temporary: str, final: str) -> None:
        if self._posix_rename:
            try:
                sftp.posix_rename(temporary, final)
                return
            except OSError as exc:
                if "unsupported" not in str(exc).lower():
                    raise
                self._posix_rename = False  # not an OpenSSH server: plain rename, no overwrite
        sftp.rename(temporary, final)

    def size(self, name: str) -> int | None:
        try:
            return _stat_size(self._session(), self._path(name))
        except TransportError:
            raise
        except OSError as exc:
            raise self._file_error(exc, self._path(name)) from None
        except _broken_link() as exc:
            raise TransportError(f"cannot check {name} on {self.target.host} ({_short(exc)})") \
                from None

    def discard_temporary(self, name: str) -> None:
        try:
            self._session().remove(self._path(temporary_name(name)))
        except FileNotFoundError:
            pass
        except TransportError:
            raise
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise self._file_error(exc, self._path(temporary_name(name))) from None
        except _broken_link() as exc:
            raise TransportError(f"cannot remove {temporary_name(name)} ({_short(exc)})") \
                from None

    def _file_error(self, exc: OSError, path: str) -> TransportError:
        where = self.describe(posixpath.basename(path))
        if exc.errno == errno.ENOENT:
            folder = self.target.remote_dir or "the login directory"
            return TransportError(
                f"cannot write {where}: the remote directory {folder} does not exist (fix "
                "sftp_remote_dir).", fatal=True)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return TransportError(
                f"cannot write {where}: permission denied (check sftp_remote_dir and the "
                "account's rights).", fatal=True)
        # paramiko raises OSError without errno for a dropped socket and SFTP failures.
        return TransportError(f"the upload to {where} failed ({_short(exc)})")


def _stat_size(sftp: paramiko.SFTPClient, path: str) -> int | None:
    """The size of `path` on the server, or None when there is no such file."""
    try:
        # paramiko types st_size `int | None`; a stat answer without it raises TypeError.
        return int(cast(int, sftp.stat(path).st_size))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def _broken_link() -> tuple[type[BaseException], ...]:
    """What paramiko raises when the connection breaks mid-call (OSError aside)."""
    import paramiko  # imported late: `ship` commands that upload nothing skip its cost

    return (paramiko.SSHException, EOFError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
