"""What a file run settles before writing: where its files go (the transport from the
settings and credentials, path settings) and the date its file names carry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from shipper.config import Config, ConfigError
from shipper.files.transports import (
    DirectoryTransport,
    SftpSecrets,
    SftpTarget,
    SftpTransport,
    Transport,
    TransportError,
)
from shipper.hooks import Hooks
from shipper.reader import DuckDBSource, MartError, MartSource, fetch_one
from shipper.redact import get_logger

if TYPE_CHECKING:
    from shipper.files.destination import FileDestination

log = get_logger("shipper.files.delivery")


def file_as_of(destination: FileDestination, cursor: duckdb.DuckDBPyConnection,
               source: MartSource, hooks: Hooks) -> str:
    """The date the run's file names carry: the as_of of the build the mart came from.

    A dry run with --as-of judges time by that date instead of the wall clock (the
    destination's clock is then not the hooks' one): its date names the files. Else
    the build log beside DuckDB marts (dbt_builds, written by the project's
    on-run-end hook) says which as_of the mart was built for; marts without one
    (Parquet exports) take the `as_of` setting, else the run's UTC date, with a
    warning, since nothing then says which day the rows cover.
    """
    judged_at = None if destination.now is hooks.wallclock else destination.now()
    built_for = None if judged_at is not None else build_as_of(cursor, source,
                                                               destination.settings.mart)
    label = destination.as_of_label(hooks.wallclock(), built_for, judged_at)
    if judged_at is None and built_for is None and not destination.settings.as_of:
        log.warning("%s: no build log beside %s says which as_of it was built for: the file "
                    "names carry the run's date, %s (set %s_AS_OF to the build's as_of)",
                    destination.name, destination.settings.mart, label,
                    destination.env_prefix())
    return label


def build_as_of(cursor: duckdb.DuckDBPyConnection, source: MartSource, mart: str) -> str | None:
    """The as_of the latest build of `mart` was made for, per the build log beside the
    marts (dbt_builds), or None where there is none (Parquet, marts dbt did not build)."""
    if not isinstance(source, DuckDBSource):
        return None
    try:
        builds = source.relation(cursor, "dbt_builds")
    except MartError:
        return None
    row = fetch_one(cursor, f"""
        select as_of
        from {builds}
        where resource_type = 'model' and node_name = $mart
        order by finished_at desc
        limit 1
    """, {"mart": mart.split(".")[-1]})
    if row is None or row[0] is None:
        return None
    return str(row[0])


def make_transport(destination: FileDestination, config: Config | None) -> Transport:
    """The live transport from the settings and the credentials (ConfigError when incomplete)."""
    settings = destination.settings
    name = destination.name
    prefix = destination.env_prefix()
    if settings.transport == "directory":
        directory = path_setting(destination, "directory", settings.directory, config)
        if directory is None:
            raise ConfigError(f"{name} writes into a directory but none is set: set "
                              f"{prefix}_DIRECTORY or directory under [destinations.{name}].")
        return DirectoryTransport(directory)
    for key, value in (("sftp_host", settings.sftp_host), ("sftp_user", settings.sftp_user)):
        if not value:
            raise ConfigError(f"{name} needs {key} to upload: set {prefix}_{key.upper()} or "
                              f"{key} under [destinations.{name}].")
    target = SftpTarget(
        host=settings.sftp_host,
        port=settings.sftp_port,
        user=settings.sftp_user,
        remote_dir=settings.sftp_remote_dir.rstrip("/") if settings.sftp_remote_dir != "/"
        else "/",
        known_hosts=path_setting(destination, "sftp_known_hosts", settings.sftp_known_hosts,
                                 config),
        host_key_sha256=settings.sftp_host_key_sha256,
        connect_timeout=settings.connect_timeout_seconds,
        timeout=settings.timeout_seconds,
        env_prefix=prefix,
    )
    return SftpTransport(target, sftp_secrets(destination))


def sftp_secrets(destination: FileDestination) -> SftpSecrets:
    """The SFTP login from the destination's credentials; a key file is read here."""
    prefix = destination.env_prefix()
    credentials = destination.credentials
    key_path = credentials.get(f"{prefix}_SFTP_KEY_PATH")
    key_text = credentials.get(f"{prefix}_SFTP_PRIVATE_KEY")
    key_source = f"{prefix}_SFTP_PRIVATE_KEY"
    if key_path:
        path = Path(key_path.strip()).expanduser()
        try:
            key_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or "not a text key file"
            raise TransportError(f"cannot read the private key file {path} ({reason}): fix "
                                 f"{prefix}_SFTP_KEY_PATH.", fatal=True) from None
        key_source = str(path)
    return SftpSecrets(
        password=credentials.get(f"{prefix}_SFTP_PASSWORD"),
        private_key=key_text,
        key_source=key_source,
        passphrase=credentials.get(f"{prefix}_SFTP_KEY_PASSPHRASE"),
    )


def path_setting(destination: FileDestination, key: str, value: str,
                 config: Config | None) -> Path | None:
    """A path setting: relative to the config file when written there, else to the cwd."""
    value = value.strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute() or config is None or config.path is None:
        return path
    if f"{destination.env_prefix()}_{key.upper()}" in config.env:
        return path
    return config.path.parent / path
