"""The engine's reads of the log use the (received, id) index on both databases (issue 17).

Each query is captured as the real function runs it and handed back to the database's planner
(`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL). A plan that scans the events table
(a full table or full index walk) fails: the engine polls many times a second, so one such read
costs O(stored events) per poll — 77 % of a core at 1M events, idle.

On PostgreSQL sequential scans are priced out for the test (`enable_seqscan = off`): with a few
hundred rows the planner rightly prefers one, so only an index it *cannot* use shows as a scan.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from automations.engine import Engine
from events import queries
from events.models import Event
from tests.automations.conftest import event, make_automation, store
from tests.plans import assert_searches, no_seqscan, plans_of

pytestmark = pytest.mark.django_db

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
    engine.horizon = None  # as an engine that has run for a while: the whole overlap is checked
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
