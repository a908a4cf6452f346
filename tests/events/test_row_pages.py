"""Pages read from the resource rows (`row_pages.from_rows`, issue 14): a filter of time and
one related or any-resource criterion is answered from `events_eventresource` (order, count)
and only the page's events are read, by primary key; a filter with other criteria besides one
naming few ids is read from that criterion's rows, each of their events checked against the
rest. Its pages must be the in-memory evaluator's, whatever the ties on `occurred`, the
resources an event names twice (primary and related, or in several related rows) and the plan
taken (the rows at once, or after a walk)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events import page_plans, queries, row_pages
from events.filters import EventFilter
from events.ingest import emit, ingest
from events.models import Event
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = {"since": (NOW - timedelta(days=1)).isoformat(), "until": NOW.isoformat()}

FILTERS = {
    "related id": {"related": {"id": ["c.1"]}},
    "related ids": {"related": {"id": ["c.1", "c.2"]}},
    "any_resource id": {"any_resource": {"id": ["c.1"]}},
    "any_resource ids": {"any_resource": {"id": ["c.1", "c.2"]}},
    "related role": {"related": {"role": ["owner"]}},
    "related role and primary": {"related": {"id": ["c.1"], "role": ["", "owner"]}},
    "related resources_in_roles": {"related": {"resources_in_roles": [["c.1", "customer"]]}},
    "related id and labels": {"related": {"id": ["c.1"], "labels": {"tier": ["gold"]}}},
    "any_resource id prefix": {"any_resource": {"id_prefix": ["c."]}},
    "any_resource id in a list": {"any_resource": [{"id": ["c.2"]}]},
}


@pytest.fixture(autouse=True)
def log():
    """120 events in 40 instants (three events each: ties broken by id), naming customers c.1
    and c.2 as primary, related, both, or in two related rows with two roles; every seventh
    event's name is prefect.thing, the others' acme.thing."""
    events = []
    for i in range(120):
        shapes = [
            ("c.1", [related("c.1", "customer", tier="gold")]),  # primary and related
            ("o.1", [related("c.1", "customer"), related("c.1", "owner")]),  # two related rows
            ("o.2", [related("c.2", "customer", tier="gold"), related("c.2", "customer")]),
            ("c.2", []),  # primary only
            ("o.3", [related("x.1", "owner")]),
        ]
        resource, rel = shapes[i % 5]
        events.append(
            event_data(
                "prefect.thing" if i % 7 == 0 else "acme.thing",
                resource,
                related=rel,
                occurred=NOW - timedelta(minutes=i // 3),
                id=uuid.UUID(int=(i * 7919) % 120 + 1),
            )
        )
    assert ingest(events, source="test").ok


def _pages(event_filter: EventFilter, limit: int) -> tuple[list[uuid.UUID], int]:
    page = queries.first_page(event_filter, limit=limit)
    seen, total = [e.id for e in page.events], page.total
    while page.next_token:
        page = queries.next_page(page.next_token)
        seen += [e.id for e in page.events]
    return seen, total


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize(
    "plan", ["rows at once", "rows past RARE_CAP", "rows after a walk", "walk"]
)
@pytest.mark.parametrize("criterion", FILTERS)
def test_pages_from_the_resource_rows_are_the_in_memory_pages(criterion, plan, order, monkeypatch):
    if plan != "rows at once":  # more rows than RARE_CAP: the rows alone answer, up to ROWS_CAP
        monkeypatch.setattr(page_plans, "RARE_CAP", 10)  # above the page
    if plan in (
        "rows after a walk",
        "walk",
    ):  # past ROWS_CAP: walk first (for nothing, or to a page)
        monkeypatch.setattr(page_plans, "ROWS_CAP", 10)
        monkeypatch.setattr(page_plans, "WALK_BUDGET", 0 if plan == "rows after a walk" else 5)
    event_filter = EventFilter.model_validate(
        {**FILTERS[criterion], "occurred": DAY, "order": order}
    )
    rows_first = event_filter.rows_first()
    assert rows_first is not None and rows_first[2] is None  # the rows alone answer it

    seen, total = _pages(event_filter, limit=7)

    expected = [e.id for e in event_filter.evaluate(list(Event.objects.all()))]
    assert expected and seen == expected
    if plan in ("rows at once", "rows past RARE_CAP"):
        assert total == len(expected)


WITH_OTHERS = {
    "related id, names": {"related": {"id": ["c.1"]}, "event": {"exclude_prefix": ["prefect."]}},
    "related id, any-resource labels": {
        "related": {"id": ["c.1"]},
        "any_resource": {"labels": {"tier": ["gold"]}},
    },
    "issue 14's combination": {
        "event": {"exclude_prefix": ["prefect."]},
        "any_resource": {"labels": {"tier": ["gold"]}},
        "related": {"id": ["c.1"]},
    },
    "any_resource id, resource labels": {
        "any_resource": {"id": ["c.1"]},
        "resource": {"labels": {"tier": ["gold"]}},
    },
    "related id, any_resource id": {"related": {"id": ["c.1"]}, "any_resource": {"id": ["c.2"]}},
    "related id, related role": {"related": [{"role": ["owner"]}, {"id": ["c.1"]}]},
    "related resources_in_roles, resource id": {
        "related": {"resources_in_roles": [["c.1", "customer"]]},
        "resource": {"id": ["o.1", "c.1"]},
    },
    "any_resource ids, text": {"any_resource": {"id": ["c.1", "c.2"]}, "text": {"query": "gold"}},
    "related id and primary, names": {
        "related": {"id": ["c.1"], "role": ["", "customer"]},
        "event": {"name": ["acme.thing"]},
    },
    "nothing matches": {"related": {"id": ["c.1"]}, "any_resource": {"id": ["x.1"]}},
}


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize("plan", ["rows at once", "rows by days", "rows look many"])
@pytest.mark.parametrize("criteria", WITH_OTHERS)
def test_pages_read_from_one_criterions_rows_then_checked_are_the_in_memory_pages(
    criteria, plan, order, monkeypatch
):
    if plan != "rows at once":  # more rows than RARE_CAP: a few days at a time
        monkeypatch.setattr(page_plans, "RARE_CAP", 10)
    if plan == "rows look many":  # more than ROWS_CAP: the walk or the planner instead
        monkeypatch.setattr(page_plans, "ROWS_CAP", 10)
    event_filter = EventFilter.model_validate(
        {**WITH_OTHERS[criteria], "occurred": DAY, "order": order}
    )
    rows_first = event_filter.rows_first()
    assert rows_first is not None and rows_first[2] is not None
    read = []
    monkeypatch.setattr(row_pages, "others_sql", _recorded(row_pages.others_sql, read))

    seen, total = _pages(event_filter, limit=7)

    expected = [e.id for e in event_filter.evaluate(list(Event.objects.all()))]
    assert seen == expected
    assert bool(read) == (plan != "rows look many")
    if plan == "rows at once":
        assert total == len(expected)


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize("named", ["few", "many"])
@pytest.mark.parametrize(
    "criterion", [{"related": {"id": ["c.1"]}}, {"any_resource": {"id": ["c.1", "c.2"]}}]
)
def test_excluded_names_are_left_out_of_the_rows_when_their_events_are_few(
    criterion, named, order, monkeypatch
):
    """Event names excluded beside the rows' criterion (a reader who is not an admin has the
    audit trail excluded, `roles.readable`): the events of those names in the window are left
    out of the rows when they are few, instead of each row's event being checked; when they are
    many, each row's event is checked (`row_pages.others_sql`). The pages are the same."""
    if named == "many":  # the window's prefect.thing events (18) look many
        monkeypatch.setattr(page_plans, "NAMED_CAP", 10)
    event_filter = EventFilter.model_validate(
        {**criterion, "event": {"exclude_name": ["prefect.thing"]}, "occurred": DAY, "order": order}
    )
    read = []
    monkeypatch.setattr(row_pages, "others_sql", _recorded(row_pages.others_sql, read))

    seen, total = _pages(event_filter, limit=7)

    expected = [e.id for e in event_filter.evaluate(list(Event.objects.all()))]
    assert expected and seen == expected and total == len(expected)
    assert len(expected) < len(
        EventFilter.model_validate({**criterion, "occurred": DAY}).evaluate(
            list(Event.objects.all())
        )
    )
    assert bool(read) == (named == "many")


def test_a_reader_who_is_not_an_admin_never_sees_the_audit_trail_in_a_page_from_the_rows(
    django_user_model,
):
    """An audit event naming the customer (as any event may) is left out of a viewer's related
    page and its count, read from the rows, and kept in an admin's."""
    from events.accounts.roles import readable
    from events.audit import AUDIT_EVENTS

    audit_name = sorted(AUDIT_EVENTS)[0]
    emit(
        audit_name,
        resource={"prefect.resource.id": "eventsite.user.1"},
        related=[related("c.1", "customer")],
        occurred=NOW - timedelta(seconds=30),
    )
    viewer = django_user_model.objects.create_user("viewer")
    admin = django_user_model.objects.create_superuser("boss")
    event_filter = EventFilter.model_validate({"related": {"id": ["c.1"]}, "occurred": DAY})

    as_viewer = queries.first_page(readable(event_filter, viewer), limit=50)
    as_admin = queries.first_page(readable(event_filter, admin), limit=50)

    assert audit_name not in {e.event for e in as_viewer.events}
    assert audit_name in {e.event for e in as_admin.events}
    assert as_admin.total == as_viewer.total + 1 and not as_viewer.total_is_estimate


def _recorded(function, calls: list):
    def recorded(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)

    return recorded


@pytest.mark.parametrize(
    "criteria",
    [
        {"related": {"labels": {"tier": ["gold"]}}},
        {"related": {"role": ["owner"]}, "event": {"name": ["acme.thing"]}},
        {"any_resource": {"id_prefix": ["c."]}, "resource": {"labels": {"tier": ["gold"]}}},
        {"related": {"id": ["c.1"]}, "resource": {"distinct": True}},
    ],
)
def test_criteria_without_ids_beside_others_are_not_read_from_the_resource_rows(criteria):
    event_filter = EventFilter.model_validate({**criteria, "occurred": DAY})
    assert event_filter.rows_first() is None

    seen, _ = _pages(event_filter, limit=7)

    assert seen == [e.id for e in event_filter.evaluate(list(Event.objects.all()))]


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize(
    "labels",
    [
        {"prefect.resource.id": ["o.*", "c.2"]},
        {"prefect.resource.id": "!c.1"},
        {"prefect.resource.id": "o.*", "tier": "!x"},  # no primary resource has a tier
    ],
)
def test_pages_of_resource_labels_walked_over_the_primary_rows_are_the_in_memory_pages(
    labels, order
):
    """Resource labels alone (SQLite walks the primary resource rows, `row_pages.walk_rows`):
    the ties on `occurred`, and the resources also named as related, change nothing."""
    event_filter = EventFilter.model_validate(
        {"resource": {"labels": labels}, "occurred": DAY, "order": order}
    )
    assert event_filter.labels_alone() is not None

    seen, _ = _pages(event_filter, limit=7)

    assert seen == [e.id for e in event_filter.evaluate(list(Event.objects.all()))]


PLANS = {
    # (a full scan, the rows' index, the events' primary key)
    "sqlite": (
        r"\bSCAN (events_event|events_eventresource)\b",
        "eventresource_id_occurred",
        r"USING (INDEX sqlite_autoindex|PRIMARY KEY)",
    ),
    "postgresql": (r"Seq Scan on events_event", "eventresource_id_occurred", r"_pkey"),
}


def test_a_page_from_the_rows_reads_only_its_own_events_by_primary_key():
    """No statement reads events_event but the page's, by primary key; the rows are read from
    their (resource_id, occurred) index, never scanned (PostgreSQL: seq scans priced out)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE events_event")
            cursor.execute("ANALYZE events_eventresource")
            cursor.execute("SET LOCAL enable_seqscan = off")
    event_filter = EventFilter.model_validate({"related": {"id": ["c.1"]}, "occurred": DAY})

    with CaptureQueriesContext(connection) as captured:
        page = queries.first_page(event_filter, limit=5)

    assert len(page.events) == 5 and page.total == 48 and not page.total_is_estimate
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    of_events = [sql for sql in reads if re.search(r'FROM "events_event"', sql)]
    assert len(of_events) == 1, reads
    assert re.search(r'WHERE "events_event"\."id" IN \(', of_events[0]), of_events[0]
    scan, rows_index, primary_key = PLANS[connection.vendor]
    with connection.cursor() as cursor:
        for sql in reads:
            cursor.execute(
                "EXPLAIN " + ("QUERY PLAN " if connection.vendor == "sqlite" else "") + sql
            )
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert not re.search(scan, plan), plan
            assert re.search(primary_key if sql in of_events else rows_index, plan), plan


@pytest.mark.parametrize("order", ["DESC", "ASC"])
def test_many_candidate_rows_checked_a_few_days_at_a_time_give_the_page_and_an_estimate(
    order, monkeypatch
):
    """A criterion naming more candidate rows than RARE_CAP beside others (a customer's events
    at 10M, checked against a name exclusion and labels) is read a few UTC days at a time
    (`_from_rows_by_days`): the pages are the evaluator's, and the first page's total is exact
    when every day was read, else an estimate flagged as one, from the share of the candidates
    read that matched."""
    monkeypatch.setattr(page_plans, "RARE_CAP", 10)
    midnight = NOW.replace(hour=0, minute=0, second=0)
    days = []
    for i in range(90):  # 9 days, 10 events a day, every third excluded by name
        days.append(
            event_data(
                "prefect.thing" if i % 3 == 0 else "acme.thing",
                f"o.{i}",
                related=[related("d.1", "customer")],
                occurred=midnight - timedelta(days=i // 10, hours=1 + i % 10),
            )
        )
    assert ingest(days, source="test").ok
    window = {"since": (midnight - timedelta(days=10)).isoformat(), "until": NOW.isoformat()}
    event_filter = EventFilter.model_validate(
        {
            "related": {"id": ["d.1"]},
            "event": {"exclude_prefix": ["prefect."]},
            "occurred": window,
            "order": order,
        }
    )
    expected = [e.id for e in event_filter.evaluate(list(Event.objects.all()))]
    assert len(expected) == 60

    seen, total = _pages(event_filter, limit=7)
    first = queries.first_page(event_filter, limit=7)
    whole = queries.first_page(event_filter, limit=100)

    assert seen == expected
    # 7 matches fill the page from the first day or two of 9: the rest is estimated from the
    # share matched, 2 in 3 of the candidates (an exact share here: 60).
    assert first.total_is_estimate and 50 <= first.total <= 70, first.total
    assert (whole.total, whole.total_is_estimate) == (60, False)
    assert [e.id for e in whole.events] == expected
    # A page that every match fills, from slices that held every candidate: exact too.
    exact = queries.first_page(event_filter, limit=60)
    assert (exact.total, exact.total_is_estimate) == (60, False)


def test_reads_by_day_slices_run_without_parallel_workers_and_restore_the_setting():
    """PostgreSQL: the statements of a read by day slices start no parallel worker (each finds
    few rows in a partition's index; a worker cost more than it saved), and the setting is the
    connection's again after. SQLite has no such workers: the block only runs its statements."""

    def workers() -> str | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            return cursor.fetchone()[0]

    before = workers()
    with row_pages.serial():
        inside = workers()
        assert Event.objects.count() == 120
    assert workers() == before
    if connection.vendor == "postgresql":
        assert inside == "0" and before != "0"


@pytest.mark.django_db(transaction=True)
def test_reads_by_day_slices_outside_a_transaction_leave_no_setting_behind():
    """Outside a transaction, `row_pages.serial` opens one, and the setting ends with it: one
    statement sets it, none restores it, and the connection's statements after are as before."""

    def workers() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            return cursor.fetchone()[0]

    if connection.vendor != "postgresql":
        with CaptureQueriesContext(connection) as captured, row_pages.serial():
            assert Event.objects.count() == 120
        assert len(captured) == 1  # the block's statement alone
        return
    before = workers()
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as captured, row_pages.serial():
        assert workers() == "0"
    assert workers() == before != "0"
    settings = [q["sql"] for q in captured.captured_queries if "set_config" in q["sql"]]
    assert len(settings) == 1, captured.captured_queries


@pytest.mark.parametrize("descending", [True, False])
def test_day_slices_begin_at_the_oldest_stored_event_read_only_when_needed(descending):
    """`row_pages.stored_days`: the `day_slices` from the oldest stored event on. Newest first,
    that event is read only past the first slice (a page the newest day fills costs no
    statement for it); oldest first, before the first slice, which must start there."""
    since, until = NOW - timedelta(days=180), NOW
    oldest = row_pages.stored_since(since)
    assert oldest > since  # 40 minutes of events
    expected = list(row_pages.day_slices(oldest, until, descending))

    with CaptureQueriesContext(connection) as captured:
        slices = row_pages.stored_days(since, until, descending)
        first = next(slices)
    assert len(captured) == (0 if descending else 1)
    got = [first, *slices]

    assert len(got) == len(expected) and got[1:] == expected[1:]
    # Newest first, the first slice is the whole newest day (it may begin before the oldest).
    assert got[0][1] == expected[0][1] and got[0][0] <= expected[0][0]
    assert all(hi >= oldest for _, hi in got)


TICK = timedelta(microseconds=1)
DAY_START = datetime(2026, 3, 9, tzinfo=UTC)


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize(
    ("reach", "cut"),
    [
        (DAY_START + timedelta(hours=13), True),  # within the newest day: cut there
        (DAY_START, False),  # the day's start: the day is one slice anyway
        (DAY_START - timedelta(hours=2), False),  # before it: the day whole
        (DAY_START + timedelta(hours=20), False),  # after the window's end (an older window)
        (None, False),
    ],
)
def test_day_slices_cut_the_newest_day_at_the_reach_and_cover_the_window_once(
    reach, cut, descending
):
    """Pure: with or without a reach, the slices cover [since, until] without a gap or an
    overlap, each within one UTC day; newest first, a reach within the newest day makes
    [reach, until] the first slice (oldest first reads ignore it)."""
    since, until = DAY_START - timedelta(days=20, hours=5), DAY_START + timedelta(hours=18)

    slices = list(row_pages.day_slices(since, until, descending, reach=reach))

    ordered = sorted(slices)
    assert ordered[0][0] == since and ordered[-1][1] == until
    assert all(hi + TICK == lo for (_, hi), (lo, _) in zip(ordered, ordered[1:], strict=False))
    assert all(lo <= hi for lo, hi in slices)
    if descending and cut:
        assert slices[:2] == [(reach, until), (DAY_START, reach - TICK)]
    else:
        assert slices == list(row_pages.day_slices(since, until, descending))
        assert slices[0] == (
            (DAY_START, until) if descending else (since, DAY_START - timedelta(days=20) - TICK)
        )


@pytest.mark.parametrize("order", ["DESC", "ASC"])
def test_a_read_by_day_slices_starts_no_earlier_than_the_oldest_stored_event(order, monkeypatch):
    """A 180-day window over 40 minutes of events: the slices begin at the oldest stored event
    (`row_pages.stored_since`), so an oldest-first read does not go through months of empty
    days first, and a newest-first one does not end with them; the pages are the evaluator's."""
    monkeypatch.setattr(page_plans, "RARE_CAP", 10)
    read = []
    monkeypatch.setattr(row_pages, "rows_page", _recorded(row_pages.rows_page, read))
    window = {"since": (NOW - timedelta(days=180)).isoformat(), "until": NOW.isoformat()}
    event_filter = EventFilter.model_validate(
        {**WITH_OTHERS["issue 14's combination"], "occurred": window, "order": order}
    )

    seen, _ = _pages(event_filter, limit=100)

    assert seen == [e.id for e in event_filter.evaluate(list(Event.objects.all()))]
    assert 1 <= len(read) <= 2, read  # the day of the oldest event, and maybe the next


def test_a_pages_events_are_read_by_id_in_order_leaving_out_one_removed_meanwhile():
    """Every plan reads its page's events by id last (`row_pages.by_ids`): an id whose event
    retention removed after the ids were read is left out, not a KeyError (a 500)."""
    stored = list(Event.objects.order_by("id").values_list("id", flat=True)[:3])
    gone = uuid.uuid4()

    events = row_pages.by_ids([stored[2], gone, stored[0], stored[1]])

    assert [e.id for e in events] == [stored[2], stored[0], stored[1]]
