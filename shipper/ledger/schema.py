"""The ledger's tables, under one schema version, and the migration of older ledgers.

Every table the shipper keeps in the ledger is created here, the files journal's
(`files`, `file_rows`, see `shipper.files.journal`) included: `create` brings
any ledger this shipper can read to SCHEMA_VERSION, in one place, on open.
"""

from __future__ import annotations

import duckdb

from shipper.ledger.connection import LedgerError, fetch_one, rollback

SCHEMA_VERSION = "3"

_DELIVERIES = """
create table if not exists ledger_info (
    key varchar primary key,
    value varchar not null
);
create table if not exists deliveries (
    destination varchar not null,
    delivery_key varchar not null,
    fingerprint varchar,
    status varchar not null check (status in ('delivered', 'rejected', 'failed', 'expired')),
    rejected_by varchar check (rejected_by in ('validation', 'platform')),
    attempts integer not null default 0,
    first_attempt_at timestamp not null,
    last_attempt_at timestamp not null,
    error varchar,
    run_id varchar,
    primary key (destination, delivery_key)
);
create table if not exists runs (
    run_id varchar not null,
    destination varchar not null,
    mode varchar not null,
    started_at timestamp not null,
    finished_at timestamp,
    status varchar not null,
    rows_read bigint not null default 0,
    rows_skipped bigint not null default 0,
    rows_sent bigint not null default 0,
    rows_accepted bigint not null default 0,
    rows_rejected bigint not null default 0,
    rows_failed bigint not null default 0,
    rows_expired bigint not null default 0,
    message varchar,
    primary key (run_id, destination)
);
create or replace view rejections as
select
    destination,
    delivery_key,
    rejected_by,
    error as reason,
    last_attempt_at as rejected_at,
    run_id
from deliveries
where status = 'rejected';
"""

# Requests a platform processes after answering them (Google Data Manager): version 3.
_PLATFORM_REQUESTS = """
create table if not exists platform_requests (
    destination varchar not null,
    request_id varchar not null,
    run_id varchar,
    sent_at timestamp not null,
    events integer not null,
    status varchar not null,
    checked_at timestamp,
    checks integer not null default 0,
    reason varchar,
    primary key (destination, request_id)
);
create table if not exists platform_request_rows (
    destination varchar not null,
    request_id varchar not null,
    delivery_key varchar not null
);
"""

# The files journal (shipper.files.journal). Unchanged since file destinations came;
# ledgers written before this module created them get them on open, as the journal
# itself created them before (if not exists), so they add no version of their own.
_FILES = """
create table if not exists files (
    file_id varchar primary key,
    destination varchar not null,
    run_id varchar not null,
    part integer not null,
    as_of varchar,
    file_name varchar,
    transport varchar,
    location varchar,
    rows bigint not null default 0,
    bytes bigint,
    sha256 varchar,
    attempts integer not null default 0,
    status varchar not null,
    temporary_removed boolean not null default false,
    started_at timestamp not null,
    finished_at timestamp,
    error varchar
);
create table if not exists file_rows (
    file_id varchar not null,
    delivery_key varchar not null,
    fingerprint varchar
);
"""

SCHEMA = _DELIVERIES + _PLATFORM_REQUESTS + _FILES


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the database to SCHEMA_VERSION: migrate an older ledger, create what is
    missing, and mark runs a dead process left `running` as interrupted."""
    migrate(con)
    con.execute(SCHEMA)
    con.execute(
        "insert into ledger_info values ('schema_version', ?) on conflict do nothing",
        [SCHEMA_VERSION],
    )
    # Only one process can hold the file for writing, so a `running` row left
    # behind belongs to a process that died (kill -9, power loss).
    con.execute("update runs set status = 'interrupted' where status = 'running'")


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a ledger written by an earlier version to SCHEMA_VERSION, in one transaction.

    1 -> 2: `deliveries.status` may be 'expired' (DuckDB cannot alter a CHECK
    constraint, so the table is rebuilt) and `runs` counts expired rows.
    2 -> 3: the tables `platform_requests` and `platform_request_rows` (created by
    SCHEMA, which runs after this).
    """
    tables = {row[0] for row in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'"
    ).fetchall()}
    if "ledger_info" not in tables:
        return
    row = fetch_one(con, "select value from ledger_info where key = 'schema_version'")
    version = row[0] if row else SCHEMA_VERSION
    if version == SCHEMA_VERSION:
        return
    if version not in ("1", "2"):
        raise LedgerError(f"the ledger has schema version {version}, which this shipper does "
                          f"not know (it writes {SCHEMA_VERSION}): use a newer shipper.")
    con.execute("begin transaction")
    try:
        if version == "1":
            _rebuild_deliveries(con)
        # 2 -> 3 adds tables only: SCHEMA creates them (here, or right after).
        con.execute(SCHEMA)
        con.execute("update ledger_info set value = ? where key = 'schema_version'",
                    [SCHEMA_VERSION])
        con.execute("commit")
    except BaseException:
        rollback(con)
        raise


def _rebuild_deliveries(con: duckdb.DuckDBPyConnection) -> None:
    """1 -> 2, inside the migration's transaction."""
    con.execute("drop view if exists rejections")
    con.execute("alter table deliveries rename to deliveries_v1")
    con.execute(SCHEMA)
    con.execute("insert into deliveries select * from deliveries_v1")
    con.execute("drop table deliveries_v1")
    con.execute("alter table runs add column if not exists rows_expired bigint default 0")
