"""What a file destination's run reports: the shared report, with its files listed."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipper.report import DestinationReport

__all__ = ["FileOutcome", "FileReport"]


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
