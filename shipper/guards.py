"""Checks before a destination ships: is its mart the one to send?

A build that went wrong can leave a mart that reads fine and is wrong: empty
(a misspelled input column, a filter that matched nothing) or much smaller than
what the destination last delivered from. Sending it is not an error the
platform would catch, so it is caught here, before anything is sent.
"""

from __future__ import annotations

import duckdb

from shipper.ledger import Ledger


def shrink_problem(con: duckdb.DuckDBPyConnection, relation: str, mart: str, name: str,
                   ledger: Ledger, max_shrink: float) -> str | None:
    """Why `mart` should not be shipped to `name` as it is, or None.

    Empty, or fewer rows than (1 - max_shrink) times what the last complete live run
    of the destination read.
    """
    row = con.execute(f"select count(*) from {relation}").fetchone()
    rows = int(row[0]) if row else 0
    if rows == 0:
        return (f"{mart} is empty: check the build (a misspelled input column, a window that "
                f"selects nothing); --allow-shrink ships it anyway.")
    before = ledger.last_live_rows_read(name)
    if before and rows < before * (1 - max_shrink):
        return (f"{mart} holds {rows:,} rows, {1 - rows / before:.0%} fewer than the "
                f"{before:,} the last live run of {name} read (max_shrink is "
                f"{max_shrink:.0%}): check the build; --allow-shrink ships it anyway.")
    return None
