"""Pages read from the resource rows, and what every page plan shares (issue 14).

Part of the read path, split from `events.page_plans` (which chooses the plan) for length. A
filter whose related or any-resource criterion names ids (`EventFilter.rows_first`) is read
from those rows in `events_eventresource`: the matches' (occurred, event id) in order and their
count from the `(resource_id, occurred)` index, the filter's other criteria checked on the rows'
events by primary key, then only the page's events (`from_rows`; a few days at a time past
`page_plans.RARE_CAP` candidates, `from_rows_by_days`). Resource labels alone on SQLite walk
the primary rows (`walk_rows`). Shared: the keyset bound (`keyset_q`), what a read found
(`Found`) and the day slices a read goes by (`day_slices`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.db.models import DateTimeField, F, Func, Q, QuerySet

from events.filters import EventFilter
from events.models import Event, EventResource
from events.partitions import day_bounds
from events.row_values import uuid_value

# Text on PostgreSQL past the walk, and rare labels, read the newest day, then the day before,
# then the 2 before those, the 4 before those and so on, then the rest of the window
# (`page_plans._newest_by_days`, `page_plans._read_narrowed`): a window of 180 days is read in
# at most 8 statements.
DAY_SLICES = (1, 2, 4, 8, 16, 32)


# A page whose related or any-resource ids alone answer it is read from their resource rows, and
# counted, when they are at most this many (`rows_counted`, `from_rows`): a covering read of
# the (resource_id, occurred) index, no event read but the page's. A customer's rows at 10M
# (10,208) went to the planner past RARE_CAP: 137 ms.
ROWS_CAP = 20_000


def keyset_q(
    occurred: datetime, event_id: uuid.UUID, descending: bool, *, id_field: str = "id"
) -> Q:
    """Rows strictly after (occurred, id) in the given order (`id_field="event_id"`: resource
    rows, by their event's).

    Written as `occurred <= x AND (occurred < x OR id < y)` (not a bare OR of two ranges) so
    that both databases bound the index scan on `occurred` instead of walking every row.
    """
    before, after = {f"{id_field}__lt": event_id}, {f"{id_field}__gt": event_id}
    if descending:
        return Q(occurred__lte=occurred) & (Q(occurred__lt=occurred) | Q(**before))
    return Q(occurred__gte=occurred) & (Q(occurred__gt=occurred) | Q(**after))


@dataclass
class Found:
    """A page of matches, and what reading it told about the rest."""

    events: list[Event]
    rare: bool | None = None  # True: read from the criteria's index (the walk found too few)
    count: int | None = None  # every match after the bound, when the rare read counted them
    about: int | None = None  # else an estimate of them, when the read gave one


def rows_counted(event_filter: EventFilter, resource_ids: list[str]) -> int:
    """The rows of `resource_ids` in the window, counted up to ROWS_CAP + 1 (ROWS_CAP + 1
    without ids). Read from the (resource_id, occurred) index alone (a covering read), they
    bound the matches from above: when few, a page of them is read from the rows at once
    instead of after a walk that would find too few (SQLite) or of the planner's read of every
    match's event (PostgreSQL)."""
    if not resource_ids:
        return ROWS_CAP + 1
    window = event_filter.occurred
    return rows_in(resource_ids, window.since, window.until, most=ROWS_CAP + 1)


def rows_in(resource_ids: list[str], since: datetime, until: datetime, *, most: int) -> int:
    """The resource rows of `resource_ids` in [since, until], counted up to `most`."""
    rows = EventResource.objects.filter(
        resource_id__in=resource_ids, occurred__gte=since, occurred__lte=until
    )
    return rows.values("resource_id")[:most].count()


def from_rows(
    event_filter: EventFilter,
    row_q: Q,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    *,
    others: EventFilter | None = None,
) -> Found:
    """A page of a filter read from the resource rows of one of its criteria
    (`EventFilter.rows_first`), and the count of its matches: both from the rows matching
    `row_q` in the window, then only the page's events, by primary key. The rows'
    `(resource_id, occurred)` index finds them and they hold their event's `occurred`, so no
    event is read to sort the matches. With `others` (the filter's other criteria), each of the
    rows' events is checked against them in the same statement (`others_sql`).

    One statement: the matches' distinct (occurred, event id) in order, up to ROWS_CAP + 1 (an
    event with several such rows, e.g. its primary resource also related, once; with `others`
    every candidate, which `rows_counted` found at most RARE_CAP), then the first `limit` of
    them with how many there were, so that only the page's ids reach Python.
    """
    window = event_filter.occurred
    ids, count = rows_page(event_filter, row_q, after, limit, others, window.since, window.until)
    return Found(by_ids(ids), rare=True, count=count if count <= ROWS_CAP else None)


def from_rows_by_days(
    event_filter: EventFilter,
    row_q: Q,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    others: EventFilter,
    resource_ids: list[str],
    rows: int,
) -> Found:
    """`from_rows` with `others` for more than RARE_CAP candidate rows (a customer's at 10M,
    10k in 7 days): the candidates read, and their events checked, a few days at a time
    (`day_slices`) until the page is full, as `page_plans._read_narrowed` reads. Each
    candidate's event is read by primary key, so checking every candidate of the window is what
    cost (the planner's read of them all: 199 ms at 10M). The count is exact when the slices
    read held every candidate; else an estimate (`Found.about`): the matches among the
    candidates read, scaled to the window's `rows` (`rows_counted`)."""
    ids: list[uuid.UUID] = []
    matched, full = 0, False
    window = event_filter.occurred
    with serial():
        for lo, hi in stored_days(window.since, window.until, event_filter.descending):
            page, count = rows_page(event_filter, row_q, after, limit - len(ids), others, lo, hi)
            ids, matched = ids + page, matched + count
            if full := len(ids) >= limit:
                break
    if full:  # the candidate rows of the slices read (at most `rows`, so counted exactly)
        if event_filter.descending:
            read = rows_in(resource_ids, lo, window.until, most=rows)
        else:
            read = rows_in(resource_ids, window.since, hi, most=rows)
        if read < rows:
            return Found(by_ids(ids), about=max(round(matched * rows / max(read, 1)), matched))
    # Every slice read, or the slices read held every candidate: each counted all its matches.
    return Found(by_ids(ids), rare=True, count=matched)


def rows_page(
    event_filter: EventFilter,
    row_q: Q,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    others: EventFilter | None,
    since: datetime,
    until: datetime,
) -> tuple[list[uuid.UUID], int]:
    """The ids of the first `limit` matches of `from_rows`' statement over [since, until], and
    how many matches there were (counted up to ROWS_CAP + 1 without `others`)."""
    rows = EventResource.objects.filter(row_q, occurred__gte=since, occurred__lte=until)
    if after:
        rows = rows.filter(keyset_q(*after, event_filter.descending, id_field="event_id"))
    # `+occurred`: sorted after the read, so that SQLite does not walk the rows' occurred index.
    occurred = F("occurred")
    if connection.vendor == "sqlite":
        occurred = Func(occurred, template="+%(expressions)s", output_field=DateTimeField())
    direction = "desc" if event_filter.descending else "asc"
    ordering = [getattr(occurred, direction)(), getattr(F("event_id"), direction)()]
    matches = rows.order_by(*ordering).values_list("occurred", "event_id").distinct()
    try:
        if others is None:
            sql, params = matches[: ROWS_CAP + 1].query.sql_with_params()
        else:
            sql, params = others_sql(matches.order_by(), others)
    except EmptyResultSet:
        return [], 0
    order = "DESC" if event_filter.descending else "ASC"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.event_id, COUNT(*) OVER () FROM ({sql}) s "
            f"ORDER BY s.occurred {order}, s.event_id {order} LIMIT %s",
            [*params, limit],
        )
        page = cursor.fetchall()
    return [uuid_value(event_id) for event_id, _ in page], page[0][1] if page else 0


def by_ids(ids: list[uuid.UUID]) -> list[Event]:
    """The events of `ids`, in that order (not one that retention removed meanwhile)."""
    by_id = Event.objects.in_bulk(ids)
    return [by_id[i] for i in ids if i in by_id]


def others_sql(candidates, others: EventFilter) -> tuple[str, list]:
    """The candidates' (event id, occurred) whose events match `others` (the filter's other
    criteria), as SQL: the candidate rows first, each event then looked up by primary key (and
    on PostgreSQL its day's partition) and tested, as a walk tests it (`semijoin="exists"`).
    `CROSS JOIN` keeps SQLite from choosing the other order; PostgreSQL plans the join itself,
    from its estimate of the candidates' rows (few: `rows_counted`)."""
    events = others.apply(Event.objects.all(), semijoin="exists").values_list("id", "occurred")
    rows_sql, rows_params = candidates.query.sql_with_params()
    events_sql, events_params = events.query.sql_with_params()
    same = "e.id = m.event_id"
    if connection.vendor == "postgresql":
        same += " AND e.occurred = m.occurred"
    sql = (
        f"SELECT e.id AS event_id, e.occurred FROM ({rows_sql}) m "
        f"CROSS JOIN ({events_sql}) e WHERE {same}"
    )
    return sql, [*rows_params, *events_params]


def walk_rows(
    event_filter: EventFilter, row_q: Q, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Event]:
    """Resource labels alone on SQLite (`EventFilter.labels_alone`): a page walked newest first
    over the primary resource rows instead of the events, its events then read by primary key
    in the same statement and sorted here (cheaper than SQLite's sort of whole event rows).

    A primary resource row holds the resource's labels but not the payload, related resources
    and search text an event row does, and their partial covering index
    (`eventresource_primary_labels`, migrations 0013 and 0014) holds the walk's every column,
    so a walk past many events reads far fewer pages: two label keys (0.4 % of 1M events, 13k
    walked) 15.7 → 8.3 ms of CPU.
    """
    page = rows_walked(event_filter, row_q, after, limit)
    return sorted(page, key=attrgetter("occurred", "id"), reverse=event_filter.descending)


def rows_walked(
    event_filter: EventFilter, row_q: Q, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> QuerySet[Event]:
    """The events of `walk_rows`' page, unordered."""
    window = event_filter.occurred
    # `labels IS NOT NULL` (always true) is the condition of the partial index (migration 0014)
    # that no other read states, so that SQLite uses it here and nowhere else.
    rows = EventResource.objects.filter(
        row_q, labels__isnull=False, occurred__gte=window.since, occurred__lte=window.until
    )
    if after:
        rows = rows.filter(keyset_q(*after, event_filter.descending, id_field="event_id"))
    direction = "desc" if event_filter.descending else "asc"
    ordering = [getattr(F("occurred"), direction)(), getattr(F("event_id"), direction)()]
    return Event.objects.filter(id__in=rows.order_by(*ordering).values("event_id")[:limit])


def stored_since(since: datetime) -> datetime:
    """`since`, or the oldest stored event's `occurred` at or after it: a read by day slices
    need not look at the days before the log begins. A 180-day window over 7 days of events
    read 4 statements of nothing newest first (~1 ms each at 10M), and an oldest-first read
    would start with 6 of them. Read from the occurred index, per read (an event may arrive with
    an old `occurred` at any time)."""
    rows = Event.objects.filter(occurred__gte=since).order_by("occurred")
    oldest = rows.values_list("occurred", flat=True).first()
    return max(since, oldest) if oldest else since


def day_slices(
    since: datetime, until: datetime, descending: bool, *, reach: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """[since, until] cut at UTC midnights, from the end the filter's order starts at: the day
    of that end, then DAY_SLICES days at a time, then the rest (inclusive bounds).

    Newest first, a `reach` later than the newest day's start (and `since`), and not later than
    `until`, cuts that day there: [reach, until] first, where the matches of a page are likely
    (`rollups.reach`), then the rest of the day. The day partition's index is then read twice
    when that was not enough, and its table only for the candidates of the times read."""
    tick, widths = timedelta(microseconds=1), iter(DAY_SLICES)
    if descending:
        edge: datetime | None = day_bounds(until.date())[0]
        if reach is not None and max(since, edge) < reach <= until:
            yield reach, until
            until = reach - tick
        while True:
            lo = since if edge is None else max(since, edge)
            yield lo, until
            if lo <= since:
                return
            until, days = lo - tick, next(widths, None)
            edge = None if days is None else edge - timedelta(days=days)
    edge = day_bounds(since.date())[1]
    while True:
        hi = until if edge is None else min(until, edge - tick)
        yield since, hi
        if hi >= until:
            return
        since, days = hi + tick, next(widths, None)
        edge = None if days is None else edge + timedelta(days=days)


def stored_days(
    since: datetime, until: datetime, descending: bool, *, reach: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """`day_slices` of [since, until] (newest first, cut at `reach`) that begin no earlier than
    the oldest stored event (`stored_since`). Newest first, that event is read only once the
    first slice did not fill the page (most pages of a read by day slices are filled from the
    newest day); oldest first, before the first slice."""
    if not descending:
        yield from day_slices(stored_since(since), until, descending)
        return
    oldest = None
    for lo, hi in day_slices(since, until, descending, reach=reach):
        if oldest is not None:
            if hi < oldest:
                return
            lo = max(lo, oldest)
        yield lo, hi
        oldest = stored_since(since) if oldest is None else oldest
        if lo <= oldest:
            return


@contextmanager
def local_setting(name: str, value: str, *, restore: bool = True) -> Iterator[None]:
    """PostgreSQL's setting `name` at `value` for the block's statements, then as it was
    (`set_config(..., true)`: local to the transaction the caller is in). Nothing on SQLite.
    `restore=False` when the transaction ends with the block (its end undoes the setting).

    Restored only when the block ends well: after an error (a statement cut off by
    `events.timebox`) the transaction is aborted, a statement would fail too, and the rollback
    that must follow undoes the setting anyway."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        previous = cursor.fetchone()[0]
    yield
    if restore:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, %s, true)", [name, previous])


@contextmanager
def serial() -> Iterator[None]:
    """The block's statements without parallel workers (PostgreSQL; in a transaction, the
    setting restored after). A read by day slices finds few rows in a partition's index, and
    starting a worker for each statement cost more than it saved: a related label value in no
    event at 10M, one day's statement, 12-15 ms with a worker and 4.5-5.3 ms without.

    Outside a transaction the block gets its own, and the setting ends with it: no statement
    restores it (one round trip fewer, of the 4 this adds to a read)."""
    if connection.vendor != "postgresql":
        yield
        return
    restore = connection.in_atomic_block  # else the transaction opened here ends the setting
    setting = local_setting("max_parallel_workers_per_gather", "0", restore=restore)
    with transaction.atomic(), setting:
        yield
