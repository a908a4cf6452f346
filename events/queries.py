"""Reading the event log: every reader (pages, API, sockets, engine, explain) goes through here.

- `matching`, `first_page` / `next_page`: the events an `EventFilter` selects, in keyset pages;
- `count_by_*`: aggregations, from the rollups when the filter allows (count-by/resource in
  `events.resource_counts`, split for length);
- `backfill_page`, `received_since`: what live sockets catch up on;
- `read_after`, `ids_behind`, …: the automation engine's reads in (received, id) order;
- `event`, `followers`, `same_resource`: one event and its neighbours, for the detail page.

Resource pages, suggestions, the detail page's story and export read through
`events.page_queries`, the other half of the read path.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from django.core import signing
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Count,
    Max,
    Min,
    Q,
    QuerySet,
)
from django.utils import timezone

from events import rollups, schema, totals
from events.filter_sql import startswith_q
from events.filters import EventFilter
from events.models import Event
from events.page_plans import keyset_q, newest
from events.row_values import aware, datetime_value, utc_text, uuid_value

PAGE_TOKEN_SALT = "events.page-token"


class InvalidPageToken(ValueError):
    pass


@dataclass
class Page:
    events: list[Event]
    total: int
    next_token: str | None
    # The total is an estimate when counting exactly would have been slow (`events.totals`).
    total_is_estimate: bool = False


def matching(event_filter: EventFilter) -> QuerySet[Event]:
    """The stored events `event_filter` selects (unordered)."""
    return event_filter.apply(Event.objects.all())


def first_page(
    event_filter: EventFilter, *, limit: int, total: int | None = None, estimate: bool = False
) -> Page:
    """The first page; pass `total` (and whether it is an `estimate`) when the caller already
    knows it (the feed's histogram)."""
    found = newest(event_filter, None, limit)
    events = found.events
    if total is None and found.count is not None:
        total = found.count  # the rare read counted every match
    elif total is None and found.about is not None:
        total, estimate = found.about, True  # it estimated them from what it read
    if total is None:
        total, estimate = totals.total_of(event_filter, events=events, limit=limit, rare=found.rare)
    return _page(event_filter, events, limit=limit, total=total, offset=0, estimate=estimate)


def next_page(token: str) -> Page:
    """The page after the one that issued `token` (opaque, signed; 403 material when bad)."""
    try:
        state = signing.loads(token, salt=PAGE_TOKEN_SALT)
        event_filter = EventFilter.model_validate(state["filter"])
        occurred = datetime.fromisoformat(state["after"][0])
        after_id = uuid.UUID(state["after"][1])
        limit, total, offset = int(state["limit"]), int(state["total"]), int(state["offset"])
        estimate = bool(state.get("estimate", False))
    except (signing.BadSignature, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidPageToken("Invalid page token") from exc
    events = newest(event_filter, (occurred, after_id), limit).events
    return _page(event_filter, events, limit=limit, total=total, offset=offset, estimate=estimate)


def _page(
    event_filter: EventFilter,
    events: list[Event],
    *,
    limit: int,
    total: int,
    offset: int,
    estimate: bool,
) -> Page:
    delivered = offset + len(events)
    token = None
    if events and len(events) == limit and (estimate or delivered < total):
        last = events[-1]
        token = signing.dumps(
            {
                "filter": event_filter.to_json(),
                "after": [last.occurred.isoformat(), last.id.hex],
                "limit": limit,
                "total": max(total, delivered),
                "offset": delivered,
                "estimate": estimate,
            },
            salt=PAGE_TOKEN_SALT,
            compress=True,
        )
    return Page(events=events, total=total, next_token=token, total_is_estimate=estimate)


# --- counting ------------------------------------------------------------------------------------

TimeUnit = Literal["week", "day", "hour", "minute", "second"]
UNIT_SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
PIVOT = datetime(2024, 4, 1, tzinfo=UTC)
MAX_BUCKETS = 1000


class TooManyBuckets(ValueError):
    pass


def count_by_event(event_filter: EventFilter, *, use_rollups: bool = True) -> list[dict]:
    if use_rollups and rollups.answerable(event_filter):
        end = event_filter.occurred.until + timedelta(microseconds=1)
        tallies = rollups.tally_by_event(event_filter, event_filter.occurred.since, end)
        rows = sorted(tallies.items(), key=lambda item: (-item[1].count, item[0]))
        return [
            count_row(value=name, label=name, count=t.count, start=t.first, end=t.last)
            for name, t in rows
        ]
    rows = (
        event_filter.apply(Event.objects.all())
        .values("event")
        .annotate(count=Count("id"), start=Min("occurred"), end=Max("occurred"))
        .order_by("-count", "event")
    )
    return [
        count_row(
            value=r["event"], label=r["event"], count=r["count"], start=r["start"], end=r["end"]
        )
        for r in rows
    ]


def time_buckets(
    since: datetime, until: datetime, *, unit: TimeUnit, interval: float
) -> tuple[datetime, timedelta, int]:
    """The first bucket start, the bucket width and the number of buckets (aligned to PIVOT)."""
    now = timezone.now()
    try:
        step = timedelta(seconds=UNIT_SECONDS[unit] * interval)
        if until > now:
            # Prefect cuts a future range off at the end of the current unit period.
            period = UNIT_SECONDS[unit]
            until = datetime.fromtimestamp((now.timestamp() // period + 1) * period, tz=UTC)
        first = PIVOT + step * math.floor((since - PIVOT) / step)
        count = max(0, math.ceil((until - first) / step))
        _ = first + step * min(count, MAX_BUCKETS)  # the last bucket's end must be a datetime too
    except OverflowError:
        past = "would reach past the calendar's ends (years 1 to 9999)"
        raise TooManyBuckets(f"The buckets {past}; reduce the interval or range.") from None
    if count > MAX_BUCKETS:
        raise TooManyBuckets(
            f"The given interval would create {count} buckets, which is too many. "
            f"Please increase the interval or reduce the time range (at most {MAX_BUCKETS} buckets)."
        )
    return first, step, count


def count_by_time(
    event_filter: EventFilter,
    *,
    unit: TimeUnit = "day",
    interval: float = 1.0,
    use_rollups: bool = True,
    by_name: bool = False,
) -> list[dict]:
    """Prefect's count-by-time buckets; with `by_name`, each also maps event name → count
    (`"names"`), which the feed's histogram turns into severities."""
    first, step, n = time_buckets(
        event_filter.occurred.since, event_filter.occurred.until, unit=unit, interval=interval
    )
    step_us = round(step / timedelta(microseconds=1))
    names: dict[int, dict[str, int]] = {}
    from_rollups = (
        rollups.counts_by_bucket_and_name(event_filter, first, step, n, by_name=by_name)
        if use_rollups and rollups.answerable(event_filter)
        else None
    )
    if from_rollups is not None:
        names = dict(enumerate(from_rollups))
    elif n:
        bucket = rollups.bucket_index_sql("occurred", first, step_us)
        keys = ("bucket", "event") if by_name else ("bucket",)
        rows = (
            event_filter.apply(Event.objects.all())
            .annotate(bucket=bucket)
            .values(*keys)
            .annotate(count=Count("id"))
            .order_by()
        )
        for r in rows:
            names.setdefault(int(r["bucket"]), {})[r.get("event", "")] = r["count"]
    out = []
    for i in range(n):
        start = first + step * i
        end = start + step - timedelta(microseconds=1)
        bucket_names = names.get(i, {})
        row = {
            "value": str(i),
            "label": start.isoformat(),
            "count": sum(bucket_names.values()),
            "start_time": _z(start),
            "end_time": _z(end),
        }
        if by_name:
            row["names"] = bucket_names
        out.append(row)
    return out


def _z(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def count_row(*, value: str, label: str, count: int, start: datetime, end: datetime) -> dict:
    """One row of a count-by answer (Prefect's `EventCount`)."""
    return {
        "value": value,
        "label": label,
        "count": count,
        "start_time": _z(start),
        "end_time": _z(end),
    }


# --- one event and its neighbours (the detail page) ----------------------------------------------

# An event that follows another is emitted soon after it; Prefect orders causally within 15 min.
FOLLOWERS_BEFORE = timedelta(minutes=15)
FOLLOWERS_AFTER = timedelta(hours=1)


def event(event_id: uuid.UUID) -> Event | None:
    return Event.objects.filter(id=event_id).first()


def followers(leader: Event, *, limit: int = 20) -> list[Event]:
    """Events that name `leader` in `follows`, oldest first."""
    # No index on `follows`: bound the search by time so the occurred index does the work.
    return list(
        Event.objects.filter(
            occurred__gte=leader.occurred - FOLLOWERS_BEFORE,
            occurred__lte=leader.occurred + FOLLOWERS_AFTER,
            follows=leader.id,
        ).order_by("occurred", "id")[:limit]
    )


def same_resource(of: Event, *, limit: int = 10) -> list[Event]:
    """The newest other events of `of`'s primary resource."""
    return list(
        Event.objects.filter(resource_id=of.resource_id)
        .exclude(id=of.id)
        .order_by("-occurred", "-id")[:limit]
    )


def any_named(names: list[str] | tuple[str, ...], *, exclude: bool = False) -> bool:
    """Whether any stored event has one of `names` (or, with `exclude`, any other name)."""
    rows = (
        Event.objects.exclude(event__in=names) if exclude else Event.objects.filter(event__in=names)
    )
    return rows.exists()


# --- live sockets --------------------------------------------------------------------------------


def backfill_page(
    event_filter: EventFilter, after: tuple[datetime, uuid.UUID] | None, size: int
) -> list[dict]:
    """The next `size` matching events after `after` in the filter's order, as wire dicts."""
    rows = event_filter.ordered(Event.objects.all())
    if after is not None:
        rows = rows.filter(keyset_q(after[0], after[1], event_filter.descending))
    return [row.to_wire() for row in rows[:size]]


def received_since(
    event_filter: EventFilter, after: datetime, *, occurred_since: datetime, limit: int
) -> list[Event]:
    """Matching events received at or after `after` (and occurred since `occurred_since`), newest
    first; the page skips a row it already shows."""
    return list(
        event_filter.apply(Event.objects.all())
        .filter(received__gte=after, occurred__gte=occurred_since)
        .order_by("-occurred", "-id")[:limit]
    )


# --- the automation engine: the log in (received, id) order --------------------------------------

Cursor = tuple[datetime, uuid.UUID]


def _after_cursor_q(cursor: Cursor) -> Q:
    # `received >= r AND (received > r OR id > i)`: a bound on the (received, id) index that
    # both databases use. The plain OR of two ranges made SQLite walk every row on each poll.
    received, event_id = cursor
    return Q(received__gte=received) & (Q(received__gt=received) | Q(id__gt=event_id))


def last_received(*, since: datetime | None = None) -> Cursor | None:
    """The (received, id) of the newest stored event (received at or after `since`, a bound on
    the index search), or None for an empty log."""
    rows = Event.objects.all() if since is None else Event.objects.filter(received__gte=since)
    return rows.order_by("-received", "-id").values_list("received", "id").first()


def read_after(cursor: Cursor | None, *, limit: int) -> list[schema.Event]:
    """The next `limit` stored events after `cursor`, in (received, id) order."""
    rows = Event.objects.all()
    if cursor is not None:
        rows = rows.filter(_after_cursor_q(cursor))
    return as_schema_events(rows.order_by("received", "id")[:limit])


def _behind(cursor: Cursor, since: datetime) -> QuerySet[Event]:
    received, event_id = cursor
    return Event.objects.filter(received__gte=since, received__lte=received).exclude(
        received=received, id__gt=event_id
    )


def count_behind(cursor: Cursor, *, since: datetime) -> int:
    """How many stored events were received in [since, cursor]."""
    return _behind(cursor, since).count()


def read_after_counting_behind(
    cursor: Cursor, *, since: datetime, limit: int
) -> tuple[list[schema.Event], int]:
    """`read_after(cursor)` and `count_behind(cursor, since=since)` in one round trip.

    The live tail's read: on PostgreSQL the second round trip was as long as the read itself
    (the thread waits for the GIL again after each one while the loop is sending frames).
    The count's one-row table is LEFT JOINed to the page, so it comes back with no event too.
    """
    page = Event.objects.filter(_after_cursor_q(cursor)).order_by("received", "id")[:limit]
    page_sql, page_params = page.values_list(*_EVENT_FIELDS).query.sql_with_params()
    behind_sql, behind_params = _behind(cursor, since).values("id").query.sql_with_params()
    sql = (
        f"SELECT c.n, f.* FROM (SELECT COUNT(*) AS n FROM ({behind_sql}) b) c"
        f" LEFT JOIN ({page_sql}) f ON 1 = 1 ORDER BY f.received, f.id"
    )
    with connection.cursor() as db:
        db.execute(sql, (*behind_params, *page_params))
        fetched = db.fetchall()
    behind = fetched[0][0]
    return _decoded([row[1:] for row in fetched if row[6] is not None]), behind


def received_behind(cursor: Cursor, *, since: datetime) -> dict[uuid.UUID, datetime]:
    """id → received of the stored events received in [since, cursor]."""
    return dict(_behind(cursor, since).values_list("id", "received"))


def events_by_ids(ids) -> list[schema.Event]:
    """Stored events with these ids, in (received, id) order."""
    # Sorted here, not by the database: an ORDER BY lets SQLite prefer walking the (received,
    # id) index over the primary-key lookups, which at 1M rows is a scan of the log.
    events = as_schema_events(Event.objects.filter(id__in=list(ids)))
    return sorted(events, key=lambda e: (e.received, e.id))


def received_of(event_id: uuid.UUID) -> datetime | None:
    return Event.objects.filter(id=event_id).values_list("received", flat=True).first()


def oldest_received() -> datetime | None:
    """When the oldest stored event was received: where the stored log begins."""
    return Event.objects.order_by("received", "id").values_list("received", flat=True).first()


def received_in(
    since: datetime,
    until: datetime,
    *,
    names: Iterable[str] | None = None,
    prefixes: Iterable[str] = (),
    after: Cursor | None = None,
    labels: bool = True,
    limit: int,
) -> list[schema.Event]:
    """Events received in [since, until] in the engine's (received, id) order, without their
    payloads; with `names`, only those names or names starting with one of `prefixes`; with
    `after`, only those after that (received, id) (the next page). `labels=False` leaves the
    resource and related resources unread: an event reads them from the database if asked."""
    rows = Event.objects.filter(received__gte=since, received__lte=until)
    if after is not None:
        rows = rows.filter(_after_cursor_q(after))
    if names is not None:
        either = Q(event__in=list(names))
        for prefix in prefixes:
            either |= startswith_q("event", prefix)
        rows = rows.filter(either)
    return as_schema_events(rows.order_by("received", "id")[:limit], payload=False, labels=labels)


def read_positions(ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[datetime, str]]:
    """id → (received, id hex), the engine's read position, of the stored events among `ids`."""
    rows = Event.objects.filter(id__in=list(ids)).values_list("id", "received")
    return {uuid_value(i): (datetime_value(r), uuid_value(i).hex) for i, r in rows}


def lifecycle(resource_id: str, *, names: Iterable[str]) -> list[schema.Event]:
    """The events of these names about one resource, in (received, id) order."""
    rows = Event.objects.filter(resource_id=resource_id, event__in=list(names))
    return as_schema_events(rows.order_by("received", "id"))


_NO_PAYLOAD = "{}"
_DATETIMES = ("occurred", "received")
_EVENT_FIELDS = ("occurred", "event", "resource", "related", "payload", "id", "follows", "received")


def as_schema_events(
    rows: QuerySet[Event], *, payload: bool = True, labels: bool = True
) -> list[schema.Event]:
    """Stored events as `schema.Event`s, without building model instances.

    The engine's hot read: the rows are fetched with the queryset's SQL and decoded here
    (orjson, fromisoformat), which costs a fraction of the ORM's per-field converters.
    `payload=False` leaves payloads out (`{}`): triggers never read them, and a replay over a
    day of events spends much of its read decoding them. `labels=False` (no payload either)
    leaves the resource and related resources in the database until an event is asked for them:
    a trigger without `match`, `match_related` or `for_each` never is, and PostgreSQL writing
    each row's JSON out as text was most of its side of a replay's read.
    """
    omit = ("payload", "resource", "related") if not labels else () if payload else ("payload",)
    fields = tuple(f for f in _EVENT_FIELDS if f not in omit)
    # The datetimes as their text: a datetime column goes through the loader Django registers
    # (sqlite3's converter: bytes → str → parse_datetime; psycopg's timestamptz loader in Python),
    # 3-5x slower than `datetime_value` on the text. SQLite's text is naive UTC: it comes with
    # "+00:00" added, which `fromisoformat` reads at a third of the cost of making it aware after.
    rows = rows.annotate(**{f"{name}_text": utc_text(name) for name in _DATETIMES})
    fields = tuple(f"{f}_text" if f in _DATETIMES else f for f in fields)
    try:
        sql, params = rows.values_list(*fields).query.sql_with_params()
    except EmptyResultSet:  # e.g. `id__in=[]`: nothing to read
        return []
    with connection.cursor() as db:
        db.execute(sql, params)
        fetched = db.fetchall()
    if not labels:
        return [
            _StoredEvent(
                aware(occurred),
                name,
                _UNREAD,
                _UNREAD,
                _NO_PAYLOAD,
                uuid_value(event_id),
                uuid_value(follows) if follows else None,
                aware(received),
            )
            for occurred, name, event_id, follows, received in fetched
        ]
    if not payload:
        fetched = [(*row[:4], _NO_PAYLOAD, *row[4:]) for row in fetched]
    return _decoded(fetched)


def _decoded(fetched) -> list[schema.Event]:
    """Rows of `_EVENT_FIELDS` as `schema.Event`s (`resource`, `related` and `payload` decoded
    on first use)."""
    return [
        _StoredEvent(
            aware(occurred),
            name,
            resource,
            related,
            data,
            uuid_value(event_id),
            uuid_value(follows) if follows else None,
            aware(received),
        )
        for occurred, name, resource, related, data, event_id, follows, received in fetched
    ]


def _decoded_on_use(slot) -> property:
    """A `schema.Event` field stored as its JSON text and decoded the first time it is read."""

    def get(event: schema.Event):
        value = slot.__get__(event)
        if value is _UNREAD:
            _read_labels(event)
            value = slot.__get__(event)
        if isinstance(value, _TEXT):  # (a tuple: `str | bytes` builds a union at every call)
            value = orjson.loads(value)
            slot.__set__(event, value)
        return value

    return property(get, slot.__set__)


_TEXT = (str, bytes)
_UNREAD = object()  # a JSON column left in the database (`labels=False`)


def _read_labels(event: schema.Event) -> None:
    row = Event.objects.filter(id=event.id).values_list("resource", "related").first()
    if row is None:
        raise LookupError(f"event {event.id} is no longer stored: its labels cannot be read")
    _RESOURCE.__set__(event, row[0])
    _RELATED.__set__(event, row[1])


_RESOURCE = schema.Event.__dict__["resource"]
_RELATED = schema.Event.__dict__["related"]


class _StoredEvent(schema.Event):
    """A stored event whose JSON columns are decoded when first read, not when fetched.

    A replay over a day reads 100k+ rows, and a trigger reads the labels only of the events it
    has to (a trigger without `match` or `for_each` reads none): decoding every row's resource
    and related resources was half of the read (issue 12's preview profile). Reading a field
    gives exactly what an eager decode gave; an event compares equal to a `schema.Event` with
    the same fields.
    """

    __slots__ = ()
    resource = _decoded_on_use(_RESOURCE)
    related = _decoded_on_use(_RELATED)
    payload = _decoded_on_use(schema.Event.__dict__["payload"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, schema.Event):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _SCHEMA_FIELDS)

    __hash__ = None  # type: ignore[assignment]  # as schema.Event's (a mutable dataclass)


_SCHEMA_FIELDS = tuple(f.name for f in fields(schema.Event))
