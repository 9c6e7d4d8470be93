"""What became of rows: one row's outcome, a batch's outcomes, a run's counts.

Plain data shared by both loops (REST and files), the ledger that stores them
and the summary that prints them; nothing here touches DuckDB.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shipper.jsontypes import JsonValue

# Built once: json.dumps with options builds a new encoder per call, and a run
# fingerprints every row.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False)


def fingerprint(event: JsonValue) -> str:
    """SHA-256 hex of the canonical JSON (sorted keys, no spaces) of a wire payload."""
    return hashlib.sha256(_CANONICAL_JSON.encode(event).encode()).hexdigest()


@dataclass(frozen=True)
class DeliveryRecord:
    """The outcome of one row, as written to `deliveries`."""

    delivery_key: str
    status: str  # delivered | rejected | failed
    fingerprint: str | None = None
    rejected_by: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class Outcomes:
    """The outcomes of many rows, column by column (one list per `deliveries` column):
    a batch of a thousand events costs a few lists, not a thousand objects."""

    keys: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # delivered | rejected | failed
    fingerprints: list[str | None] = field(default_factory=list)
    rejected_by: list[str | None] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, records: Iterable[DeliveryRecord]) -> Outcomes:
        outcomes = cls()
        for record in records:
            outcomes.append(record.delivery_key, record.status, record.fingerprint,
                            record.rejected_by, record.attempts, record.error)
        return outcomes

    @classmethod
    def same(cls, keys: list[str], fingerprints: list[str | None], status: str,
             attempts: int, error: str | None = None) -> Outcomes:
        """Every key with one status (a file's rows, delivered or failed together)."""
        count = len(keys)
        return cls(keys, [status] * count, fingerprints, [None] * count, [attempts] * count,
                   [error] * count)

    def append(self, key: str, status: str, fingerprint: str | None, rejected_by: str | None,
               attempts: int, error: str | None) -> None:
        self.keys.append(key)
        self.statuses.append(status)
        self.fingerprints.append(fingerprint)
        self.rejected_by.append(rejected_by)
        self.attempts.append(attempts)
        self.errors.append(error)

    def extend(self, other: Outcomes) -> None:
        self.keys.extend(other.keys)
        self.statuses.extend(other.statuses)
        self.fingerprints.extend(other.fingerprints)
        self.rejected_by.extend(other.rejected_by)
        self.attempts.extend(other.attempts)
        self.errors.extend(other.errors)

    def records(self) -> list[DeliveryRecord]:
        return [DeliveryRecord(*values) for values in zip(
            self.keys, self.statuses, self.fingerprints, self.rejected_by, self.attempts,
            self.errors, strict=True)]


@dataclass
class RunCounts:
    read: int = 0
    skipped: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    expired: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, records: Iterable[DeliveryRecord] | Outcomes) -> None:
        outcomes = records if isinstance(records, Outcomes) else Outcomes.of(records)
        delivered = outcomes.statuses.count("delivered")
        self.accepted += delivered
        if delivered == len(outcomes):
            return
        for status, error in zip(outcomes.statuses, outcomes.errors, strict=True):
            if status == "rejected":
                self.count_rejection(error or "no reason given")
            elif status == "expired":
                self.expired += 1
            elif status != "delivered":
                self.failed += 1

    def count_rejection(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def count_rejections(self, by_reason: Mapping[str, int]) -> None:
        """Add the rows rejected for each reason (`ship validate`'s counts of a mart)."""
        for reason, count in by_reason.items():
            if count:
                self.rejected += int(count)
                self.rejected_by_reason[reason] = (self.rejected_by_reason.get(reason, 0)
                                                   + int(count))
