"""The loop of destinations delivered as files.

read the mart (rows still to deliver, per the ledger; every row with --force):
  its columns but delivery_key are the file's, in mart order, named as the header
  (the mart is the file; which rows and every cell's text were decided in SQL)
  -> write CSV parts in the staging folder, in a stable order, split at the limits
  -> per part: record its rows in the journal, upload it (temp name, size check,
     rename), then record its rows as delivered and the file with its SHA-256
  -> the same summary as the REST loop, with the files listed.

`--dry-run` writes the same files into OUTBOX/<destination>/ and records nothing
but the run. A part whose upload still fails after `max_attempts` (with backoff)
stops the destination: its rows are recorded as failed and go in the next
run's file. See `shipper.files.journal` for what a killed run leaves and how
the next run resolves it.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from shipper.config import Config, ConfigError
from shipper.delivery import DestinationReport, Hooks, Progress
from shipper.files.csvfile import (
    CellError,
    CsvFormat,
    FinishedPart,
    PartFile,
    file_name,
    format_cell,
)
from shipper.files.destination import FileDestination
from shipper.files.journal import CHUNK_ROWS, FileJournal
from shipper.files.transports import (
    DirectoryTransport,
    SftpSecrets,
    SftpTarget,
    SftpTransport,
    Transport,
    TransportError,
)
from shipper.http import RetryPolicy
from shipper.ledger import (
    STORAGE_ERRORS,
    DeliveryRecord,
    Ledger,
    fingerprint,
    storage_problem,
)
from shipper.reader import (
    DuckDBSource,
    MartError,
    MartSource,
    check_columns,
    fetch_one,
    quote_identifier,
    stream_batches,
)
from shipper.redact import get_logger, scrub

log = get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class FileOutcome:
    """One file of a run, for the summary."""

    name: str
    rows: int
    size: int
    sha256: str
    status: str  # delivered | written (dry run) | failed | duplicate
    location: str


@dataclass
class FileReport(DestinationReport):
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def file_lines(self) -> list[str]:
        """Lines the summary prints under the table: one per file."""
        if not self.files:
            return []
        lines = [f"{self.name} files:"]
        for outcome in self.files:
            lines.append(
                f"  {outcome.status:<9} {outcome.name}  {outcome.rows:,} rows  "
                f"{outcome.size:,} bytes  sha256 {outcome.sha256[:16]}  -> {outcome.location}"
            )
        return lines


class _Stop(Exception):
    """The destination cannot go on in this run (the reason is in the report)."""


def ship_files(
    destination: FileDestination,
    *,
    ledger: Ledger,
    source: MartSource,
    run_id: str,
    dry_run: bool,
    outbox_dir: Path,
    read_batch_rows: int,
    hooks: Hooks,
    progress: Progress,
    force: bool = False,
    config: Config | None = None,
) -> FileReport:
    """Ship one file destination's mart; the report says what happened."""
    name = destination.name
    report = FileReport(name, "dry_run" if dry_run else "live")
    ledger.start_run(run_id, name, report.mode)
    read_cursor = ledger.cursor()
    transport: Transport | None = None
    journal: FileJournal | None = None
    interrupted = False
    try:
        mart = destination.settings.mart
        relation = source.relation(read_cursor, mart)
        check_columns(read_cursor, relation, mart, destination.columns)
        layout = destination.file_columns(read_cursor, relation)
        as_of = file_as_of(destination, read_cursor, source, hooks)
        if dry_run:
            transport = DirectoryTransport(outbox_dir / name)
        else:
            transport = make_transport(destination, config)
            journal = FileJournal(ledger, name, run_id)
        staging_root = _path_setting(destination, "staging_dir", config)
        if staging_root is not None:
            staging_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"ship-{name}-", dir=staging_root) as staging:
            run = _FileRun(destination, layout, ledger, journal, transport, report, run_id,
                           hooks, progress, Path(staging), force, as_of)
            if journal is not None:
                run.recover_earlier_runs()
            run.write_and_deliver(read_cursor, relation, read_batch_rows)
    except (MartError, ConfigError, TransportError) as exc:
        report.problem = str(exc)
        log.error("%s: %s", name, exc)
    except _Stop:
        pass
    except KeyboardInterrupt:
        interrupted = True
        raise
    except STORAGE_ERRORS as exc:
        # This destination stops, incomplete; the others still run.
        report.problem = scrub(storage_problem(exc))
        log.error("%s: %s", name, report.problem)
    finally:
        if transport is not None:
            transport.close()
        if journal is not None:
            journal.close()
        read_cursor.close()
        progress.update(name, report.counts, final=True)
        status = "interrupted" if interrupted else report.status
        ledger.finish_run(run_id, name, report.counts, status, report.problem)
    return report


def file_as_of(destination: FileDestination, cursor: Any, source: MartSource,
               hooks: Hooks) -> str:
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


def build_as_of(cursor: Any, source: MartSource, mart: str) -> str | None:
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
        directory = _path_setting(destination, "directory", config)
        if directory is None:
            raise ConfigError(f"{name} writes into a directory but none is set: set "
                              f"{prefix}_DIRECTORY or directory under [destinations.{name}].")
        return DirectoryTransport(directory)
    for key in ("sftp_host", "sftp_user"):
        if not getattr(settings, key):
            raise ConfigError(f"{name} needs {key} to upload: set {prefix}_{key.upper()} or "
                              f"{key} under [destinations.{name}].")
    credentials = destination.credentials
    key_path = credentials.get(f"{prefix}_SFTP_KEY_PATH")
    key_text = credentials.get(f"{prefix}_SFTP_PRIVATE_KEY")
    key_source = f"{prefix}_SFTP_PRIVATE_KEY"
    if key_path:
        path = Path(key_path.strip()).expanduser()
        try:
            key_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not a text key file"
            raise TransportError(f"cannot read the private key file {path} ({reason}): fix "
                                 f"{prefix}_SFTP_KEY_PATH.", fatal=True) from None
        key_source = str(path)
    secrets = SftpSecrets(
        password=credentials.get(f"{prefix}_SFTP_PASSWORD"),
        private_key=key_text,
        key_source=key_source,
        passphrase=credentials.get(f"{prefix}_SFTP_KEY_PASSPHRASE"),
    )
    target = SftpTarget(
        host=settings.sftp_host,
        port=settings.sftp_port,
        user=settings.sftp_user,
        remote_dir=settings.sftp_remote_dir.rstrip("/") if settings.sftp_remote_dir != "/"
        else "/",
        known_hosts=_path_setting(destination, "sftp_known_hosts", config),
        host_key_sha256=settings.sftp_host_key_sha256,
        connect_timeout=settings.connect_timeout_seconds,
        timeout=settings.timeout_seconds,
        env_prefix=prefix,
    )
    return SftpTransport(target, secrets)


def _path_setting(destination: FileDestination, key: str, config: Config | None) -> Path | None:
    """A path setting: relative to the config file when written there, else to the cwd."""
    value = str(getattr(destination.settings, key) or "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_absolute() or config is None or config.path is None:
        return path
    if f"{destination.env_prefix()}_{key.upper()}" in config.env:
        return path
    return config.path.parent / path


class _FileRun:
    """One destination in one run: the state the steps share."""

    def __init__(self, destination: FileDestination, layout: list[tuple[str, str]],
                 ledger: Ledger,
                 journal: FileJournal | None, transport: Transport, report: FileReport,
                 run_id: str, hooks: Hooks, progress: Progress, staging: Path,
                 force: bool, as_of: str) -> None:
        self.destination = destination
        self.settings = destination.settings
        self.name = destination.name
        self.ledger = ledger
        self.journal = journal
        self.transport = transport
        self.report = report
        self.counts = report.counts
        self.run_id = run_id
        self.hooks = hooks
        self.progress = progress
        self.staging = staging
        self.force = force
        self.policy = RetryPolicy.from_settings(self.settings)
        self.rng = hooks.rng or random.Random()
        self.layout = layout
        self.headers = [name for name, _kind in layout]
        self.format = CsvFormat(self.headers, self.settings.file_format)
        self.as_of = as_of
        self.prefix = self.settings.file_prefix or self.name
        self.part: PartFile | None = None
        self.part_rows: list[tuple[str, str]] = []
        self.parts_started = 0

    # -- earlier runs ------------------------------------------------------------------------

    def recover_earlier_runs(self) -> None:
        """Settle the files a killed run left mid-way, before deciding what is pending."""
        journal = self.journal
        assert journal is not None
        for record in journal.unfinished():
            file_id, status, name = record["file_id"], record["status"], record["file_name"]
            if status == "uploading":
                size = self._retrying(f"checking {name}", partial(self.transport.size, name))
                if size is not None and size == record["bytes"]:
                    log.info("%s: %s from run %s is complete on the server; recording its "
                             "rows as delivered", self.name, name, record["run_id"])
                    journal.mark_uploaded(file_id, self.transport.describe(name), 0)
                    status = "uploaded"
                else:
                    self._retrying(f"removing the temporary file of {name}",
                                   partial(self.transport.discard_temporary, name))
                    journal.mark_abandoned(file_id, "the run stopped before the upload finished")
                    journal.temporary_removed(file_id)
                    log.info("%s: %s from run %s never reached the server whole; its rows go "
                             "in this run's file", self.name, name, record["run_id"])
                    continue
            if status == "uploaded":
                rows = journal.mark_delivered(file_id, record["run_id"], 1, None)
                log.info("%s: recorded the %d rows of %s as delivered", self.name, rows,
                         record["file_name"])
            else:  # writing: nothing left this machine
                journal.mark_abandoned(file_id, "the run stopped while writing the file")
        for record in journal.temporaries_left():
            name = record["file_name"]
            try:
                self._retrying(f"removing the temporary file of {name}",
                               partial(self.transport.discard_temporary, name))
            except TransportError as exc:
                log.warning("%s: could not remove the temporary file of %s (%s)", self.name,
                            name, exc)
                continue
            journal.temporary_removed(record["file_id"])

    # -- this run --------------------------------------------------------------------------------

    def write_and_deliver(self, cursor: Any, relation: str, read_batch_rows: int) -> None:
        destination = self.destination
        counts = self.counts
        live = self.journal is not None
        headers = self.headers
        kinds = [kind for _name, kind in self.layout]
        columns = list(dict.fromkeys(["delivery_key", *headers, *destination.columns]))
        sql, already = self.ledger.stage_pending(cursor, self.name, relation, columns,
                                                 resend_when_changed=self.force)
        counts.read += already
        counts.skipped += already
        group = destination.group_column
        group_rows = ""
        if group and self.settings.max_rows_per_file:
            group_rows = (f", count(*) over (partition by {quote_identifier(group)}) "
                          "as __group_rows")
        order = ", ".join(quote_identifier(column) for column in destination.sort_columns)
        sql = f"select *{group_rows} from ({sql}) as pending order by {order}"

        previous_group: Any = object()
        for record_batch in stream_batches(cursor, sql, None, read_batch_rows):
            data = record_batch.to_pydict()
            keys = data["delivery_key"]
            cells_by_column = [data[header] for header in headers]
            groups = data[group] if group else None
            group_sizes = data.get("__group_rows")
            rejected: list[DeliveryRecord] = []
            for index, key in enumerate(keys):
                counts.read += 1
                if key is None or key == "":
                    counts.count_rejection("delivery_key is missing")
                    continue
                key = str(key)
                # Not a row check (the mart's dbt tests are): a value no CSV cell can
                # hold as it is (a NaN, text that is not UTF-8) is refused, not written.
                try:
                    cells = [format_cell(values[index], kind, header) for values, kind, header
                             in zip(cells_by_column, kinds, headers, strict=True)]
                    line = self.format.encode(cells)
                except CellError as exc:
                    reason: str | None = str(exc)
                except UnicodeEncodeError:
                    reason = "text is not valid UTF-8"
                else:
                    reason = None
                if reason is not None:
                    counts.count_rejection(reason)
                    rejected.append(DeliveryRecord(key, "rejected", None, "validation", 0,
                                                   reason))
                    continue
                group_value = groups[index] if groups is not None else None
                starts_group = groups is None or group_value != previous_group
                previous_group = group_value if groups is not None else previous_group
                size_of_group = group_sizes[index] if group_sizes is not None else None
                if self.part is not None and not self.part.has_room(
                        len(line), (size_of_group or 1) if starts_group else None):
                    self._finish_part(split=True)
                if self.part is None:
                    self._start_part()
                assert self.part is not None
                self.part.write_row(line)
                self.part_rows.append((key, fingerprint(dict(zip(headers, cells, strict=True)))))
                if len(self.part_rows) >= CHUNK_ROWS:
                    self._flush_rows()
            if live and rejected:
                self.ledger.record(self.run_id, self.name, rejected, counts)
            self.progress.update(self.name, counts)
        if self.part is not None:
            self._finish_part(split=False)
        elif not self.report.files:
            log.info("%s: nothing new to deliver; no file written", self.name)

    def _start_part(self) -> None:
        self.parts_started += 1
        number = self.parts_started
        path = self.staging / f"part{number:03d}.{self.format.extension}"
        self.part = PartFile(path, number, self.format, gzip=self.settings.gzip,
                             max_rows=self.settings.max_rows_per_file,
                             max_bytes=self.settings.max_bytes_per_file)
        if self.journal is not None:
            self.journal.start_file(self._file_id(number), number, self.as_of,
                                    self.transport.kind)

    def _file_id(self, number: int) -> str:
        return f"{self.name}:{self.run_id}:{number:03d}"

    def _flush_rows(self) -> None:
        if self.journal is not None and self.part is not None:
            self.journal.add_rows(self._file_id(self.part.number), self.part_rows)
        self.part_rows = []

    def _finish_part(self, split: bool) -> None:
        part = self.part
        assert part is not None
        self._flush_rows()
        finished = part.close()
        self.part = None
        numbered = split or finished.number > 1
        name = file_name(self.prefix, self.as_of, self.run_id,
                         finished.number if numbered else None, self.format.extension,
                         self.settings.gzip)
        try:
            if self.journal is None:
                self._write_to_outbox(finished, name)
            else:
                self._upload(finished, name)
        finally:
            finished.path.unlink(missing_ok=True)
        self.progress.update(self.name, self.counts)

    def _write_to_outbox(self, part: FinishedPart, name: str) -> None:
        location = self.transport.put(part.path, name)
        self.counts.sent += part.rows
        self.report.outbox_files += 1
        self.report.files.append(FileOutcome(name, part.rows, part.size, part.sha256, "written",
                                             location))

    def _upload(self, part: FinishedPart, name: str) -> None:
        journal = self.journal
        assert journal is not None
        file_id = self._file_id(part.number)
        counts = self.counts
        if not self.force:
            earlier = journal.delivered_with_checksum(part.sha256)
            if earlier is not None:
                # Same bytes as a delivered file: its rows are on the server already.
                journal.mark_duplicate(file_id, self.run_id, name, part.sha256, part.rows,
                                       earlier["file_name"], counts)
                counts.skipped += part.rows
                log.info("%s: %s has the same content as %s, delivered %s; not uploaded again "
                         "(use --force to upload it anyway)", self.name, name,
                         earlier["file_name"], earlier["finished_at"])
                self.report.files.append(FileOutcome(name, part.rows, part.size, part.sha256,
                                                     "duplicate", earlier["location"] or ""))
                return
        journal.file_written(file_id, name, self.transport.describe(name), part.rows,
                             part.size, part.sha256)
        counts.sent += part.rows
        attempts = 0

        def put() -> str:
            nonlocal attempts
            attempts += 1
            return self.transport.put(part.path, name)

        try:
            location = self._retrying(f"uploading {name}", put)
        except TransportError as exc:
            reason = scrub(str(exc))
            counts.failed += part.rows
            journal.mark_failed(file_id, self.run_id, reason, attempts, counts)
            self.report.files.append(FileOutcome(name, part.rows, part.size, part.sha256,
                                                 "failed", self.transport.describe(name)))
            self.report.problem = reason
            log.error("%s: %s was not delivered: %s", self.name, name, reason)
            self._discard_temporary_quietly(name, file_id)
            raise _Stop() from None
        journal.mark_uploaded(file_id, location, attempts)
        counts.accepted += part.rows
        journal.mark_delivered(file_id, self.run_id, attempts, counts)
        self.ledger.note_delivered(self.name)
        log.info("%s: delivered %s (%d rows, %d bytes) to %s", self.name, name, part.rows,
                 part.size, location)
        self.report.files.append(FileOutcome(name, part.rows, part.size, part.sha256,
                                             "delivered", location))

    def _discard_temporary_quietly(self, name: str, file_id: str) -> None:
        assert self.journal is not None
        try:
            self.transport.reset()
            self.transport.discard_temporary(name)
        except TransportError:
            return  # the next run tries again (temporary_removed stays false)
        self.journal.temporary_removed(file_id)

    def _retrying(self, what: str, action: Callable[[], T]) -> T:
        """Run `action`, retrying transient TransportErrors with full-jitter backoff."""
        started = self.hooks.clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except TransportError as exc:
                if exc.fatal:
                    raise
                self.transport.reset()
                elapsed = self.hooks.clock() - started
                if attempt >= self.policy.max_attempts or elapsed >= self.policy.give_up_after:
                    raise TransportError(
                        f"{what} failed {attempt} times, last: {exc}") from None
                wait = self.policy.backoff(attempt, self.rng)
                log.info("%s: %s failed (%s); attempt %d of %d in %.1f s", self.name, what, exc,
                         attempt + 1, self.policy.max_attempts, wait)
                self.hooks.sleep(wait)

