"""Reading query plans in tests: a query the real code makes, handed back to the planner.

`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL. On PostgreSQL sequential scans are priced
out (`no_seqscan`): with the few rows of a test the planner rightly prefers one, so only an index
it *cannot* use shows as a scan.
"""

from __future__ import annotations

import contextlib

from django.db import connection
from django.test.utils import CaptureQueriesContext

EVENTS = "events_event"


@contextlib.contextmanager
def no_seqscan():
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as db:
        db.execute("SET enable_seqscan = off")
    try:
        yield
    finally:
        with connection.cursor() as db:
            db.execute("RESET enable_seqscan")


def plans_of(run, table: str = EVENTS) -> list[tuple[str, str]]:
    """(sql, plan text) of every query on `table` that `run()` makes."""
    with CaptureQueriesContext(connection) as captured:
        run()
    out = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if f'FROM "{table}"' not in sql and f'UPDATE "{table}"' not in sql:
            continue
        with connection.cursor() as db:
            if connection.vendor == "sqlite":
                db.execute("EXPLAIN QUERY PLAN " + sql)
                plan = "\n".join(row[-1] for row in db.fetchall())
            else:
                db.execute("EXPLAIN " + sql)
                plan = "\n".join(row[0] for row in db.fetchall())
        out.append((sql, plan))
    assert out, f"the function made no query on {table}"
    return out


def assert_searches(
    plans: list[tuple[str, str]], index: str | None = None, table: str = EVENTS
) -> None:
    """Every plan is bounded by an index (`index`, when given), and none walks `table`."""
    for sql, plan in plans:
        if connection.vendor == "sqlite":
            # "SCAN events_event" (with or without "USING INDEX ...") walks every row.
            scans = [
                line
                for line in plan.splitlines()
                if line == f"SCAN {table}" or line.startswith(f"SCAN {table} ")
            ]
            assert not scans, f"{plan}\n{sql}"
            assert f"SEARCH {table} USING" in plan, f"{plan}\n{sql}"  # (not another table's)
        else:
            assert f"Seq Scan on {table}" not in plan, f"{plan}\n{sql}"
            # An index scan without an Index Cond walks the whole index.
            assert "Index Cond" in plan, f"{plan}\n{sql}"
        assert index is None or index in plan, f"{plan}\n{sql}"
