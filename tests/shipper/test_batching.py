"""The batcher on its own: pure, no I/O, no threads."""

from __future__ import annotations

import pytest

from shipper.batching import Batcher
from shipper.destinations.base import Rows


def rows(start: int, count: int, size: int = 10) -> Rows:
    keys = [f"k{i}" for i in range(start, start + count)]
    return Rows(keys, [b"x" * size for _ in keys], [None] * count,
                {"extra": list(range(start, start + count))})


def keys(batches: list[Rows]) -> list[list[str]]:
    return [batch.keys for batch in batches]


def test_cuts_by_count_across_reads_and_flushes_the_rest():
    batcher = Batcher(batch_size=3)
    out = list(batcher.add(rows(0, 2))) + list(batcher.add(rows(2, 5)))
    assert keys(out) == [["k0", "k1", "k2"], ["k3", "k4", "k5"]]
    last = batcher.flush()
    assert last is not None and last.keys == ["k6"] and last.extra == {"extra": [6]}
    assert batcher.flush() is None


def test_extra_columns_and_fingerprints_travel_with_their_rows():
    batcher = Batcher(batch_size=2)
    (first,) = list(batcher.add(rows(0, 2)))
    assert first.extra == {"extra": [0, 1]} and first.fingerprints == [None, None]


def test_cuts_by_bytes_counting_the_envelope_and_the_commas():
    # Envelope 10 bytes, each payload 10 + 1 comma: 3 payloads make 43, over 40.
    batcher = Batcher(batch_size=100, byte_limit=40, envelope_bytes=10)
    out = list(batcher.add(rows(0, 5)))
    assert keys(out) == [["k0", "k1"], ["k2", "k3"]]
    assert batcher.flush().keys == ["k4"]


def test_a_payload_over_the_byte_limit_travels_alone():
    batcher = Batcher(batch_size=100, byte_limit=30)
    out = list(batcher.add(Rows(["a", "b", "c"], [b"1", b"x" * 50, b"2"], [None] * 3)))
    assert keys(out) == [["a"], ["b"]]
    assert batcher.flush().keys == ["c"]


def test_count_limit_holds_with_a_byte_limit_too():
    batcher = Batcher(batch_size=2, byte_limit=10_000)
    assert keys(list(batcher.add(rows(0, 5)))) == [["k0", "k1"], ["k2", "k3"]]


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        Batcher(batch_size=0)
