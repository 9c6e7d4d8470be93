"""What one destination's run works with and what it reports, whichever delivery loop
ships it (REST or files): `RunContext` in, `DestinationReport` out (its counts, why
it could not complete, and the exit code and status they make)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipper.outcomes import RunCounts

if TYPE_CHECKING:
    from shipper.config import Config
    from shipper.hooks import Hooks
    from shipper.ledger import Ledger
    from shipper.progress import Progress
    from shipper.reader import MartSource

__all__ = ["DestinationReport", "RunContext"]


@dataclass(frozen=True)
class RunContext:
    """What one destination's run works with."""

    ledger: Ledger
    source: MartSource
    run_id: str
    dry_run: bool
    outbox_dir: Path
    read_batch_rows: int
    hooks: Hooks
    progress: Progress
    # File destinations: write and upload every row again (`ship run --force`), and the
    # configuration (paths relative to it).
    force: bool = False
    config: Config | None = None


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
