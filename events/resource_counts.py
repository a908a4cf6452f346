"""count-by/resource: events per resource, in Prefect's order (count desc, label asc).

Part of the read path (split from `events.queries` for length). The answer has a row per
matching resource, which grows with the log (at 1M events over 7 days, ~487k resources: about
60 MB of JSON, seconds of grouping on any store). So:

- rows are grouped, labelled and sorted by the database and read in chunks (a server-side
  cursor on PostgreSQL), and the API streams them: memory does not grow with the resources;
- when the matches are few (≤ EXACT_MATCHES events, counted by `events.totals`), every resource
  is counted: Prefect's answer exactly;
- otherwise the resources are those of a sample of the matches spread over the window (the
  resources with many events are the likeliest to be in it), each counted exactly over the
  whole window; `estimate` is set and the API says so in a header. A complete answer over
  millions of events is a job for an export, not a request.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Max, Min

from events import schema, timebox, totals
from events.filters import EventFilter
from events.models import Event
from events.queries import count_row

CHUNK = 2000
EXACT_MATCHES = 20_000
# The sample: the newest PER_STRATUM matches of each of STRATA equal slices of the window, read
# within SAMPLE_BUDGET seconds.
STRATA = 16
PER_STRATUM = 16
SAMPLE_BUDGET = 0.05
# A resource's label: its newest event's first non-empty name label, else its id (`resource_name`).
_LABEL_SQL = {
    "sqlite": "json_extract(e.resource, '$.\"{}\"')",
    "postgresql": "(e.resource ->> '{}')",
}


class ResourceCounts:
    """count-by/resource's rows, read in chunks: `chunk()` until [], then `close()`.

    The statement runs when this is made (within the request's deadline); `chunk()` then only
    fetches rows the database has ready. With `resource_ids`, only those resources are counted
    (from the resource-id index).
    """

    def __init__(self, event_filter: EventFilter, *, resource_ids: Collection[str] | None = None):
        self.cursor = None
        self.estimate = resource_ids is not None
        if resource_ids is None:
            rows = event_filter.apply(Event.objects.all())
        else:
            rows = event_filter.apply(
                Event.objects.filter(resource_id__in=list(resource_ids)),
                semijoin="exists",
                by_criteria=True,
            )
        groups = (
            rows.values("resource_id")
            .annotate(n=Count("id"), lo=Min("occurred"), hi=Max("occurred"))
            .order_by()
        )
        try:
            sql, params = groups.query.sql_with_params()
        except EmptyResultSet:
            return
        vendor = connection.vendor
        names = ", ".join(
            f"NULLIF({_LABEL_SQL[vendor].format(key)}, '')" for key in schema.NAME_LABELS
        )
        collate = ' COLLATE "C"' if vendor == "postgresql" else ""  # code point order, as SQLite
        # The label is looked up from the (resource_id, occurred) index at the group's newest
        # time: one index probe per resource instead of a correlated subquery over the filter.
        sql = (
            "SELECT * FROM (SELECT g.resource_id, g.n, g.lo, g.hi, (SELECT COALESCE("
            f"{names}, e.resource_id) FROM {Event._meta.db_table} e WHERE e.resource_id = "
            "g.resource_id AND e.occurred = g.hi ORDER BY e.id LIMIT 1) AS label "
            f"FROM ({sql}) g) r ORDER BY r.n DESC, r.label{collate}, r.resource_id{collate}"
        )
        # A server-side cursor on PostgreSQL (WITH HOLD outside a transaction: the result is
        # materialised when the statement runs); SQLite computes the sort at the first row.
        self.cursor = connection.chunked_cursor()
        self.cursor.execute(sql, params)

    def chunk(self) -> list[dict]:
        """The next rows (up to CHUNK), or [] at the end."""
        if self.cursor is None:
            return []
        return [
            count_row(value=rid, label=label or rid, count=n, start=_aware(lo), end=_aware(hi))
            for rid, n, lo, hi, label in self.cursor.fetchmany(CHUNK)
        ]

    def close(self) -> None:
        if self.cursor is not None:
            self.cursor.close()
            self.cursor = None


def resource_counts(event_filter: EventFilter) -> ResourceCounts:
    """Every matching resource when the matches are few, else those of a sample (`estimate`)."""
    matches, _ = totals.total_of(event_filter)
    if matches <= EXACT_MATCHES:
        return ResourceCounts(event_filter)
    return ResourceCounts(event_filter, resource_ids=sampled_resources(event_filter))


def count_by_resource(event_filter: EventFilter) -> list[dict]:
    """Every row of `resource_counts` in a list (tests, small reads; the API streams)."""
    counts = resource_counts(event_filter)
    try:
        out: list[dict] = []
        while rows := counts.chunk():
            out.extend(rows)
        return out
    finally:
        counts.close()


def sampled_resources(event_filter: EventFilter) -> set[str]:
    """The resources of the newest PER_STRATUM matches of each of STRATA slices of the window.

    A resource with a share p of the matches is missed with probability about (1 - p)^sample;
    the slices spread the sample over the whole window rather than its newest minutes.
    """
    since, until = event_filter.occurred.since, event_filter.occurred.until
    step = (until - since) / STRATA
    # Newest slice first: if the one statement runs out of time, the newest slice alone is read.
    slices = [
        (
            since + step * i,
            until if i == STRATA - 1 else since + step * (i + 1) - timedelta(microseconds=1),
        )
        for i in reversed(range(STRATA))
    ]
    try:
        with timebox.within(SAMPLE_BUDGET):
            samples = totals.newest_resource_ids(event_filter, slices, PER_STRATUM)
    except timebox.OutOfTime:
        samples = totals.newest_resource_ids(event_filter, slices[:1], PER_STRATUM)
    return set().union(*samples)


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands raw aggregates back as stored text (UTC)
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
