"""A page's memory does not grow with the number of matches (issue 17 item 4).

tracemalloc's peak while reading the newest page (with its total) of a filter matching 200
events and of one matching ten times as many: the page holds 50 either way, and nothing on the
way (the total, the plan, `distinct`) may materialise the matches.
"""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from events import queries, resource_counts
from events.filters import EventFilter
from events.ingest import ingest
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)

FILTERS = {
    "label": {"resource": {"labels": {"acme.region": ["eu-west"]}}},
    "related role": {"related": {"role": ["customer"]}},
    "text": {"text": {"query": "gold"}},
    "distinct": {"resource": {"distinct": True}},
    "resource id prefix": {"resource": {"id_prefix": ["acme.order."]}},
}


def store(n: int, start: int) -> None:
    events = [
        event_data(
            "acme.order.created",
            f"acme.order.{start + i}",
            labels={"acme.region": "eu-west"},
            related=[related(f"acme.customer.{i % 7}", "customer")],
            payload={"message": "gold " * 20},
            occurred=NOW - timedelta(seconds=start + i),
        )
        for i in range(n)
    ]
    for at in range(0, n, 500):
        assert ingest(events[at : at + 500], source="test").ok


def peak_of_page(filter_json: dict) -> int:
    event_filter = EventFilter.model_validate(filter_json)
    queries.first_page(event_filter, limit=50)  # warm: caches, compiled queries
    tracemalloc.start()
    page = queries.first_page(event_filter, limit=50)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(page.events) == 50
    return peak


@pytest.mark.parametrize("name", FILTERS)
def test_a_pages_memory_does_not_grow_with_the_matches(name):
    store(200, 0)
    few = peak_of_page(FILTERS[name])
    store(1800, 200)
    many = peak_of_page(FILTERS[name])

    assert many < few * 1.5 + 200_000, (few, many)


def peak_of_count_by_resource() -> int:
    """tracemalloc's peak while reading every row of count-by/resource, chunk by chunk."""
    event_filter = EventFilter.model_validate({"event": {"prefix": ["acme."]}})
    rows = resource_counts.count_by_resource(event_filter)  # warm
    tracemalloc.start()
    counts = resource_counts.ResourceCounts(event_filter)
    read = 0
    try:
        while chunk := counts.chunk():
            read += len(chunk)
    finally:
        counts.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert read == len(rows)
    return peak


def test_count_by_resource_reads_in_chunks_whatever_the_number_of_resources(monkeypatch):
    monkeypatch.setattr(resource_counts, "CHUNK", 100)
    store(200, 0)
    few = peak_of_count_by_resource()
    store(1800, 200)
    many = peak_of_count_by_resource()

    assert many < few * 1.5 + 200_000, (few, many)
