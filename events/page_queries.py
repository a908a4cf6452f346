"""The pages' reads beyond the feed: resources, suggestions, the detail page's story, export.

The other half of the read path (`events.queries` is the first; this module is split from it for
length and builds on it). Every read here is bounded: by a LIMIT on an index walk newest first
(`occurred`, or `(resource_id, occurred)` / `(role, occurred)` on the resource rows) or in id
order under a prefix (`resource_ids_starting`), by primary keys, or by a time window around one
event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q

from events.filter_sql import startswith_q
from events.filters import EventFilter
from events.models import Event, EventResource
from events.queries import event, followers, keyset_q

SUGGEST_SAMPLE = 2000
ID_SCAN = 2000


def resource_rows(
    *, since: datetime, until: datetime, related: bool
) -> list[tuple[str, str, dict]]:
    """(id, role, labels) of the newest `SUGGEST_SAMPLE` resource rows in [since, until], newest
    first: primary resources, or (with `related`) related ones."""
    rows = EventResource.objects.filter(occurred__gte=since, occurred__lte=until)
    # Primary rows walk the (role, occurred) index; related ones the occurred index.
    rows = rows.exclude(role="") if related else rows.filter(role="")
    rows = rows.order_by("-occurred").values_list("resource_id", "role", "labels")
    return list(rows[:SUGGEST_SAMPLE])


def resource_ids_starting(
    prefix: str, *, since: datetime, until: datetime, related: bool, limit: int
) -> list[str]:
    """Up to `limit` distinct resource ids starting with `prefix` seen in [since, until], sorted.

    Reads at most `ID_SCAN` entries of a (resource_id, occurred) index under the prefix: the
    events' for primary resources (the event's own `resource_id`; SQLite reads that index alone),
    the resource rows' for related ones, whose role is checked here rather than in SQL so that a
    prefix under which millions of rows have the other role still costs `ID_SCAN` rows.
    """
    model = EventResource if related else Event
    rows = model.objects.filter(
        startswith_q("resource_id", prefix), occurred__gte=since, occurred__lte=until
    ).order_by()
    if connection.vendor == "sqlite":
        # Index order: without it SQLite (no statistics) may walk the whole window by time.
        # PostgreSQL picks by its statistics, and cannot give `text_pattern_ops` index order.
        rows = rows.order_by("resource_id")
    columns = ("resource_id", "role") if related else ("resource_id",)
    found: set[str] = set()
    for rid, *role in rows.values_list(*columns)[:ID_SCAN]:
        if related and not role[0]:
            continue  # the primary resource of its event
        found.add(rid)
        if len(found) == limit:
            break
    return sorted(found)


def resource_labels(resource_ids: Iterable[str]) -> dict[str, dict]:
    """The newest labels seen for each id (as primary or related resource); one index seek each."""
    out = {}
    for rid in resource_ids:
        labels = (
            EventResource.objects.filter(resource_id=rid)
            .order_by("-occurred")
            .values_list("labels", flat=True)
            .first()
        )
        if labels is not None:
            out[rid] = labels
    return out


@dataclass
class Appearance:
    """One event a resource took part in, and the role it had ("" = the primary resource)."""

    event: Event
    role: str


def resource_timeline(
    resource_id: str, *, before: tuple[datetime, uuid.UUID] | None = None, limit: int
) -> list[Appearance]:
    """The newest events involving `resource_id` (primary or related), before `before`."""
    rows = EventResource.objects.filter(resource_id=resource_id)
    if before is not None:
        occurred, event_id = before
        rows = rows.filter(
            Q(occurred__lte=occurred) & (Q(occurred__lt=occurred) | Q(event_id__lt=event_id))
        )
    found: list[Appearance] = []
    seen: set[uuid.UUID] = set()
    for row in rows.select_related("event").order_by("-occurred", "-event_id")[: limit * 2]:
        if row.event_id not in seen:  # a resource both primary and related: one line
            seen.add(row.event_id)
            found.append(Appearance(event=row.event, role=row.role))
        if len(found) == limit:
            break
    return found


def resource_sample(resource_id: str, *, limit: int) -> list[tuple[uuid.UUID, str, str]]:
    """(event id, event name, role) of the newest `limit` events involving `resource_id`."""
    return list(
        EventResource.objects.filter(resource_id=resource_id)
        .order_by("-occurred")
        .values_list("event_id", "event__event", "role")[:limit]
    )


def resources_alongside(event_ids: list[uuid.UUID]) -> list[tuple[str, str, dict]]:
    """(id, role, labels) of every resource of these events (by the events' primary keys)."""
    return list(
        EventResource.objects.filter(event_id__in=event_ids).values_list(
            "resource_id", "role", "labels"
        )
    )


# How far from an event its story is looked for: a flow run's tasks, the chain of `follows`.
STORY_WINDOW = timedelta(days=1)


def chain_before(of: Event, *, limit: int) -> list[Event]:
    """The events `of` follows, transitively, oldest first (one primary-key lookup each)."""
    chain: list[Event] = []
    seen = {of.id}
    current = of
    while current.follows and len(chain) < limit:
        previous = event(current.follows)
        if previous is None or previous.id in seen:
            break
        seen.add(previous.id)
        chain.append(previous)
        current = previous
    return chain[::-1]


def chain_after(of: Event, *, limit: int) -> list[tuple[Event, int]]:
    """(event, depth) of the events that follow `of`, transitively, in order of occurrence."""
    found: list[tuple[Event, int]] = []
    frontier = [(of, 0)]
    seen = {of.id}
    while frontier and len(found) < limit:
        leader, depth = frontier.pop(0)
        for follower in followers(leader, limit=limit):
            if follower.id not in seen:
                seen.add(follower.id)
                found.append((follower, depth + 1))
                frontier.append((follower, depth + 1))
    return sorted(found, key=lambda item: (item[0].occurred, item[0].id.hex))[:limit]


def run_events(of: Event, *, limit: int) -> list[Event]:
    """Events of `of`'s primary resource within a day of it, oldest first."""
    return list(
        Event.objects.filter(
            resource_id=of.resource_id,
            occurred__gte=of.occurred - STORY_WINDOW,
            occurred__lte=of.occurred + STORY_WINDOW,
        ).order_by("occurred", "id")[:limit]
    )


def naming_as_related(of: Event, *, limit: int) -> list[Appearance]:
    """Events within a day of `of` that name its primary resource as a related one (the task
    runs of a flow run), oldest first."""
    rows = (
        EventResource.objects.filter(
            resource_id=of.resource_id,
            occurred__gte=of.occurred - STORY_WINDOW,
            occurred__lte=of.occurred + STORY_WINDOW,
        )
        .exclude(role="")
        .select_related("event")
        .order_by("occurred", "event_id")[:limit]
    )
    return [Appearance(event=row.event, role=row.role) for row in rows]


def export_page(
    event_filter: EventFilter, *, after: tuple[datetime, uuid.UUID] | None, size: int
) -> list[Event]:
    """The next `size` matching events after `after`, in the filter's order (keyset)."""
    rows = event_filter.ordered(Event.objects.all())
    if after is not None:
        rows = rows.filter(keyset_q(after[0], after[1], event_filter.descending))
    return list(rows[:size])
