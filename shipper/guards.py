"""Checks before a destination ships: is its mart the one to send?

A build that went wrong can leave a mart that reads fine and is wrong: empty
(a misspelled input column, a filter that matched nothing) or much smaller than
what the destination last delivered from. Sending it is not an error the
platform would catch, so it is caught here, before anything is sent.
"""

from __future__ import annotations

import duckdb

from shipper.ledger import Ledger
from shipper.reader import fetch_one


def shrink_problem(con: duckdb.DuckDBPyConnection, relation: str, mart: str, name: str,
                   ledger: Ledger, max_shrink: float) -> str | None:
    """Why `mart` should not be shipped to `name` as it is, or None.

    Empty, or fewer rows than (1 - max_shrink) times what the last complete live run
    of the destination read.
    """
    row = fetch_one(con, f"select count(*) from {relation}")
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


# Statuses dbt gives a node that built, or a test that held.
_GOOD = "('success', 'pass', 'warn')"


def build_problem(con: duckdb.DuckDBPyConnection, builds: str, mart: str) -> str | None:
    """Why `mart` is not the latest build's, per the build log `builds` (the dbt_builds
    table the project's on-run-end hook writes), or None.

    The mart's latest invocation must have built it (a skipped or failed model leaves
    the previous build's table in place) with none of its tests failing, and for the
    same as_of as the project's latest build that built any model.
    """
    latest = fetch_one(con, f"""
        select invocation_id, as_of
        from {builds}
        where resource_type = 'model' and node_name = $mart
        order by finished_at desc
        limit 1
    """, {"mart": mart})
    if latest is None:
        return (f"the build log has no build of {mart}: run dbt build (the marts it "
                "builds are recorded in dbt_builds).")
    invocation, as_of = latest
    failed = [f"{node}: {status}" for node, status in con.execute(f"""
        select node_name, status
        from {builds}
        where invocation_id = $invocation
            and (node_name = $mart or tested_model = $mart)
            and status not in {_GOOD}
        order by status = 'skipped', resource_type = 'model', node_name
    """, {"invocation": invocation, "mart": mart}).fetchall()]
    if failed:
        return (f"{mart} did not succeed in its latest build ({', '.join(failed[:3])}): the "
                "table holds an older build; fix the build and run it again.")
    newest = fetch_one(con, f"""
        select as_of
        from {builds}
        where resource_type = 'model' and status = 'success'
        order by finished_at desc
        limit 1
    """)
    if newest is not None and newest[0] != as_of:
        return (f"{mart} was built for as_of {as_of}, the latest build for {newest[0]}: "
                "build every mart for the same as_of.")
    return None
