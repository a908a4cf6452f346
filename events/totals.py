"""A page's `total` without a long COUNT: exact when cheap, else a flagged estimate (issue 14).

Part of the read path (`events.queries` calls `total_of` for its pages; the admin calls
`count_or_estimate`). Reads are bounded by `events.timebox`.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, QuerySet

from events import rollups, timebox
from events.filters import EventFilter, OccurredFilter
from events.models import Event

# A page's total is exact when it can be had within this many seconds (the rollups, a short page,
# or a COUNT that finishes in time); otherwise it is estimated within ESTIMATE_BUDGET more.
COUNT_BUDGET = 0.02
ESTIMATE_BUDGET = 0.015
FIRST_SLICE = timedelta(minutes=1)  # the newest slice counted for an estimate; each next is 4×
# A window of at most this many events is counted exactly even when every one must be read.
SCANNED_EXACTLY = 20_000
# `distinct` totals past COUNT_BUDGET: matches sampled in this many equal slices of the window,
# this many per slice, within DISTINCT_BUDGET (see `_distinct_estimate`).
STRATA = 8
PER_STRATUM = 16
DISTINCT_BUDGET = 0.03


def by_criteria(event_filter: EventFilter) -> QuerySet[Event]:
    """The matches, planned to be read from the criteria's own indexes when there are any."""
    indexed = event_filter.indexed_criteria()
    return event_filter.apply(Event.objects.all(), by_criteria=indexed)


# --- totals --------------------------------------------------------------------------------------


def total_of(
    event_filter: EventFilter, *, events: list[Event] = (), limit: int = 0, rare: bool | None = None
) -> tuple[int, bool]:
    """How many events match, and whether that is an estimate.

    Exact when cheap: a first page that was not full holds them all, the rollups answer time
    and names, and a COUNT gets COUNT_BUDGET when the matches are `rare` (the page was read from
    their index) or look few and have an index (or the window is small). Otherwise an estimate: the page's density among the events it spans
    (from the rollups), scaled to the window; without a page (`limit` 0), the matches counted
    in time slices from the newest back within ESTIMATE_BUDGET, scaled the same way.
    """
    shown = len(events)
    if limit and shown < limit:
        return shown, False
    if event_filter.distinct:
        return _distinct_total(event_filter, shown=shown, limit=limit)
    plain = not event_filter.distinct
    if plain and rollups.answerable(event_filter):
        return rollups.total(event_filter), False
    if rare:  # the page came from the criteria's index, the walk having found too few: count
        try:
            with timebox.within(COUNT_BUDGET):
                return by_criteria(event_filter).count(), False
        except timebox.OutOfTime:
            pass
    # The window's events (time and names only: what the rollups answer exactly).
    window = EventFilter(occurred=event_filter.occurred, event=event_filter.event)
    in_window = rollups.total(window)
    # The page's density: its matches among the window's events from the newest back to the
    # page's last (the rollups count those), scaled to the whole window.
    guess = None
    if events and limit and in_window:
        last = events[-1].occurred
        since, until = window.occurred.since, window.occurred.until
        covered = (
            OccurredFilter(since=last, until=until)
            if event_filter.descending
            else OccurredFilter(since=since, until=last)
        )
        in_covered = rollups.total(window.model_copy(update={"occurred": covered}))
        if in_covered:
            guess = max(round(shown * in_window / in_covered), shown + 1)
    # Count exactly when the matches are few and have an index, or the window is small.
    few = guess is None or guess <= SCANNED_EXACTLY
    if not rare and few and (event_filter.indexed_criteria() or in_window <= SCANNED_EXACTLY):
        try:
            with timebox.within(COUNT_BUDGET):
                return by_criteria(event_filter).count(), False
        except timebox.OutOfTime:
            pass
    if guess is not None:
        return guess, True
    at_least = shown + (1 if limit and shown == limit else 0)
    return max(_estimate(event_filter, window, in_window), at_least), True


def count_or_estimate(rows: QuerySet[Event], *, budget: float) -> tuple[int, bool]:
    """COUNT(*) of any queryset of events within `budget` seconds, else the planner's estimate
    (PostgreSQL) or the size of the log (SQLite has no estimate; an upper bound). For lists
    that are not `EventFilter`s, such as the admin's."""
    try:
        with timebox.within(budget):
            return rows.count(), False
    except timebox.OutOfTime:
        pass
    if connection.vendor == "postgresql":
        try:
            sql, params = rows.order_by().query.sql_with_params()
        except EmptyResultSet:
            return 0, False
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
            (plan,) = cursor.fetchone()
        plan = orjson.loads(plan) if isinstance(plan, str | bytes) else plan
        return int(plan[0]["Plan"]["Plan Rows"]), True
    return rollups.stored_total(), True


def _estimate(event_filter: EventFilter, window: EventFilter, in_window: int) -> int:
    since, until = event_filter.occurred.since, event_filter.occurred.until
    deadline = time.monotonic() + ESTIMATE_BUDGET
    counted, covered_from, width, hi = 0, None, FIRST_SLICE, until
    while hi >= since:
        lo = max(since, hi - width)
        part = event_filter.model_copy(update={"occurred": OccurredFilter(since=lo, until=hi)})
        try:
            with timebox.within(deadline - time.monotonic()):
                counted += part.apply(Event.objects.all()).count()
        except timebox.OutOfTime:
            break
        covered_from, hi, width = lo, lo - timedelta(microseconds=1), width * 4
    if covered_from is None:
        return 0
    if covered_from <= since:
        return counted
    covered = window.model_copy(
        update={"occurred": OccurredFilter(since=covered_from, until=until)}
    )
    in_covered = rollups.total(covered)
    return round(counted * in_window / in_covered) if in_covered else counted


# --- distinct ------------------------------------------------------------------------------------


def _distinct_total(event_filter: EventFilter, *, shown: int, limit: int) -> tuple[int, bool]:
    """How many resources match (`distinct`): COUNT(DISTINCT) within COUNT_BUDGET, else
    `_distinct_estimate`, never below what the page shows."""
    plain = _without_distinct(event_filter)
    in_window = rollups.total(EventFilter(occurred=plain.occurred, event=plain.event))
    if plain.indexed_criteria() or in_window <= SCANNED_EXACTLY:
        try:
            with timebox.within(COUNT_BUDGET):
                rows = by_criteria(plain).aggregate(n=Count("resource_id", distinct=True))
                return rows["n"], False
        except timebox.OutOfTime:
            pass
    at_least = shown + (1 if limit and shown == limit else 0)
    # Time and names only: the window's events are the matches (one rollup read, not two).
    matches = in_window if rollups.answerable(plain) else total_of(plain)[0]
    return max(_distinct_estimate(plain, matches), at_least), True


def _distinct_estimate(plain: EventFilter, matches: int) -> int:
    """Estimate the number of resources among `matches` events of `plain` (a filter without
    `distinct`) from a sample: a resource with c matches counts 1/c for each of its events, so
    resources = Σ 1/c over the matches = matches × the mean of 1/c over a uniform sample.

    The sample is stratified in time (about STRATA whole-hour slices of where the window's events
    are, the newest PER_STRATUM matches of each, weighted by the slice's events from the hour
    rollups), and each sampled resource's c is counted over the whole window from the
    (resource_id, occurred) index. Unbiased when the filter's share of events is even across the
    window (the same assumption as the page-density total); no sketch to keep at ingest.
    """
    window = EventFilter(occurred=plain.occurred, event=plain.event)
    span = rollups.span(window)
    if not matches or span is None:
        return matches
    first, last = span
    start = rollups.floor(first, rollups.HOUR)
    step = timedelta(hours=max(1, math.ceil((last - start) / timedelta(hours=1) / STRATA)))
    n = (last - start) // step + 1
    in_hours = rollups.counts_by_hour(window, start, start + step * n)
    in_slices = [0] * n
    for hour, count in in_hours.items():
        in_slices[(hour - start) // step] += count
    used = [i for i in range(n) if in_slices[i]]
    bounds = [
        (
            max(first, start + step * i),
            min(last, start + step * (i + 1) - timedelta(microseconds=1)),
        )
        for i in used
    ]
    try:
        # Two statements whatever the slices (a statement per slice paid a round trip, and on
        # PostgreSQL a savepoint, each: only one slice fitted in the budget there).
        with timebox.within(DISTINCT_BUDGET):
            samples = newest_resource_ids(plain, bounds, PER_STRATUM)
            counts = _matches_per_resource(plain, set().union(*samples))
    except timebox.OutOfTime:
        return matches
    weighted, weights = 0.0, 0
    for i, sample in zip(used, samples, strict=True):
        if sample:
            weighted += in_slices[i] * sum(1 / counts.get(r, 1) for r in sample) / len(sample)
        weights += in_slices[i]
    if not weights:
        return matches
    # The slices sampled stand for the whole window in proportion to their events.
    return round(matches * weighted / weights)


def newest_resource_ids(
    event_filter: EventFilter, slices: list[tuple[datetime, datetime]], per: int
) -> list[list[str]]:
    """The resource ids of the newest `per` matches of each time slice (inclusive bounds) of
    `event_filter` (without `distinct`), read by one statement: a sample spread over a window."""
    parts, params = [], []
    for i, (lo, hi) in enumerate(slices):
        part = event_filter.model_copy(update={"occurred": OccurredFilter(since=lo, until=hi)})
        rows = (
            part.apply(Event.objects.all(), semijoin="exists")
            .order_by("-occurred", "-id")
            .values_list("resource_id", flat=True)[:per]
        )
        try:
            sql, more = rows.query.sql_with_params()
        except EmptyResultSet:
            continue
        parts.append(f"SELECT {i} AS slice, s{i}.resource_id FROM ({sql}) s{i}")
        params += more
    found: list[list[str]] = [[] for _ in slices]
    if parts:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            for i, resource_id in cursor.fetchall():
                found[i].append(resource_id)
    return found


def _matches_per_resource(plain: EventFilter, resource_ids: set[str]) -> dict[str, int]:
    """Each resource's matches over the filter's window, read from the resource-id index."""
    if not resource_ids:
        return {}
    rows = (
        plain.apply(
            Event.objects.filter(resource_id__in=resource_ids), semijoin="exists", by_criteria=True
        )
        .values("resource_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {r["resource_id"]: r["n"] for r in rows}


def _without_distinct(event_filter: EventFilter) -> EventFilter:
    """The same filter without `distinct` (and without a resource criterion left empty, so that
    the rollups still answer a filter of time and names)."""
    r = event_filter.resource
    resource = r.model_copy(update={"distinct": False}) if r.id or r.id_prefix or r.labels else None
    return event_filter.model_copy(update={"resource": resource})
