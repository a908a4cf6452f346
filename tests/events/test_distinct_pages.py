"""`distinct` pages: the walk in chunks and SQL's window agree with the in-memory evaluator,
page after page (issue 14: `distinct` without a window over every match)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from events import page_plans, queries
from events.filters import EventFilter
from events.ingest import ingest
from events.models import Event
from tests.factories import event_data

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize("plan", ["walk", "window"])
@pytest.mark.parametrize("chunk", [200, 3])
def test_distinct_pages_agree_with_the_evaluator(order, plan, chunk, monkeypatch):
    if plan == "window":
        monkeypatch.setattr(page_plans, "DISTINCT_BUDGET", 0)
    monkeypatch.setattr(page_plans, "DISTINCT_CHUNK", chunk)
    rng = random.Random(5)
    events = [
        event_data(
            rng.choice(["acme.a", "acme.b"]),
            f"acme.thing.{rng.randrange(9)}",
            occurred=NOW - timedelta(seconds=rng.randrange(3600)),
        )
        for _ in range(80)
    ]
    assert ingest(events, source="test").ok
    event_filter = EventFilter.model_validate(
        {"resource": {"distinct": True}, "event": {"name": ["acme.a"]}, "order": order}
    )

    page = queries.first_page(event_filter, limit=2)
    seen = [e.id for e in page.events]
    while page.next_token:
        page = queries.next_page(page.next_token)
        seen += [e.id for e in page.events]

    stored = [e.as_schema() for e in Event.objects.all()]
    assert seen == [e.id for e in event_filter.evaluate(stored)]
