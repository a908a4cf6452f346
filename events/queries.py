"""Reading the event log: keyset pages and count-by aggregations over an `EventFilter`."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from django.core import signing
from django.db import connection
from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from events import rollups
from events.filters import EventFilter
from events.models import Event
from events.schema import resource_name

PAGE_TOKEN_SALT = "events.page-token"


class InvalidPageToken(ValueError):
    pass


@dataclass
class Page:
    events: list[Event]
    total: int
    next_token: str | None


def _keyset_q(occurred: datetime, event_id: uuid.UUID, descending: bool) -> Q:
    if descending:
        return Q(occurred__lt=occurred) | Q(occurred=occurred, id__lt=event_id)
    return Q(occurred__gt=occurred) | Q(occurred=occurred, id__gt=event_id)


def first_page(event_filter: EventFilter, *, limit: int, total: int | None = None) -> Page:
    """The first page; pass `total` when the caller already knows it (the feed's histogram)."""
    matching = event_filter.apply(Event.objects.all())
    if total is None:
        if rollups.answerable(event_filter) and not event_filter.distinct:
            total = rollups.total(event_filter)
        else:
            total = matching.count()
    return _page(event_filter, matching, limit=limit, total=total, offset=0)


def next_page(token: str) -> Page:
    """The page after the one that issued `token` (opaque, signed; 403 material when bad)."""
    try:
        state = signing.loads(token, salt=PAGE_TOKEN_SALT)
        event_filter = EventFilter.model_validate(state["filter"])
        occurred = datetime.fromisoformat(state["after"][0])
        after_id = uuid.UUID(state["after"][1])
        limit, total, offset = int(state["limit"]), int(state["total"]), int(state["offset"])
    except (signing.BadSignature, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InvalidPageToken("Invalid page token") from exc
    matching = event_filter.apply(Event.objects.all()).filter(
        _keyset_q(occurred, after_id, event_filter.descending)
    )
    return _page(event_filter, matching, limit=limit, total=total, offset=offset)


def _page(event_filter: EventFilter, matching, *, limit: int, total: int, offset: int) -> Page:
    ordering = (
        [F("occurred").desc(), F("id").desc()] if event_filter.descending else ["occurred", "id"]
    )
    events = list(matching.order_by(*ordering)[:limit]) if limit else []
    delivered = offset + len(events)
    token = None
    if events and len(events) == limit and delivered < total:
        last = events[-1]
        token = signing.dumps(
            {
                "filter": event_filter.to_json(),
                "after": [last.occurred.isoformat(), last.id.hex],
                "limit": limit,
                "total": total,
                "offset": delivered,
            },
            salt=PAGE_TOKEN_SALT,
            compress=True,
        )
    return Page(events=events, total=total, next_token=token)


# --- counting ------------------------------------------------------------------------------------

TimeUnit = Literal["week", "day", "hour", "minute", "second"]
UNIT_SECONDS = {"week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
PIVOT = datetime(2024, 4, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BUCKETS = 1000


class TooManyBuckets(ValueError):
    pass


def count_by_event(event_filter: EventFilter, *, use_rollups: bool = True) -> list[dict]:
    if use_rollups and rollups.answerable(event_filter):
        end = event_filter.occurred.until + timedelta(microseconds=1)
        tallies = rollups.tally_by_event(event_filter, event_filter.occurred.since, end)
        rows = sorted(tallies.items(), key=lambda item: (-item[1].count, item[0]))
        return [
            _count(value=name, label=name, count=t.count, start=t.first, end=t.last)
            for name, t in rows
        ]
    rows = (
        event_filter.apply(Event.objects.all())
        .values("event")
        .annotate(count=Count("id"), start=Min("occurred"), end=Max("occurred"))
        .order_by("-count", "event")
    )
    return [
        _count(value=r["event"], label=r["event"], count=r["count"], start=r["start"], end=r["end"])
        for r in rows
    ]


def count_by_resource(event_filter: EventFilter) -> list[dict]:
    matching = event_filter.apply(Event.objects.all())
    latest = (
        matching.filter(resource_id=OuterRef("resource_id"))
        .order_by("-occurred")
        .values("resource")[:1]
    )
    rows = (
        matching.values("resource_id")
        .annotate(
            count=Count("id"), start=Min("occurred"), end=Max("occurred"), labels=Subquery(latest)
        )
        .order_by("-count", "resource_id")
    )
    out = []
    for r in rows:
        labels = r["labels"]
        if isinstance(labels, str):  # SQLite hands a JSON subquery back as text
            labels = orjson.loads(labels)
        label = resource_name(labels or {}) or r["resource_id"]
        out.append(
            _count(
                value=r["resource_id"],
                label=label,
                count=r["count"],
                start=r["start"],
                end=r["end"],
            )
        )
    out.sort(key=lambda c: (-c["count"], c["label"]))
    return out


def time_buckets(
    since: datetime, until: datetime, *, unit: TimeUnit, interval: float
) -> tuple[datetime, timedelta, int]:
    """The first bucket start, the bucket width and the number of buckets (aligned to PIVOT)."""
    step = timedelta(seconds=UNIT_SECONDS[unit] * interval)
    now = timezone.now()
    if until > now:
        # Prefect cuts a future range off at the end of the current unit period.
        period = UNIT_SECONDS[unit]
        epoch = now.timestamp()
        until = datetime.fromtimestamp((math.floor(epoch / period) + 1) * period, tz=UTC)
    first = PIVOT + step * math.floor((since - PIVOT) / step)
    count = max(0, math.ceil((until - first) / step))
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
) -> list[dict]:
    first, step, n = time_buckets(
        event_filter.occurred.since, event_filter.occurred.until, unit=unit, interval=interval
    )
    step_us = round(step / timedelta(microseconds=1))
    counts: dict[int, int] = {}
    from_rollups = (
        rollups.counts_by_bucket(event_filter, first, step, n)
        if rollups.answerable(event_filter)
        else None
    )
    if from_rollups is not None:
        counts = dict(enumerate(from_rollups))
    elif n:
        bucket = _bucket_index_sql(first, step_us)
        rows = (
            event_filter.apply(Event.objects.all())
            .annotate(bucket=bucket)
            .values("bucket")
            .annotate(count=Count("id"))
            .order_by()
        )
        counts = {int(r["bucket"]): r["count"] for r in rows}
    out = []
    for i in range(n):
        start = first + step * i
        end = start + step - timedelta(microseconds=1)
        out.append(
            {
                "value": str(i),
                "label": start.isoformat(),
                "count": counts.get(i, 0),
                "start_time": _z(start),
                "end_time": _z(end),
            }
        )
    return out


def _bucket_index_sql(first: datetime, step_us: int) -> RawSQL:
    """Integer bucket number of `occurred`, exact to the microsecond on both databases."""
    if connection.vendor == "sqlite":
        # Stored as 'YYYY-MM-DD HH:MM:SS[.ffffff]': whole seconds from strftime (on the text cut at the
        # seconds, because strftime rounds fractions up), microseconds from the text itself.
        base_us = (first - EPOCH) // timedelta(microseconds=1)
        sql = (
            "(CAST(strftime('%%s', substr(occurred, 1, 19)) AS INTEGER) * 1000000"
            " + CAST(substr(occurred || '.000000', 21, 6) AS INTEGER) - %s) / %s"
        )
        return RawSQL(sql, (base_us, step_us))
    sql = "floor(extract(epoch from (occurred - %s)) * 1000000 / %s)"
    return RawSQL(sql, (first, step_us))


def _z(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _count(*, value: str, label: str, count: int, start: datetime, end: datetime) -> dict:
    return {
        "value": value,
        "label": label,
        "count": count,
        "start_time": _z(start),
        "end_time": _z(end),
    }
