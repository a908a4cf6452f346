"""The engine's reads of the log use the (received, id) index on both databases (issue 17).

Each query is captured as the real function runs it and handed back to the database's planner
(`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL). A plan that scans the events table
(a full table or full index walk) fails: the engine polls many times a second, so one such read
costs O(stored events) per poll — 77 % of a core at 1M events, idle.

On PostgreSQL sequential scans are priced out for the test (`enable_seqscan = off`): with a few
hundred rows the planner rightly prefers one, so only an index it *cannot* use shows as a scan.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automations.engine import Engine
from events import queries
from events.models import Event
from tests.automations.conftest import event, make_automation, store

pytestmark = pytest.mark.django_db

TABLE = "events_event"
INDEX = "event_received_id"
DAY = timedelta(days=1)


@pytest.fixture
def cursor_in_the_middle():
    store(*[event(f"acme.plan.{i % 7}", f"acme.thing.{i}", ago=300 - i) for i in range(300)])
    rows = queries.read_after(None, limit=150)
    if connection.vendor == "sqlite":
        with connection.cursor() as db:
            db.execute("ANALYZE")  # as `optimize` would have; the plan must not depend on it
    return (rows[-1].received, rows[-1].id)


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


def plans_of(run) -> list[tuple[str, str]]:
    """(sql, plan text) of every query on the events table that `run()` makes."""
    with CaptureQueriesContext(connection) as captured:
        run()
    out = []
    for query in captured.captured_queries:
        sql = query["sql"]
        if f'FROM "{TABLE}"' not in sql:
            continue
        with connection.cursor() as db:
            if connection.vendor == "sqlite":
                db.execute("EXPLAIN QUERY PLAN " + sql)
                plan = "\n".join(row[-1] for row in db.fetchall())
            else:
                db.execute("EXPLAIN " + sql)
                plan = "\n".join(row[0] for row in db.fetchall())
        out.append((sql, plan))
    assert out, "the function made no query on the events table"
    return out


def assert_searches(plans: list[tuple[str, str]], index: str | None = None) -> None:
    """Every plan is bounded by an index (`index`, when given), and none walks the table."""
    for sql, plan in plans:
        if connection.vendor == "sqlite":
            # "SCAN events_event" (with or without "USING INDEX ...") walks every row.
            scans = [line for line in plan.splitlines() if line.startswith(f"SCAN {TABLE}")]
            assert not scans, f"{plan}\n{sql}"
            assert f"SEARCH {TABLE} USING" in plan, f"{plan}\n{sql}"
        else:
            assert f"Seq Scan on {TABLE}" not in plan, f"{plan}\n{sql}"
            # An index scan without an Index Cond walks the whole index.
            assert "Index Cond" in plan, f"{plan}\n{sql}"
        assert index is None or index in plan, f"{plan}\n{sql}"


def test_the_read_after_the_cursor_searches_the_received_id_index(cursor_in_the_middle):
    with no_seqscan():
        plans = plans_of(lambda: queries.read_after(cursor_in_the_middle, limit=2000))
    assert_searches(plans, INDEX)


def test_the_late_check_behind_the_cursor_searches_the_received_id_index(cursor_in_the_middle):
    since = cursor_in_the_middle[0] - timedelta(seconds=30)
    with no_seqscan():
        plans = plans_of(lambda: queries.count_behind(cursor_in_the_middle, since=since))
        plans += plans_of(lambda: queries.received_behind(cursor_in_the_middle, since=since))
    assert_searches(plans, INDEX)


def test_every_read_of_an_engine_poll_searches_the_index(cursor_in_the_middle):
    """What `Engine.step` itself asks of the events table, the late check included."""
    make_automation({"type": "event", "posture": "Reactive", "expect": ["acme.plan.3"]})
    engine = Engine()
    engine.load()
    engine.cursor = cursor_in_the_middle
    # Three events behind the cursor unseen, as if committed late: the late check lists them.
    behind = queries.received_behind(cursor_in_the_middle, since=cursor_in_the_middle[0] - DAY)
    engine.seen = dict(sorted(behind.items())[3:])
    engine.next_late_check = engine.clock()
    with no_seqscan():
        plans = plans_of(engine.step)
    assert len(plans) >= 3, [sql for sql, _ in plans]  # late count, late ids, the batch
    assert_searches(plans)


def test_the_plan_check_fails_on_a_walk_of_the_whole_index(cursor_in_the_middle):
    """The check tells a bounded search from an ordered walk of every row, on both databases."""
    walk = Event.objects.filter(resource_id__endswith=".nothing").order_by("received", "id")
    with no_seqscan():
        plans = plans_of(lambda: list(walk[:10]))
    with pytest.raises(AssertionError):
        assert_searches(plans, INDEX)
