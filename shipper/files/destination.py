"""What a file destination module provides: its header mapping, its checks, its settings.

A file destination is a `Destination` (it joins the same registry, reads its
mart the same way, and `ship validate` checks it the same way) whose rows go
into CSV files instead of HTTP requests. A module subclasses `FileDestination`,
declares `file_columns` (the one place the platform's header names live) and
`validate`, and decorates the class with `@register`. The file loop in
`shipper.files.delivery` does the rest: files, limits, transport, ledger.

Credentials come from the environment only, named after the destination:
`<NAME>_SFTP_PASSWORD`, or a private key as a path (`<NAME>_SFTP_KEY_PATH`)
or as text (`<NAME>_SFTP_PRIVATE_KEY`), with `<NAME>_SFTP_KEY_PASSPHRASE`
when the key is encrypted. A directory transport needs none.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from shipper import redact
from shipper.config import ConfigError, DestinationSettings, setting
from shipper.destinations.base import Destination
from shipper.files.csvfile import (
    DELIMITERS,
    Column,
    cells_of,
    resolve_headers,
    valid_name_part,
)

TRANSPORTS = ("sftp", "directory")
SECRET_SUFFIXES = ("SFTP_PASSWORD", "SFTP_KEY_PATH", "SFTP_PRIVATE_KEY", "SFTP_KEY_PASSPHRASE")


@dataclass(frozen=True)
class FileDestinationSettings(DestinationSettings):
    """Settings of a destination delivered as files (on top of the shared ones)."""

    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up)."
    )
    base_url: str = setting(
        "https://example.invalid", "Not used by file delivery (kept for the shared settings)."
    )
    batch_size: int = setting(10_000_000, "Not used by file delivery: see max_rows_per_file.")
    max_attempts: int = setting(5, "Upload attempts per file (first included) before giving up.")
    backoff_base_seconds: float = setting(2.0, "First backoff ceiling; doubles every retry.")
    give_up_after_seconds: float = setting(
        900.0, "Seconds spent retrying one file before it is recorded as failed."
    )
    timeout_seconds: float = setting(60.0, "Seconds without an answer before an SFTP call fails.")
    transport: str = setting(
        "sftp", "'sftp' uploads to sftp_host; 'directory' writes into `directory` (a mounted "
                "bucket, or a folder someone uploads from by hand)."
    )
    directory: str = setting("", "Target folder when transport = 'directory'.")
    file_format: str = setting("csv", "'csv' (comma) or 'tsv' (tab).")
    gzip: bool = setting(False, "Compress each file (.gz appended to its name).")
    file_prefix: str = setting("", "Start of every file name; default: the destination name.")
    as_of: str = setting(
        "", "Date in file names (YYYY-MM-DD): the as_of the marts were built for; "
            "default: the run's date (UTC)."
    )
    max_rows_per_file: int = setting(0, "Data rows per file before the next part; 0 = no limit.")
    max_bytes_per_file: int = setting(
        0, "Bytes per file (counted before compression) before the next part; 0 = no limit."
    )
    headers: tuple[str, ...] = setting(
        (), "Header renames, '<column>=<header>'; an empty header leaves the column out."
    )
    staging_dir: str = setting("", "Where files are written before upload; default: system temp.")
    sftp_host: str = setting("", "SFTP server host name.")
    sftp_port: int = setting(22, "SFTP server port.")
    sftp_user: str = setting("", "SFTP login name.")
    sftp_remote_dir: str = setting("", "Remote folder for the files; default: the login folder.")
    sftp_known_hosts: str = setting(
        "~/.ssh/known_hosts", "known_hosts file holding the server's host key."
    )
    sftp_host_key_sha256: str = setting(
        "", "Pinned host key fingerprint ('SHA256:...', as ssh-keygen -l prints it); when set, "
            "it decides instead of known_hosts."
    )


class FileDestination(Destination):
    """Base class of destinations delivered as files."""

    settings_class: ClassVar[type[DestinationSettings]] = FileDestinationSettings
    max_batch_size: ClassVar[int] = 10_000_000
    # The platform's columns, in file order: the one place header names live.
    file_columns: ClassVar[tuple[Column, ...]]
    # Mart columns `validate` reads that are not written to the file.
    check_columns: ClassVar[tuple[str, ...]] = ()
    # Order of the rows in a file (deterministic: the same rows give the same bytes).
    sort_columns: ClassVar[tuple[str, ...]] = ("delivery_key",)
    # Rows sharing this column's value are never split over two files by the row limit.
    group_column: ClassVar[str | None] = None
    settings: FileDestinationSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            prefix = cls.env_prefix()
            cls.credential_env = tuple(f"{prefix}_{suffix}" for suffix in SECRET_SUFFIXES[:3])
        if getattr(cls, "file_columns", None):
            wanted = ["delivery_key", *cls.check_columns,
                      *(column.source for column in cls.file_columns), *cls.sort_columns]
            if cls.group_column:
                wanted.append(cls.group_column)
            cls.columns = tuple(dict.fromkeys(wanted))

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(settings, credentials, now)
        self.layout = self._check_settings()

    # -- what a module implements ------------------------------------------------------------

    def validate(self, row: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------

    @classmethod
    def env_prefix(cls) -> str:
        return cls.name.upper()

    @classmethod
    def credential_hint(cls) -> str:
        prefix = cls.env_prefix()
        return (f"{prefix}_SFTP_PASSWORD or {prefix}_SFTP_KEY_PATH (or the key itself in "
                f"{prefix}_SFTP_PRIVATE_KEY)")

    @classmethod
    def credentials_from_env(cls, settings: DestinationSettings,
                             env: Mapping[str, str]) -> dict[str, str] | None:
        """The secrets this destination needs, or None when a live run cannot log in.

        A directory transport needs none ({}); SFTP needs a password or a key.
        """
        if getattr(settings, "transport", "sftp") == "directory":
            return {}
        prefix = cls.env_prefix()
        found: dict[str, str] = {}
        for suffix in SECRET_SUFFIXES:
            value = env.get(f"{prefix}_{suffix}", "")
            if value.strip():
                found[f"{prefix}_{suffix}"] = value
                if suffix != "SFTP_KEY_PATH":
                    redact.register_secret(value.strip())
        logins = (f"{prefix}_SFTP_PASSWORD", f"{prefix}_SFTP_KEY_PATH", f"{prefix}_SFTP_PRIVATE_KEY")
        if not any(name in found for name in logins):
            return None
        return found

    @property
    def headers(self) -> list[str]:
        return [header for _column, header in self.layout]

    def cells(self, row: Mapping[str, Any]) -> list[str]:
        """The row's cells in file order (CellError when a value does not fit its column)."""
        return cells_of(row, self.layout)

    def file_row(self, row: Mapping[str, Any]) -> dict[str, str]:
        """The row as it appears in the file, by header (also what is fingerprinted)."""
        return dict(zip(self.headers, self.cells(row), strict=True))

    def as_of_label(self, run_started: float) -> str:
        """The date in file names: `as_of` when set, else the run's UTC date."""
        if self.settings.as_of:
            return self.settings.as_of[:10]
        return dt.datetime.fromtimestamp(run_started, dt.UTC).strftime("%Y-%m-%d")

    def _check_settings(self) -> list[tuple[Column, str]]:
        settings = self.settings
        name = self.name
        prefix = self.env_prefix()

        def fix(key: str) -> str:
            return f"set {prefix}_{key.upper()} or {key} under [destinations.{name}]"

        if settings.transport not in TRANSPORTS:
            raise ConfigError(f"transport for {name} must be 'sftp' or 'directory', not "
                              f"{settings.transport!r}: {fix('transport')}.")
        if settings.file_format not in DELIMITERS:
            raise ConfigError(f"file_format for {name} must be 'csv' or 'tsv', not "
                              f"{settings.file_format!r}: {fix('file_format')}.")
        if settings.file_prefix and not valid_name_part(settings.file_prefix):
            raise ConfigError(f"file_prefix for {name} may hold letters, digits, '.', '_' and "
                              f"'-' only: {fix('file_prefix')}.")
        if settings.as_of:
            try:
                dt.date.fromisoformat(settings.as_of[:10])
            except ValueError:
                raise ConfigError(f"as_of for {name} must start with a date (YYYY-MM-DD), not "
                                  f"{settings.as_of!r}: {fix('as_of')}.") from None
        for key in ("max_rows_per_file", "max_bytes_per_file"):
            if getattr(settings, key) < 0:
                raise ConfigError(f"{key} for {name} must not be negative: {fix(key)}.")
        if not 0 < settings.sftp_port < 65536:
            raise ConfigError(f"sftp_port for {name} must be a TCP port: {fix('sftp_port')}.")
        try:
            return resolve_headers(self.file_columns, settings.headers,
                                   f"[destinations.{name}] (or {prefix}_HEADERS)")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
