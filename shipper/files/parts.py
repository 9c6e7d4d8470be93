"""Streamed rows into CSV parts: each row's cells formatted and encoded (or refused),
parts cut at the destination's limits without splitting a group, each row's key and
fingerprint journaled while its part is written (`shipper.files.journal`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipper.files.csvfile import (
    CellError,
    CsvFormat,
    FinishedPart,
    PartFile,
    file_name,
    format_cell,
)
from shipper.files.journal import CHUNK_ROWS, FileJournal
from shipper.outcomes import fingerprint

if TYPE_CHECKING:
    from shipper.files.destination import FileDestinationSettings

# Called with each closed part, the name it goes by and its file_id in the journal; the
# part's file is removed after.
Deliver = Callable[[FinishedPart, str, str], None]


@dataclass(frozen=True)
class Layout:
    """The file's columns: header names and the kind of cell each makes."""

    headers: list[str]
    kinds: list[str]

    @classmethod
    def of(cls, columns: Sequence[tuple[str, str]]) -> Layout:
        return cls([name for name, _kind in columns], [kind for _name, kind in columns])


def encode_row(layout: Layout, fmt: CsvFormat, values: Sequence[object],
               ) -> tuple[bytes, str] | str:
    """The row's CSV line and fingerprint, or why no CSV cell can hold one of its values
    as it is (a NaN, text that is not UTF-8): not a row check, the mart's dbt tests are."""
    try:
        cells = [format_cell(value, kind, header)
                 for value, kind, header in zip(values, layout.kinds, layout.headers, strict=True)]
        line = fmt.encode(cells)
    except CellError as exc:
        return str(exc)
    except UnicodeEncodeError:
        return "text is not valid UTF-8"
    return line, fingerprint(dict(zip(layout.headers, cells, strict=True)))


@dataclass(frozen=True)
class PartNaming:
    """What a part's file name is made of (`csvfile.file_name`)."""

    destination: str
    prefix: str
    as_of: str
    run_id: str
    transport_kind: str

    def file_id(self, number: int) -> str:
        return f"{self.destination}:{self.run_id}:{number:03d}"


class PartWriter:
    """Writes lines into numbered parts in a staging folder, and hands each closed part
    to `deliver`. With a journal (a live run) each part and its rows are journaled."""

    def __init__(self, settings: FileDestinationSettings, fmt: CsvFormat, naming: PartNaming,
                 staging: Path, journal: FileJournal | None, deliver: Deliver) -> None:
        self.settings = settings
        self.format = fmt
        self.naming = naming
        self.staging = staging
        self.journal = journal
        self.deliver = deliver
        self.part: PartFile | None = None
        self.part_rows: list[tuple[str, str | None]] = []
        self.parts_started = 0

    def write(self, key: str, line: bytes, print_: str, starts_group: int | None) -> None:
        """One line; `starts_group` is the size of the group it starts (None when it
        continues the previous line's group, which the row limit never splits)."""
        if self.part is not None and not self.part.has_room(len(line), starts_group):
            self._finish_part(split=True)
        if self.part is None:
            self.part = self._start_part()
        self.part.write_row(line)
        self.part_rows.append((key, print_))
        if len(self.part_rows) >= CHUNK_ROWS:
            self._flush_rows()

    def finish(self) -> bool:
        """Close and deliver the last part; whether there was one."""
        if self.part is None:
            return False
        self._finish_part(split=False)
        return True

    def _start_part(self) -> PartFile:
        self.parts_started += 1
        number = self.parts_started
        settings = self.settings
        path = self.staging / f"part{number:03d}.{self.format.extension}"
        part = PartFile(path, number, self.format, gzip=settings.gzip,
                        max_rows=settings.max_rows_per_file,
                        max_bytes=settings.max_bytes_per_file)
        if self.journal is not None:
            self.journal.start_file(self.naming.file_id(number), number, self.naming.as_of,
                                    self.naming.transport_kind)
        return part

    def _flush_rows(self) -> None:
        if self.journal is not None and self.part is not None:
            self.journal.add_rows(self.naming.file_id(self.part.number), self.part_rows)
        self.part_rows = []

    def _finish_part(self, split: bool) -> None:
        part = self.part
        assert part is not None
        self._flush_rows()
        finished = part.close()
        self.part = None
        numbered = split or finished.number > 1
        naming = self.naming
        name = file_name(naming.prefix, naming.as_of, naming.run_id,
                         finished.number if numbered else None, self.format.extension,
                         self.settings.gzip)
        try:
            self.deliver(finished, name, naming.file_id(finished.number))
        finally:
            finished.path.unlink(missing_ok=True)
