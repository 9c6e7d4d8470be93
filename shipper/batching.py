"""Cutting rows into request batches: pure, no I/O, no threads."""

from __future__ import annotations

from collections.abc import Iterator

from shipper.destinations.base import Rows


class Batcher:
    """Collects rows and hands out full batches of at most `batch_size` rows and, with a
    `byte_limit`, whose body (envelope, payloads and the commas between them) stays
    under that many bytes. A single payload larger than the limit travels alone, and
    the platform's answer about it decides."""

    def __init__(self, batch_size: int, byte_limit: int | None = None,
                 envelope_bytes: int = 0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.byte_limit = byte_limit
        self.envelope_bytes = envelope_bytes
        self._pending = Rows()
        self._bytes = envelope_bytes

    def add(self, rows: Rows) -> Iterator[Rows]:
        """Take `rows`; yield every batch they complete, in order."""
        if self.byte_limit is None:
            yield from self._add_by_count(rows)
        else:
            yield from self._add_by_size(rows, self.byte_limit)

    def flush(self) -> Rows | None:
        """The last, partial batch, if any."""
        if not len(self._pending):
            return None
        batch, self._pending, self._bytes = self._pending, Rows(), self.envelope_bytes
        return batch

    def _add_by_count(self, rows: Rows) -> Iterator[Rows]:
        start = 0
        while start < len(rows):
            take = min(self.batch_size - len(self._pending), len(rows) - start)
            _extend(self._pending, rows.part(start, start + take))
            start += take
            if len(self._pending) >= self.batch_size:
                batch = self.flush()
                assert batch is not None
                yield batch

    def _add_by_size(self, rows: Rows, limit: int) -> Iterator[Rows]:
        start = 0
        for index, payload in enumerate(rows.payloads):
            size = len(payload) + 1  # the comma before it
            count = index - start + len(self._pending)
            if count and self._bytes + size > limit:
                _extend(self._pending, rows.part(start, index))
                start = index
                batch = self.flush()
                if batch is not None:
                    yield batch
            self._bytes += size
            if index + 1 - start + len(self._pending) >= self.batch_size:
                _extend(self._pending, rows.part(start, index + 1))
                start = index + 1
                batch = self.flush()
                assert batch is not None
                yield batch
        _extend(self._pending, rows.part(start, len(rows)))


def _extend(target: Rows, more: Rows) -> None:
    target.keys.extend(more.keys)
    target.payloads.extend(more.payloads)
    target.fingerprints.extend(more.fingerprints)
    for name, values in more.extra.items():
        target.extra.setdefault(name, []).extend(values)
