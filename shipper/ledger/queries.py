"""Reading the ledger back: `ship status`, the guards before a live run, tests."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from shipper.ledger.connection import LedgerConnection, Row, fetch_one


class StatusQueries(LedgerConnection):
    """What the ledger says about runs, rejections, requests and single rows."""

    def recent_runs(self, destinations: Sequence[str] | None = None,
                    per_destination: int = 5) -> list[Row]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"""
            select * exclude (rank_in_destination)
            from (
                select
                    *,
                    row_number() over (
                        partition by destination order by started_at desc, run_id desc
                    ) as rank_in_destination
                from runs
                {filter_sql}
            )
            where rank_in_destination <= {int(per_destination)}
            order by destination, started_at desc, run_id desc
            """,
            params,
        )

    def rejections(self, destinations: Sequence[str] | None = None,
                   limit: int = 20) -> list[Row]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"select * from rejections {filter_sql} "
            f"order by destination, rejected_at desc, delivery_key limit {int(limit)}",
            params,
        )

    def rejection_counts(self, destinations: Sequence[str] | None = None) -> list[Row]:
        filter_sql, params = _destination_filter(destinations)
        return self._dicts(
            f"select destination, rejected_by, reason, count(*) as rows from rejections "
            f"{filter_sql} group by all order by destination, rows desc, reason",
            params,
        )

    def status_counts(self, destination: str) -> dict[str, int]:
        rows = self._con.execute(
            "select status, count(*) from deliveries where destination = ? group by status",
            [destination],
        ).fetchall()
        return {status: count for status, count in rows}

    def delivery(self, destination: str, key: str) -> Row | None:
        rows = self._dicts(
            "select * from deliveries where destination = $destination and delivery_key = $key",
            {"destination": destination, "key": key},
        )
        return rows[0] if rows else None

    def request_counts(self, destinations: Sequence[str] | None = None) -> list[Row]:
        """Requests and their events by destination and processing status (none when the
        ledger predates the table: read-only, it is not migrated)."""
        filter_sql, params = _destination_filter(destinations)
        return self._dicts_if_table(
            f"select destination, status, count(*) as requests, sum(events) as events "
            f"from platform_requests {filter_sql} group by all "
            f"order by destination, status", params)

    def request_problems(self, destinations: Sequence[str] | None = None,
                         limit: int = 20) -> list[Row]:
        """The latest requests the platform did not (or not yet) process without error."""
        filter_sql, params = _destination_filter(destinations)
        return self._dicts_if_table(
            f"select * from (select destination, request_id, run_id, sent_at, events, status, "
            f"checked_at, reason from platform_requests {filter_sql}) "
            f"where status <> 'SUCCESS' order by destination, sent_at desc, request_id "
            f"limit {int(limit)}", params)

    # -- before a live run (shipper.guards, shipper.cli) -------------------------------------

    def last_live_rows_read(self, destination: str) -> int | None:
        """Rows the last live run of `destination` that completed read, or None."""
        row = fetch_one(self._con,
            "select rows_read from runs where destination = ? and mode = 'live' "
            "and status in ('ok', 'rejections') order by started_at desc limit 1",
            [destination])
        return int(row[0]) if row else None

    def has_deliveries(self, destination: str) -> bool:
        row = fetch_one(self._con,
            "select count(*) from (select 1 from deliveries where destination = ? and "
            "status = 'delivered' limit 1)", [destination])
        return bool(row and row[0])

    def _dicts_if_table(self, sql: str, params: dict[str, object]) -> list[Row]:
        try:
            return self._dicts(sql, params)
        except duckdb.CatalogException:
            return []


def _destination_filter(destinations: Sequence[str] | None) -> tuple[str, dict[str, object]]:
    if not destinations:
        return "", {}
    return "where destination in (select unnest($destinations))", {
        "destinations": list(destinations)
    }
