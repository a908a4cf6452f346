"""Migration 0009 fills and indexes the search text of a log that already holds events."""

from __future__ import annotations

import importlib
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from events.filters import EventFilter
from events.models import Event
from events.text_search import search_text
from events.totals import by_criteria

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("events", "0008_apitoken_scope")]
AFTER = [("events", "0009_event_search")]
migration = importlib.import_module("events.migrations.0009_event_search")


@pytest.fixture(autouse=True)
def _back_to_the_latest_schema():
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def store_at(target, fields) -> None:
    """Migrate back to `target` and store 30 events there, with `fields(i)` for event i."""
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    OldEvent = executor.loader.project_state(target).apps.get_model("events", "Event")
    now = timezone.now()
    OldEvent.objects.bulk_create(
        OldEvent(
            id=uuid.uuid4(),
            occurred=now - timedelta(seconds=i),
            received=now,
            resource_id=f"acme.order.{i}",
            related=[],
            **fields(i),
        )
        for i in range(30)
    )


def test_existing_events_are_given_their_search_text_in_batches_and_found(monkeypatch):
    monkeypatch.setattr(migration, "BATCH", 7)  # several batches from a few events
    store_at(
        BEFORE,
        lambda i: {
            "event": f"acme.Straße.{i}",
            "resource": {"prefect.resource.id": f"acme.order.{i}", "z": "Ω", "a": str(i)},
            "payload": {"note": "ΣΟΦΙΑ 東京" if i % 3 == 0 else "plain", "n": i},
        },
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    rows = list(Event.objects.all())
    assert len(rows) == 30
    assert all(row.search == search_text(row.as_schema()) for row in rows)
    found = EventFilter.model_validate({"text": {"query": "σοφια"}}).apply(Event.objects.all())
    assert sorted(e.event for e in found) == sorted(f"acme.Straße.{i}" for i in range(0, 30, 3))
    found = EventFilter.model_validate({"text": {"query": "STRASSE.1"}}).apply(Event.objects.all())
    assert {e.event for e in found} == {"acme.Straße.1", *(f"acme.Straße.1{i}" for i in range(10))}


def test_migration_0012_indexes_an_existing_sqlite_log_and_keeps_it_indexed():
    """The FTS5 table is filled from the events already stored, then kept by its triggers."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 table (a no-op on PostgreSQL)")
    store_at(
        [("events", "0011_resource_label_index")],
        lambda i: {
            "event": f"acme.old.{i}",
            "resource": {"prefect.resource.id": f"acme.order.{i}"},
            "search": f'acme.old.{i} {{"prefect.resource.id":"acme.order.{i}"}} [] {{}}',
        },
    )

    executor = MigrationExecutor(connection)
    executor.migrate([("events", "0012_event_search_fts")])
    Event.objects.filter(event="acme.old.7").delete()

    with connection.cursor() as cursor:
        # FTS5's own check of the index against the table (raises when they differ).
        cursor.execute(
            "INSERT INTO events_event_fts(events_event_fts, rank) VALUES ('integrity-check', 1)"
        )
        cursor.execute(
            "SELECT count(*) FROM events_event_fts WHERE events_event_fts MATCH '\"r.1\"'"
        )
        assert cursor.fetchone() == (11,)  # acme.order.1, .10 … .19
    event_filter = EventFilter.model_validate({"text": {"query": "'order.1\"'"}})
    found = by_criteria(event_filter)
    assert "events_event_fts" in str(found.query)
    assert [e.event for e in found] == ["acme.old.1"]
