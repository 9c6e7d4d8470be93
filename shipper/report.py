"""What one destination's run reports, whichever loop shipped it (REST or files):
its counts, why it could not complete, and the exit code and status they make; and
what a loop needs of the progress display (`shipper.delivery.Progress`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shipper.outcomes import RunCounts

__all__ = ["DestinationReport", "ProgressLine"]


@dataclass
class DestinationReport:
    """What happened to one destination in one run."""

    name: str
    mode: str  # live | dry_run
    counts: RunCounts = field(default_factory=RunCounts)
    # Why the destination could not complete (fatal platform answer, unreadable mart).
    problem: str | None = None
    outbox_files: int = 0

    @property
    def file_lines(self) -> list[str]:
        """Lines the summary prints under the table (a file destination's files)."""
        return []

    @property
    def exit_code(self) -> int:
        if self.problem or self.counts.failed:
            return 2
        if self.counts.rejected:
            return 1
        return 0

    @property
    def status(self) -> str:
        return {0: "ok", 1: "rejections", 2: "incomplete"}[self.exit_code]


class ProgressLine(Protocol):
    """Where a loop reports its counts as it goes (a live line, or periodic log lines)."""

    def update(self, name: str, counts: RunCounts, final: bool = False) -> None: ...
