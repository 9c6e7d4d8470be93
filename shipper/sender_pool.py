"""The sender threads of a live run, and their back-pressure: the only module of the
REST loop that starts threads (the reader's prefetching thread is `shipper.reader`'s).

The main thread reads and batches; it hands each batch to `SenderPool.submit`,
which blocks while `concurrency` batches are in flight. A sender thread sends one
batch and writes its outcomes to the ledger before it takes another, then hands the
main thread a `Sent` message; only the main thread reads the messages (counts,
report, progress). A failure to write raises in the main thread when the message
is read.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

from shipper.destinations.base import Rows
from shipper.sending import BatchResult

__all__ = ["SenderPool", "Sent"]


@dataclass(frozen=True)
class Sent:
    """A sender thread's message: the batch it sent, and what became of its rows (already
    in the ledger)."""

    batch: Rows
    result: BatchResult


class SenderPool:
    """Up to `concurrency` sender threads, each running `work` on one batch at a time."""

    def __init__(self, name: str, concurrency: int, work: Callable[[Rows], BatchResult]) -> None:
        self.concurrency = concurrency
        self._work = work
        self._executor = futures.ThreadPoolExecutor(concurrency, thread_name_prefix=name)
        self._in_flight: set[futures.Future[Sent]] = set()

    def room(self) -> list[Sent]:
        """Wait until a batch can be submitted; the messages of the batches that finished
        meanwhile (none when there was room already)."""
        settled: list[Sent] = []
        while len(self._in_flight) >= self.concurrency:
            settled.extend(self._collect(futures.FIRST_COMPLETED))
        return settled

    def submit(self, batch: Rows) -> None:
        """Send `batch` in a sender thread; call `room` first."""
        self._in_flight.add(self._executor.submit(self._send, batch))

    def drain(self) -> list[Sent]:
        """Wait for every batch in flight; their messages."""
        return self._collect(futures.ALL_COMPLETED) if self._in_flight else []

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _send(self, batch: Rows) -> Sent:
        return Sent(batch, self._work(batch))

    def _collect(self, when: str) -> list[Sent]:
        done = futures.wait(self._in_flight, return_when=when).done
        self._in_flight -= done
        return [future.result() for future in done]
