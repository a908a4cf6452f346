"""The per-minute/per-hour rollups answer exactly what a scan of the events would."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import queries, rollups
from events.filters import EventFilter
from events.ingest import ingest, store
from events.models import Event, EventCount
from events.retention import prune
from events.schema import Event as WireEvent
from tests.factories import event_data

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
NAMES = ["a.x", "a.y", "b.x", "prefect.log.write"]

stored_events = st.lists(
    st.builds(
        lambda s, name, n: WireEvent(
            occurred=NOW - timedelta(microseconds=s),
            event=name,
            resource={"prefect.resource.id": "r"},
            id=uuid.UUID(int=n),
        ),
        st.integers(0, 3 * 86400 * 10**6),
        st.sampled_from(NAMES),
        st.integers(0, 2**128 - 1),
    ),
    max_size=25,
    unique_by=lambda e: e.id,
)
windows = st.tuples(st.integers(0, 3 * 86400 * 10**6), st.integers(0, 3 * 86400 * 10**6)).map(
    sorted
)
name_filters = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "prefix": st.lists(st.sampled_from(["a.", "b", "prefect."]), max_size=2),
            "exclude_name": st.lists(st.sampled_from(NAMES), max_size=2),
            "name": st.lists(st.sampled_from(NAMES), max_size=2),
        },
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=stored_events,
    window=windows,
    names=name_filters,
    unit=st.sampled_from(["minute", "hour", "day"]),
    interval=st.sampled_from([1, 5, 1.5]),
)
def test_rollup_counts_equal_a_scan_of_the_events(events, window, names, unit, interval):
    since, until = NOW - timedelta(microseconds=window[1]), NOW - timedelta(microseconds=window[0])
    event_filter = EventFilter.model_validate(
        {"occurred": {"since": since.isoformat(), "until": until.isoformat()}, "event": names}
    )
    with transaction.atomic():
        store(events, source="test")
        assert rollups.total(event_filter) == event_filter.apply(Event.objects.all()).count()
        assert queries.count_by_event(event_filter) == queries.count_by_event(
            event_filter, use_rollups=False
        )
        try:
            by_time = queries.count_by_time(event_filter, unit=unit, interval=interval)
        except queries.TooManyBuckets:
            by_time = None
        if by_time is not None:
            assert by_time == queries.count_by_time(
                event_filter, unit=unit, interval=interval, use_rollups=False
            )
            # The feed's histogram: per bucket and name (the rollups group by name as well).
            by_name = {"unit": unit, "interval": interval, "by_name": True}
            assert queries.count_by_time(event_filter, **by_name) == queries.count_by_time(
                event_filter, **by_name, use_rollups=False
            )
        transaction.set_rollback(True)


def test_a_duplicate_id_is_not_counted_twice():
    event = event_data("a.x")

    ingest([event], source="test")
    ingest([event], source="test")

    assert EventCount.objects.filter(width=rollups.MINUTE).get().count == 1
    assert rollups.total(EventFilter()) == 1


def test_pruning_removes_the_rollup_rows_of_what_it_deleted(settings):

    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=1)
    ingest(
        [event_data("a.x", ago=timedelta(days=3)), event_data("a.x", ago=timedelta(hours=1))],
        source="test",
    )

    prune()

    assert rollups.total(EventFilter()) == Event.objects.count() == 1
    assert EventCount.objects.filter(width=rollups.HOUR).get().count == 1


@pytest.mark.parametrize(
    ("unit", "interval"), [("hour", 1), ("hour", 3), ("minute", 90), ("day", 1), ("minute", 7)]
)
def test_count_by_time_over_whole_hours_of_the_rollups_equals_a_scan(unit, interval):
    """A day and a half of events a few minutes apart, counted over a window with ragged ends:
    the middle comes from whole rollup rows grouped by bucket in the database, the ends from
    minute rows and the events (the property test's windows rarely hold whole hours).

    Anchored to a UTC midnight, not to the hour of the run: the 32-hour window then always spans
    three days (it spanned two when the suite ran between 10:37 and 02:37 UTC, and `day` buckets
    found only two with counts)."""
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    start = midnight - timedelta(hours=56)  # 16:00 three days ago: the window's days are 3
    store(
        [
            WireEvent(
                occurred=start + timedelta(minutes=7 * i, seconds=i % 50, microseconds=i),
                event=NAMES[i % 3 if i % 5 else 3],
                resource={"prefect.resource.id": "r"},
                id=uuid.UUID(int=i + 1),
            )
            for i in range(36 * 60 // 7)
        ],
        source="test",
    )
    event_filter = EventFilter.model_validate(
        {
            "occurred": {
                "since": (start + timedelta(minutes=83, seconds=5)).isoformat(),
                "until": (start + timedelta(hours=33, minutes=17, seconds=41)).isoformat(),
            },
            "event": {"exclude_name": ["a.y"]},
        }
    )

    for by_name in (False, True):
        kwargs = {"unit": unit, "interval": interval, "by_name": by_name}
        counted = queries.count_by_time(event_filter, **kwargs)
        assert counted == queries.count_by_time(event_filter, **kwargs, use_rollups=False)
        assert sum(b["count"] for b in counted) == event_filter.apply(Event.objects.all()).count()
        assert sum(1 for b in counted if b["count"]) > 2


def test_the_reach_is_the_latest_hour_from_which_the_days_hours_hold_enough():
    """`rollups.reach`: from the hour of `until` back, within its UTC day, the first hour start
    from which the hour rows count the events asked for; None when the day holds fewer (the
    day before is not counted). An hour after `until` is not counted."""
    day = datetime(2026, 3, 9, tzinfo=UTC)
    times = [day + timedelta(hours=h, minutes=m) for h, m in [(15, 10), (14, 20), (13, 30), (1, 0)]]
    events = [event_data(occurred=at) for at in times for _ in range(10)]
    events += [event_data(occurred=day - timedelta(hours=1)) for _ in range(10)]
    assert ingest(events, source="test").ok
    until = day + timedelta(hours=15, minutes=30)

    assert rollups.reach(until, 10) == day + timedelta(hours=15)
    assert rollups.reach(until, 15) == day + timedelta(hours=14)
    assert rollups.reach(until, 40) == day + timedelta(hours=1)
    assert rollups.reach(until, 41) is None
    assert rollups.reach(day + timedelta(hours=14, minutes=59), 10) == day + timedelta(hours=14)
    # A window that ends on the hour: that hour's events are after it (a test saw 22:00 for a
    # window ending at 23:00, so the first read held one hour's events, not the two asked for).
    assert rollups.reach(day + timedelta(hours=15), 10) == day + timedelta(hours=14)
    assert rollups.reach(day + timedelta(hours=15), 20) == day + timedelta(hours=13)
