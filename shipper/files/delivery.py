"""The loop of destinations delivered as files.

stage: the ledger and the mart, joined in DuckDB, say which rows are still to
       deliver (shipper.pending; every row with --force)
  -> read them in the reader's DuckDB, in the destination's row order: the mart's
     columns but delivery_key are the file's, in mart order, named as the header
     (the mart is the file; which rows and every cell's text were decided in SQL)
  -> write CSV parts in the staging folder, split at the limits (files.parts)
  -> per part: record its rows in the journal, upload it (temp name, size check,
     rename), then record its rows as delivered and the file with its SHA-256
     (files.upload)
  -> the same report as the REST loop (shipper.report), with the files listed.

`--dry-run` writes the same files into OUTBOX/<destination>/ and records nothing
but the run. A part whose upload still fails after `max_attempts` (with backoff)
stops the destination: its rows are recorded as failed and go in the next
run's file. See `shipper.files.journal` for what a killed run leaves and how
the next run resolves it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from shipper import pending
from shipper.config import Config, ConfigError
from shipper.files.csvfile import CsvFormat, FinishedPart
from shipper.files.journal import FileJournal
from shipper.files.parts import Layout, PartNaming, PartWriter, encode_row
from shipper.files.report import FileOutcome, FileReport
from shipper.files.targets import file_as_of, make_transport, path_setting
from shipper.files.transports import DirectoryTransport, Transport, TransportError
from shipper.files.upload import EarlierRuns, Retrying, Stop, Uploader, write_to_outbox
from shipper.hooks import Hooks
from shipper.ledger import STORAGE_ERRORS, Ledger, storage_problem
from shipper.outcomes import Outcomes, RunCounts
from shipper.progress import Progress
from shipper.reader import (
    MartError,
    MartSource,
    check_columns,
    fetch_one,
    open_reader,
    quote_identifier,
    stream_batches,
)
from shipper.redact import get_logger, scrub
from shipper.report import RunContext
from shipper.retry import RetryPolicy

if TYPE_CHECKING:
    from shipper.files.destination import FileDestination

__all__ = ["FileOutcome", "FileReport", "file_row_problems", "ship_files"]

log = get_logger(__name__)


@dataclass(frozen=True)
class _Connections:
    """A file run's two DuckDBs: a cursor of the ledger (staging, the journal) and the
    reader (the long read), the mart attached in both under one relation."""

    cursor: duckdb.DuckDBPyConnection
    reader: duckdb.DuckDBPyConnection
    relation: str


def ship_files(destination: FileDestination, context: RunContext) -> FileReport:
    """Ship one file destination's mart; the report says what happened."""
    name, ledger, run_id = destination.name, context.ledger, context.run_id
    report = FileReport(name, "dry_run" if context.dry_run else "live")
    ledger.start_run(run_id, name, report.mode)
    # The long read runs in a DuckDB of its own, spilling beside the ledger.
    cursor = ledger.cursor()
    reader = open_reader(ledger.scratch_path("reader.tmp"), ledger.memory_limit)
    run: _FileRun | None = None
    interrupted = False
    try:
        connections = _attach(destination, context.source, cursor, reader)
        layout = Layout.of(destination.file_columns(cursor, connections.relation))
        as_of = file_as_of(destination, cursor, context.source, context.hooks)
        transport = (DirectoryTransport(context.outbox_dir / name) if context.dry_run
                     else make_transport(destination, context.config))
        run = _FileRun(destination, ledger, report, run_id, context.hooks, context.progress,
                       context.force, transport)
        run.ship(connections, layout, as_of, _staging_root(destination, context.config),
                 context.read_batch_rows)
    except (MartError, ConfigError, TransportError) as exc:
        report.problem = str(exc)
        log.error("%s: %s", name, exc)
    except Stop:
        pass
    except KeyboardInterrupt:
        interrupted = True
        raise
    except STORAGE_ERRORS as exc:
        # This destination stops, incomplete; the others still run.
        report.problem = scrub(storage_problem(exc))
        log.error("%s: %s", name, report.problem)
    finally:
        if run is not None:
            run.close()
        cursor.close()
        reader.close()
        context.progress.update(name, report.counts, final=True)
        status = "interrupted" if interrupted else report.status
        ledger.finish_run(run_id, name, report.counts, status, report.problem)
    return report


def _attach(destination: FileDestination, source: MartSource, cursor: duckdb.DuckDBPyConnection,
            reader: duckdb.DuckDBPyConnection) -> _Connections:
    """The mart, attached in the ledger's cursor and in the reader, its columns checked."""
    mart = destination.settings.mart
    relation = source.relation(cursor, mart)
    check_columns(cursor, relation, mart, destination.columns)
    if source.relation(reader, mart) != relation:
        raise MartError(f"{mart} reads differently in the reader: a bug, please report it.")
    return _Connections(cursor, reader, relation)


def _staging_root(destination: FileDestination, config: Config | None) -> Path | None:
    root = path_setting(destination, "staging_dir", destination.settings.staging_dir, config)
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    return root


class _FileRun:
    """One destination in one run: stage, read, write parts, hand them on."""

    def __init__(self, destination: FileDestination, ledger: Ledger, report: FileReport,
                 run_id: str, hooks: Hooks, progress: Progress, force: bool,
                 transport: Transport) -> None:
        self.destination = destination
        self.name = destination.name
        self.ledger = ledger
        self.report = report
        self.counts = report.counts
        self.run_id = run_id
        self.progress = progress
        self.force = force
        self.transport = transport
        self.retrying = Retrying(self.name, transport,
                                 RetryPolicy.from_settings(destination.settings), hooks)
        self.journal: FileJournal | None = None
        self.uploader: Uploader | None = None
        if report.mode == "live":
            self.journal = FileJournal(ledger, self.name, run_id)
            self.uploader = Uploader(ledger, self.journal, self.retrying, report, run_id, force)

    def close(self) -> None:
        self.transport.close()
        if self.journal is not None:
            self.journal.close()

    def ship(self, connections: _Connections, layout: Layout, as_of: str,
             staging_root: Path | None, read_batch_rows: int) -> None:
        if self.journal is not None:
            EarlierRuns(self.name, self.journal, self.retrying).settle()
        settings = self.destination.settings
        fmt = CsvFormat(layout.headers, settings.file_format)
        naming = PartNaming(self.name, settings.file_prefix or self.name, as_of, self.run_id,
                            self.transport.kind)
        with tempfile.TemporaryDirectory(prefix=f"ship-{self.name}-",
                                         dir=staging_root) as staging:
            writer = PartWriter(settings, fmt, naming, Path(staging), self.journal,
                                self._deliver)
            rows = _RowFeed(self, layout, fmt, writer)
            for record_batch in stream_batches(connections.reader,
                                               self._pending_sql(connections, layout), None,
                                               read_batch_rows):
                rows.take(record_batch)
                self.progress.update(self.name, self.counts)
            if not writer.finish() and not self.report.files:
                log.info("%s: nothing new to deliver; no file written", self.name)

    def _pending_sql(self, connections: _Connections, layout: Layout) -> str:
        """Stage the pending rows (shipper.pending) and order them as the files hold them."""
        destination = self.destination
        columns = list(dict.fromkeys(["delivery_key", *layout.headers, *destination.columns]))
        staging = pending.Staging(connections.cursor, self.name, connections.relation,
                                  self.ledger.scratch_path(f"pending-{self.name}.parquet"),
                                  self.ledger.memory_limit)
        staged = pending.stage_file_rows(staging, columns, self.force)
        self.counts.read, self.counts.skipped = staged.total, staged.skipped
        for _ in range(staged.missing_key):
            self.counts.count_rejection("delivery_key is missing")
        group = destination.group_column
        group_rows = ""
        if group and destination.settings.max_rows_per_file:
            group_rows = (f", count(*) over (partition by {quote_identifier(group)}) "
                          "as __group_rows")
        order = ", ".join(quote_identifier(column) for column in destination.sort_columns)
        return f"select *{group_rows} from ({staged.sql}) as pending order by {order}"

    def _deliver(self, part: FinishedPart, name: str, file_id: str) -> None:
        if self.uploader is None:
            write_to_outbox(self.transport, self.report, part, name)
        else:
            self.uploader.upload(part, name, file_id)
        self.progress.update(self.name, self.counts)

    def record_refused(self, refused: Outcomes) -> None:
        """Rows no file can hold, recorded as rejected (a live run), with the counts."""
        if self.journal is not None and len(refused):
            self.ledger.record(self.run_id, self.name, refused, self.counts)


class _RowFeed:
    """Streamed record batches into the part writer, a row at a time."""

    def __init__(self, run: _FileRun, layout: Layout, fmt: CsvFormat,
                 writer: PartWriter) -> None:
        self.run = run
        self.layout = layout
        self.format = fmt
        self.writer = writer
        self.group = run.destination.group_column
        self.previous_group: object = object()  # equal to no value of the column

    def take(self, record_batch: pa.RecordBatch) -> None:
        data = record_batch.to_pydict()
        cells_by_column = [data[header] for header in self.layout.headers]
        groups = data[self.group] if self.group else None
        group_sizes = data.get("__group_rows")
        refused = Outcomes()
        counts = self.run.counts
        for index, key in enumerate(data["delivery_key"]):
            if key is None or key == "":
                counts.count_rejection("delivery_key is missing")
                continue
            encoded = encode_row(self.layout, self.format,
                                 [values[index] for values in cells_by_column])
            if isinstance(encoded, str):
                counts.count_rejection(encoded)
                refused.append(str(key), "rejected", None, "validation", 0, encoded)
                continue
            starts_group: int | None = 1
            if groups is not None:
                starts_group = self._starts_group(groups[index], group_sizes, index)
            self.writer.write(str(key), *encoded, starts_group)
        self.run.record_refused(refused)

    def _starts_group(self, value: object, sizes: list[int] | None, index: int) -> int | None:
        """The size of the group this row starts (1 without a size), None when it
        continues the previous row's group."""
        if value == self.previous_group:
            return None
        self.previous_group = value
        return (sizes[index] if sizes is not None else None) or 1


def file_row_problems(destination: FileDestination, con: duckdb.DuckDBPyConnection,
                      relation: str) -> RunCounts:
    """What the file loop relies on in a mart, counted in one pass (`ship validate`):
    delivery_key plus at least one file column of a type a file can hold (MartError
    otherwise), and every key present and unique. The mart's dbt tests prove what the
    cells hold."""
    destination.file_columns(con, relation)
    total, missing_key, repeated = fetch_one(con, f"""
        select
            count(*),
            count(*) filter (where delivery_key is null or cast(delivery_key as varchar) = ''),
            count(delivery_key) - count(distinct delivery_key)
        from {relation}
    """) or (0, 0, 0)
    counts = RunCounts(read=int(total))
    counts.count_rejections({"delivery_key is missing": missing_key,
                             "delivery_key is repeated": repeated})
    return counts
