"""PostgreSQL's event log is partitioned by day (issue 14): `events.partitions`, migration 0010.

The migration converts a log that already holds events (rows, ids, resource rows and every
index survive, ingest stays idempotent); the days ahead are made in advance; an event of any
time is stored (the default partition takes it, and moves to its day when that is made);
retention drops whole days and keeps the audit events of those days. SQLite keeps plain tables.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from events import partitions
from events.audit.trail import TOKEN_CREATED
from events.filters import EventFilter
from events.ingest import ingest
from events.models import Event, EventResource
from events.retention import prune
from tests.factories import event_data, related

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL only"),
]

BEFORE = [("events", "0009_event_search")]
AFTER = [("events", "0010_event_partitions")]
migration = importlib.import_module("events.migrations.0010_event_partitions")


def one(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def partition_of(event_id) -> str:
    return one("SELECT tableoid::regclass::text FROM events_event WHERE id = %s", [event_id])


def indexes(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
            [table],
        )
        return {r[0] for r in cursor.fetchall()}


@pytest.fixture
def back_to_the_latest_schema():
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_log_is_partitioned_and_sqlite_would_not_be():
    assert partitions.enabled()
    assert one("SELECT relkind FROM pg_class WHERE oid = 'events_eventresource'::regclass") == "p"
    assert one("SELECT to_regclass('events_event_default')::text") == "events_event_default"


def test_migration_converts_a_log_with_events_keeping_rows_ids_and_indexes(
    monkeypatch, back_to_the_latest_schema
):
    monkeypatch.setattr(migration, "BATCH", 7)  # several batches from a few events
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    assert one("SELECT relkind FROM pg_class WHERE oid = 'events_event'::regclass") == "r"
    # An index another migration might have added: rebuilt from the catalog, not from a list.
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX someone_elses ON events_event (event, received)")
    state = executor.loader.project_state(BEFORE).apps
    OldEvent, OldResource = (
        state.get_model("events", "Event"),
        state.get_model("events", "EventResource"),
    )
    now = timezone.now()
    times = [now - timedelta(hours=i * 5) for i in range(30)]
    times += [now - timedelta(days=400), now + timedelta(days=40)]  # far past, far future
    events = OldEvent.objects.bulk_create(
        OldEvent(
            id=uuid.uuid4(),
            occurred=at,
            received=now,
            event=f"acme.order.{i}",
            resource_id=f"acme.order.{i}",
            resource={"prefect.resource.id": f"acme.order.{i}"},
            related=[],
            payload={},
            search=f"acme.order.{i}",
        )
        for i, at in enumerate(times)
    )
    OldResource.objects.bulk_create(
        OldResource(event_id=e.id, occurred=e.occurred, resource_id=e.resource_id, labels={})
        for e in events
    )
    resource_ids = set(OldResource.objects.values_list("id", flat=True))
    before_indexes = indexes("events_event") | indexes("events_eventresource")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    assert partitions.enabled()
    assert indexes("events_event") | indexes("events_eventresource") == before_indexes
    assert one("SELECT pg_get_indexdef('someone_elses'::regclass)").endswith(
        "USING btree (event, received)"
    )
    assert one(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'events_event_pkey'"
    ) == ("PRIMARY KEY (id, occurred)")
    assert {e.id for e in Event.objects.all()} == {e.id for e in events}
    assert set(EventResource.objects.values_list("id", flat=True)) == resource_ids
    assert partition_of(events[0].id) == f"events_event_p{now.astimezone(UTC):%Y%m%d}"
    assert partition_of(events[-1].id) == "events_event_default"
    assert partition_of(events[-2].id) == "events_event_default"
    assert one("SELECT count(*) FROM events_eventid") == len(events)

    # Ingest stays idempotent over the converted ids; new resource rows take new ids.
    again = event_data("acme.order.0", "acme.order.0", occurred=events[0].occurred)
    again["id"] = str(events[0].id)
    fresh = event_data(related=[related("acme.customer.1", "customer")])
    result = ingest([again, fresh], source="test")
    assert result.duplicates == 1
    assert [str(e.id) for e in result.stored] == [fresh["id"]]
    assert Event.objects.count() == len(events) + 1
    assert min(EventResource.objects.filter(event_id=fresh["id"]).values_list("id", flat=True)) > (
        max(resource_ids)
    )
    found = EventFilter.model_validate({"text": {"query": "acme.order.2"}}).apply(
        Event.objects.all()
    )
    assert len(list(found)) == 11  # 2 and 20–29


def test_running_the_conversion_again_does_nothing():
    ingest([event_data()], source="test")
    made = set(indexes("events_event"))

    migration.rebuild(connection, partitioned=True)

    assert indexes("events_event") == made
    assert Event.objects.count() == 1


def test_the_same_id_is_stored_once_even_with_another_time():
    first = event_data(occurred=datetime.now(UTC) - timedelta(days=2))
    second = {**event_data(occurred=datetime.now(UTC)), "id": first["id"]}

    assert len(ingest([first], source="test").stored) == 1
    result = ingest([second], source="test")

    assert result.duplicates == 1
    assert Event.objects.get().occurred == datetime.fromisoformat(first["occurred"])


def test_days_are_made_ahead_and_once():
    today = datetime.now(UTC).date()
    far = today + timedelta(days=30)

    made = partitions.ensure_days(far)

    names = {name for name, _, _ in partitions.day_partitions()}
    assert {partitions.day_table("events_event", far + timedelta(days=n)) for n in range(8)} <= (
        names
    )
    assert partitions.day_table("events_eventresource", far) in made
    assert partitions.ensure_days(far) == []
    # Each partition's indexes are named after the log's.
    assert f"event_occurred_id_p{far:%Y%m%d}" in indexes(partitions.day_table("events_event", far))


def test_early_and_late_events_land_and_move_to_their_day_when_it_is_made():
    early = event_data(occurred=datetime.now(UTC) + timedelta(days=60), related=[related("x", "t")])
    late = event_data(occurred=datetime.now(UTC) - timedelta(days=3000))
    assert ingest([early, late], source="test").ok
    assert partition_of(early["id"]) == "events_event_default"
    assert partition_of(late["id"]) == "events_event_default"

    day = datetime.fromisoformat(early["occurred"]).astimezone(UTC).date()
    partitions.ensure_days(day, ahead=0)

    assert partition_of(early["id"]) == partitions.day_table("events_event", day)
    assert EventResource.objects.filter(event_id=early["id"]).count() == 2
    assert (
        one("SELECT count(*) FROM events_eventresource_default WHERE event_id = %s", [early["id"]])
        == 0
    )
    assert Event.objects.count() == 2


def expired_day(settings, now: datetime) -> tuple[date, datetime]:
    """The day 4 days before `now`, past a 2-day retention, with its partition made; and its noon."""
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=2)
    day = (now - timedelta(days=4)).date()
    partitions.ensure_days(day, ahead=0)
    return day, datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)


def test_retention_drops_whole_days_and_keeps_their_audit_events(settings):
    now = datetime.now(UTC)
    day, at = expired_day(settings, now)
    old = [event_data(occurred=at, related=[related("x", "tag")]) for _ in range(5)]
    audit = event_data(TOKEN_CREATED, "eventsite.token.1", occurred=at)
    kept = event_data(occurred=now - timedelta(hours=1))
    assert ingest([*old, kept], source="test").ok
    assert ingest([audit], source="test", allow_reserved=True).ok
    name = partitions.day_table("events_event", day)
    assert partition_of(old[0]["id"]) == name

    deleted = prune()

    assert deleted == 5
    assert one("SELECT to_regclass(%s)", [name]) is None
    assert one("SELECT to_regclass(%s)", [partitions.day_table("events_eventresource", day)]) is (
        None
    )
    assert {str(i) for i in Event.objects.values_list("id", flat=True)} == {
        kept["id"],
        audit["id"],
    }
    assert partition_of(audit["id"]) == "events_event_default"
    assert EventResource.objects.filter(event_id=audit["id"]).count() == 1
    # Their ids are forgotten: the id table does not grow for ever.
    assert one("SELECT count(*) FROM events_eventid") == 2
    # The coming days are made by the same pass.
    today = now.date()
    assert partitions.day_table("events_event", today + timedelta(days=7)) in {
        n for n, _, _ in partitions.day_partitions()
    }


def test_retention_deletes_the_default_partitions_expired_rows_row_by_row(settings):
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=7)
    old = [event_data(occurred=datetime.now(UTC) - timedelta(days=300)) for _ in range(3)]
    assert ingest(old, source="test").ok

    assert prune(batch_size=2) == 3

    assert Event.objects.count() == 0
    assert one("SELECT count(*) FROM events_eventid") == 0


def test_ids_a_stopped_pass_left_behind_are_forgotten_and_counted_by_the_next(settings):
    # A pass that stopped between a day's drop (committed) and forgetting its ids leaves them in
    # the id table; the next pass forgets every id below the oldest day that has no event left.
    now = datetime.now(UTC)
    day, at = expired_day(settings, now)
    old = [event_data(occurred=at) for _ in range(4)]
    audit = event_data(TOKEN_CREATED, "eventsite.token.1", occurred=at)
    far_past = event_data(occurred=now - timedelta(days=3000))
    assert ingest([*old, far_past], source="test").ok
    assert ingest([audit], source="test", allow_reserved=True).ok
    name, start, _ = partitions.day_partitions()[0]
    assert name == partitions.day_table("events_event", day)
    partitions._drop_day(name, start, keep_names=[TOKEN_CREATED], keep_since=start)
    assert one("SELECT count(*) FROM events_eventid") == 6

    deleted = prune()

    assert deleted == 5  # the 4 of the dropped day, counted now, and the far-past one
    assert {str(i) for i in Event.objects.values_list("id", flat=True)} == {audit["id"]}
    assert {str(i) for i in one("SELECT array_agg(id) FROM events_eventid")} == {audit["id"]}
    # Ingest is idempotent for the kept one and stores a resent dropped one again.
    assert ingest([audit], source="test", allow_reserved=True).duplicates == 1
    assert len(ingest([old[0]], source="test").stored) == 1
