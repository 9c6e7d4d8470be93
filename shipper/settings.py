"""The settings every part of the shipper reads: the shared `[ship]` table, what
every destination understands, and how a setting is declared.

A destination module subclasses `DestinationSettings` to add its ids and change
defaults; `shipper.config` reads them from the file and the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from shipper import redact

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, worded as one sentence that says what to fix."""


def secrets_from_env(env_names: tuple[str, ...], env: Mapping[str, str],
                     ) -> dict[str, str] | None:
    """The credentials named by `env_names`, or None when any is unset or empty; each
    value is registered with the redactor so no message can print it."""
    values = {}
    for env_name in env_names:
        value = env.get(env_name, "").strip()
        if not value:
            return None
        check_secret(env_name, value)
        redact.register_secret(value)
        values[env_name] = value
    return values


def check_secret(env_name: str, value: str) -> None:
    """Refuse a credential holding a control character (a newline pasted with it): it
    would break the request, and the error would quote it. The value is never echoed."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ConfigError(f"{env_name} holds a control character (a line break?): set it "
                          "again without one.")


def setting(default: T, help: str, *, env: str | None = None) -> T:
    """Declare a setting with its default, its description and an optional extra env name."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return field(default=default, metadata={"help": help, "env": env})


@dataclass(frozen=True)
class ShipSettings:
    """Settings shared by every destination (the `[ship]` table)."""

    source: str = setting(
        "duckdb", "Where marts are read from: 'duckdb' (the dbt database file) or 'parquet'."
    )
    duckdb_path: str = setting(
        "offline_conversions.duckdb",
        "The dbt DuckDB database holding the marts; opened read-only.",
        env="DUCKDB_PATH",
    )
    parquet_dir: str = setting(
        "export", "Directory holding <mart>.parquet or <mart>/*.parquet when source = 'parquet'."
    )
    ledger_path: str = setting(
        "delivery_ledger.duckdb", "The delivery ledger (a DuckDB file the shipper owns)."
    )
    outbox_dir: str = setting("outbox", "Where --dry-run writes request bodies.")
    read_batch_rows: int = setting(
        2_000, "Rows fetched from the mart per record batch; bounds the reader's memory."
    )
    duckdb_memory_limit: str = setting(
        "64MB", "DuckDB memory limit of each of the shipper's two DuckDB databases (the "
        "ledger, and the reader that streams the mart); joins spill beyond it."
    )
    max_shrink: float = setting(
        0.5, "A live run stops a destination whose mart is empty or holds fewer rows than "
             "(1 - max_shrink) times what its last live run read (ship run --allow-shrink "
             "ships it anyway)."
    )
    progress_interval_seconds: float = setting(
        10.0, "Seconds between progress lines when output is not a terminal."
    )


@dataclass(frozen=True)
class DestinationSettings:
    """Settings every destination understands (a `[destinations.<name>]` table).

    A destination module subclasses this to add its ids and to change defaults.
    """

    enabled: bool = setting(True, "Ship this destination when `ship run` names no destination.")
    mart: str = setting("", "The mart table (or Parquet name) this destination reads.")
    base_url: str = setting("", "Scheme and host of the platform API; tests point it at a fake.")
    api_version: str = setting("", "API version segment of the endpoint path.")
    batch_size: int = setting(1000, "Events per request; at most the platform's maximum.")
    concurrency: int = setting(2, "Requests in flight at once for this destination.")
    requests_per_second: float = setting(0.0, "Rate limit across all threads; 0 means none.")
    connect_timeout_seconds: float = setting(10.0, "Seconds to wait for a connection.")
    timeout_seconds: float = setting(60.0, "Seconds to wait for the response to one request.")
    give_up_after_seconds: float = setting(
        300.0, "Total seconds spent retrying one batch before it is recorded as failed."
    )
    max_attempts: int = setting(8, "Attempts per batch (first try included) before giving up.")
    backoff_base_seconds: float = setting(1.0, "First backoff ceiling; doubles every retry.")
    backoff_max_seconds: float = setting(60.0, "Largest backoff ceiling.")
    test_event_code: str | None = setting(
        None, "Platform test code: events go to the test tool, not to reporting."
    )
    max_event_age_days: int = setting(
        7, "The platform's age limit: an event older than this when the run reaches it is "
           "recorded as expired, not sent (the mart's window decides which events exist). "
           "Where the limit differs by event (Meta), the mart's row names each event's own "
           "and this holds only a row that names none.")
