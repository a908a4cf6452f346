"""The live tail's one read per wake-up: the page after its cursor and the late-commit count.

`queries.read_after_counting_behind` answers in one round trip what `read_after` and
`count_behind` answer in two; it must give the same answer, and search the (received, id)
index on both databases (the tail runs it on every commit).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection

from events import queries
from tests.automations.conftest import event, store
from tests.plans import assert_searches, no_seqscan, plans_of

pytestmark = pytest.mark.django_db

INDEX = "event_received_id"


@pytest.fixture
def stored_in_batches():
    for batch in range(6):  # each batch shares one `received` stamp: ties broken by id
        store(
            *[
                event(f"acme.live.{i % 5}", f"acme.thing.{i}")
                for i in range(batch * 20, batch * 20 + 20)
            ]
        )
    rows = queries.read_after(None, limit=1000)
    if connection.vendor == "sqlite":
        with connection.cursor() as db:
            db.execute("ANALYZE")
    return rows


@pytest.mark.parametrize("position", [0, 29, 60, 118, 119])
def test_the_tail_read_answers_like_read_after_and_count_behind(stored_in_batches, position):
    row = stored_in_batches[position]
    cursor = (row.received, row.id)
    since = stored_in_batches[0].received

    fresh, behind = queries.read_after_counting_behind(cursor, since=since, limit=50)

    assert [e.id for e in fresh] == [e.id for e in queries.read_after(cursor, limit=50)]
    assert fresh == queries.read_after(cursor, limit=50)
    assert behind == queries.count_behind(cursor, since=since) == position + 1


def test_the_tail_read_counts_behind_even_when_nothing_follows(stored_in_batches):
    last = stored_in_batches[-1]
    later = last.received + timedelta(seconds=1)

    fresh, behind = queries.read_after_counting_behind((later, last.id), since=later, limit=50)

    assert (fresh, behind) == ([], 0)
    fresh, behind = queries.read_after_counting_behind(
        (last.received, last.id), since=stored_in_batches[0].received, limit=50
    )
    assert (fresh, behind) == ([], len(stored_in_batches))


def test_the_tail_read_searches_the_received_id_index(stored_in_batches):
    row = stored_in_batches[60]
    cursor = (row.received, row.id)
    with no_seqscan():
        plans = plans_of(
            lambda: queries.read_after_counting_behind(
                cursor, since=row.received - timedelta(seconds=2), limit=1000
            )
        )
    assert_searches(plans, INDEX)
