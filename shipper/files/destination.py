"""What a file destination module provides: its settings, its limits, its file names.

A file destination is a `Destination` (it joins the same registry, reads its
mart the same way, and `ship validate` checks it) whose rows go into CSV files
instead of HTTP requests. Its mart is the file (docs/marts.md): `delivery_key`
first (the ledger key, not written), then the file's columns in file order,
each named as the file's header; which rows, how each cell is formatted and
whether a row can be sent are decided in SQL and proved by the mart's dbt
tests. A module subclasses `FileDestination`, sets its mart, limits and row
order, and decorates the class with `@register`. The file loop in
`shipper.files.delivery` does the rest: files, limits, transport, ledger
(`shipper.loops` hands it every FileDestination).

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

import duckdb

from shipper import redact
from shipper.destinations.base import Destination
from shipper.files.csvfile import DELIMITERS, kind_of, valid_name_part
from shipper.reader import MartError, quote_identifier
from shipper.settings import ConfigError, DestinationSettings, setting

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
        "", "Date in file names (YYYY-MM-DD) for marts without a build log (Parquet): the "
            "as_of they were built for. Beside a DuckDB build the build log (dbt_builds) "
            "says it, and a different value here is refused; with neither, the run's "
            "date (UTC)."
    )
    max_rows_per_file: int = setting(0, "Data rows per file before the next part; 0 = no limit.")
    max_bytes_per_file: int = setting(
        0, "Bytes per file (counted before compression) before the next part; 0 = no limit."
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
        wanted = ["delivery_key", *cls.sort_columns]
        if cls.group_column:
            wanted.append(cls.group_column)
        # The columns the loop itself needs; every other mart column is a file column too.
        cls.columns = tuple(dict.fromkeys(wanted))

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(settings, credentials, now)
        self._check_settings()

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
        if isinstance(settings, FileDestinationSettings) and settings.transport == "directory":
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

    def file_columns(self, con: duckdb.DuckDBPyConnection,
                     relation: str) -> list[tuple[str, str]]:
        """The mart's columns but delivery_key, in mart order, with the kind of cell each
        makes ("text", "integer", "decimal"): the file's header and columns.

        MartError when the mart has no delivery_key, no other column, or a column a
        file cannot hold as it is (format it as text in SQL).
        """
        mart = self.settings.mart
        relation_info = con.sql(f"select * from {relation} limit 0")
        names = list(relation_info.columns)
        types = [str(kind) for kind in relation_info.types]
        if "delivery_key" not in names:
            raise MartError(f"{mart} lacks column delivery_key: rebuild it to the contract in "
                            "docs/marts.md.")
        layout: list[tuple[str, str]] = []
        for name, duckdb_type in zip(names, types, strict=True):
            if name == "delivery_key":
                continue
            kind = kind_of(duckdb_type)
            if kind is None:
                raise MartError(
                    f"{mart} column {quote_identifier(name)} is {duckdb_type}: a file column "
                    "is varchar (formatted in SQL) or a number; cast it in the model.")
            if any(char in name for char in "\r\n"):
                raise MartError(f"{mart} column {name!r} holds a line break: rename it.")
            layout.append((name, kind))
        if not layout:
            raise MartError(f"{mart} has no column but delivery_key: a file destination's "
                            "mart holds the file's columns after it (docs/marts.md).")
        return layout

    def as_of_label(self, run_started: float, built_for: str | None = None,
                    judged_at: float | None = None) -> str:
        """The date in file names (YYYY-MM-DD, UTC): the as_of of the build the mart came
        from, which is what the file covers, whatever day it is shipped.

        `judged_at`: the --as-of of a dry run (it names the build rehearsed). Then
        `built_for`, the as_of the build log (dbt_builds) records for the mart; the
        `as_of` setting must agree with it. Then the `as_of` setting (marts without a
        build log). Else the run's UTC date.
        """
        if judged_at is not None:
            return _utc_date(dt.datetime.fromtimestamp(judged_at, dt.UTC))
        setting_date = self.settings.as_of[:10] if self.settings.as_of else None
        if built_for is not None:
            built_date = as_of_date(built_for)
            if built_date is None:
                raise MartError(f"the build log says {self.settings.mart} was built for as_of "
                                f"{built_for!r}, which is not a date: rebuild it with dbt.")
            if setting_date is not None and setting_date != built_date:
                prefix = self.env_prefix()
                raise ConfigError(
                    f"as_of for {self.name} is {setting_date}, but the build log says "
                    f"{self.settings.mart} was built for as_of {built_date}: unset "
                    f"{prefix}_AS_OF (or as_of under [destinations.{self.name}]); file names "
                    "take the build's as_of.")
            return built_date
        if setting_date is not None:
            return setting_date
        return _utc_date(dt.datetime.fromtimestamp(run_started, dt.UTC))

    def _check_settings(self) -> None:
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
        for key, limit in (("max_rows_per_file", settings.max_rows_per_file),
                           ("max_bytes_per_file", settings.max_bytes_per_file)):
            if limit < 0:
                raise ConfigError(f"{key} for {name} must not be negative: {fix(key)}.")
        if not 0 < settings.sftp_port < 65536:
            raise ConfigError(f"sftp_port for {name} must be a TCP port: {fix('sftp_port')}.")


def as_of_date(text: str) -> str | None:
    """The UTC date (YYYY-MM-DD) of a dbt `as_of` (a date, or a date and time with or
    without an offset: UTC when none), or None when it is neither."""
    value = text.strip()
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC)
    return _utc_date(when)


def _utc_date(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d")
