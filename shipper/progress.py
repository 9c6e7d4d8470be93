"""The progress display both delivery loops report to while a destination ships.

One live line per destination on a terminal, plain periodic log lines otherwise:
the destination's counts, how many of the rows to handle this run are done, and
on a long run an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from shipper.outcomes import RunCounts
from shipper.redact import get_logger

__all__ = ["Progress", "describe_counts"]

log = get_logger(__name__)

# A line says how long the destination has left once it has run this long (seconds).
ESTIMATE_AFTER_SECONDS = 30.0


class Progress:
    """One live line per destination on a terminal; plain periodic lines otherwise.

    Each line has the destination's counts; while rows are handled, how many of the
    rows to handle this run are done, and on a long run an estimate of the time left
    (at the rate since the destination started)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if not self.tty else 0.2
        self.clock = clock
        self._last = float("-inf")
        # Per destination: when it started handling rows, and how many were done then.
        self._started: dict[str, tuple[float, int]] = {}

    def start(self, name: str, counts: RunCounts | None = None) -> None:
        """The destination starts handling its rows now (its estimate counts from here)."""
        self._started[name] = (self.clock(), handled(counts) if counts else 0)

    def update(self, name: str, counts: RunCounts, final: bool = False) -> None:
        now = self.clock()
        started = self._started.setdefault(name, (now, handled(counts)))
        if not final and now - self._last < self.interval:
            return
        self._last = now
        line = describe_counts(name, counts)
        if not final:
            line += describe_remaining(counts, now - started[0], handled(counts) - started[1])
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info("%s", line)


def describe_counts(name: str, counts: RunCounts) -> str:
    line = (f"{name}: {counts.read:,} read, {counts.skipped:,} skipped, {counts.sent:,} sent, "
            f"{counts.accepted:,} accepted, {counts.rejected:,} rejected, "
            f"{counts.failed:,} failed")
    if counts.expired:
        line += f", {counts.expired:,} expired"
    return line


def handled(counts: RunCounts) -> int:
    """Rows of this run whose fate is known (recorded, or written to the outbox)."""
    outcomes = counts.accepted + counts.rejected + counts.failed
    return min(max(outcomes, counts.sent) + counts.expired, counts.read - counts.skipped)


def describe_remaining(counts: RunCounts, elapsed: float, done_since_start: int) -> str:
    """`; 250 of 1,000 to handle (25%), about 6 min left`, or nothing before any row
    is done; the estimate only after ESTIMATE_AFTER_SECONDS."""
    total = counts.read - counts.skipped
    done = handled(counts)
    if total <= 0 or done <= 0:
        return ""
    text = f"; {done:,} of {total:,} to handle ({done / total:.0%})"
    if elapsed >= ESTIMATE_AFTER_SECONDS and done_since_start > 0 and done < total:
        seconds_left = (total - done) * elapsed / done_since_start
        text += f", about {_duration(seconds_left)} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
