"""How a page of matches is read: the plan for `events.queries.first_page` / `next_page`.

Part of the read path. SQLite keeps no statistics, so for a filtered page it cannot tell common
matches (best found by walking the occurred index newest first) from rare ones (best read from
their own index and sorted); `newest` tries the first within WALK_BUDGET and falls back to the
second (for text alone, only when its FTS5 table narrows the terms to few rows,
`text_search.fts_match`; else the walk goes on). `distinct` pages walk in chunks
(`_newest_distinct`). `explain` shows the plans (tested in tests/events/test_plans.py).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime

from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Func, Q, QuerySet

from events import rollups, timebox
from events.filters import EventFilter, OccurredFilter
from events.labels import as_list
from events.models import Event
from events.row_pages import (
    ROWS_CAP,
    Found,
    by_ids,
    from_rows,
    from_rows_by_days,
    keyset_q,
    local_setting,
    rows_counted,
    rows_walked,
    serial,
    stored_days,
    walk_rows,
)
from events.text_search import (
    FtsRows,
    Sample,
    fts_match,
    label_fts_match,
    label_search_q,
    label_term,
    rare_text,
)
from events.totals import by_criteria

# How long a page may walk the occurred index looking for matches before it reads them from
# their own index instead (see `newest`).
WALK_BUDGET = 0.008
# PostgreSQL walks a page with resource-label criteria this long before its planner chooses:
# two label keys together (0.3 % of events at 1M) are 15k rows walked, ~10-30 ms.
LABEL_WALK_BUDGET = 0.03
# PostgreSQL walks a page without an index of its own again, this long, when its first walk ran
# out (a loaded machine, a cold cache): its planner would read every event of the window
# (related labels `Customer 7*` at 10M: a hash join of both tables, 23 s, past the request's
# deadline), where a walk finds a page of common matches in 10-20 ms. Rare ones skip the walk.
WALK_AGAIN_BUDGET = 0.5
# `distinct` pages walk the matches in chunks for at most this long (see `_newest_distinct`).
DISTINCT_BUDGET = 0.03
DISTINCT_CHUNK = 200
# A page read from the criteria's index reads (and so counts) the ids of up to this many matches.
RARE_CAP = 5000

# Excluded event names whose events in the window are at most this many are left out of a page
# read from the resource rows by their ids (`_names_left_out`).
NAMED_CAP = 5000


def newest(
    event_filter: EventFilter, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Found:
    """The first `limit` matches in the filter's order (after the keyset bound `after`, the
    previous page's last (occurred, id)).

    Two plans, because SQLite keeps no statistics to choose between them: walking the occurred
    index newest first and testing each event (quick when matches are common), and reading the
    matches from their own index and sorting them (quick when they are rare). The walk gets
    WALK_BUDGET; past it the matches are rare: their ids are read in order (up to RARE_CAP, which
    also counts them) and the page's events fetched by id. PostgreSQL, which has statistics,
    plans the query itself, except for text, which it also walks first (`text_search.text_q`)
    and, alone, then reads a few day partitions at a time (`_newest_by_days`).
    A filter with a related or any-resource criterion whose rows can be read first
    (`EventFilter.rows_first`) is read from them (`from_rows`, the other criteria checked on
    their events): at once on both databases when their index holds few rows of the ids it
    names (`rows_counted`), else, when the rows alone answer the filter, on SQLite instead of the
    criteria's index after the walk. Resource labels alone, which no index serves, are walked
    over the primary resource rows on SQLite (`walk_rows`). Labels without an indexed criterion
    whose values are rare or absent are read from the search text's index and sorted
    (`_read_narrowed`): on SQLite past the walk's budget (`_walk_labels`), on PostgreSQL at once
    when none of the newest events holds them (`_rare_labels`).
    """
    if not limit:
        return Found([])
    bound = keyset_q(*after, event_filter.descending) if after else Q()
    if event_filter.distinct:
        return Found(_newest_distinct(event_filter, bound, limit))
    rows_first = event_filter.rows_first()
    if rows_first and (rows := rows_counted(event_filter, rows_first[1])) <= ROWS_CAP:
        # Few rows name the ids: the page and its count from them (and their events, for the
        # other criteria) at once, on either database (PostgreSQL's planner read every match's
        # event to sort them, and counted apart). Up to RARE_CAP when each row's event is
        # checked against other criteria, up to ROWS_CAP when the rows alone answer.
        row_q, others = _names_left_out(event_filter, *rows_first[::2])
        if others is None or rows <= RARE_CAP:
            return from_rows(event_filter, row_q, after, limit, others=others)
        return from_rows_by_days(event_filter, row_q, after, limit, others, rows_first[1], rows)
    ordering = _order_by(event_filter.descending)
    if connection.vendor != "sqlite" or not _narrows_beyond_time(event_filter):
        if (narrowed := _rare_labels(event_filter)) is not None:
            return _read_narrowed(event_filter, narrowed, bound, limit)
        if (sample := _rare_text(event_filter)) is not None:
            # A walk would find too few: the index at once, first from where the newest events
            # likely hold the page (a next page's bound is earlier: its days). Not for a term
            # the sample never saw: likelier in few events of the day, or none, which would
            # then read the day's trigram index twice (a resource id's term at 10M: 34 → 44 ms).
            reach = None
            if not after and event_filter.descending and sample.hits:
                needed = sample.newest_needed(limit)
                reach = rollups.reach(event_filter.occurred.until, needed)
            return Found(_newest_by_days(event_filter, bound, limit, reach=reach))
        budget = _walk_first(event_filter)  # (0 in tests: at once past the walk)
        if budget is not None and _narrows_beyond_time(event_filter):
            # PostgreSQL's statistics cannot tell a common text term or label glob (walk time)
            # from a rare one (read an index): walk first, as SQLite does.
            walk = event_filter.apply(Event.objects.all(), semijoin="exists").filter(bound)
            try:
                with timebox.within(budget), _walking():
                    return Found(list(walk.order_by(*ordering)[:limit]), rare=False)
            except timebox.OutOfTime:
                pass
            if not event_filter.text and not event_filter.indexed_criteria():
                try:  # no index to read the matches from: walk longer, not the planner's scan
                    with timebox.within(WALK_AGAIN_BUDGET), _walking():
                        return Found(list(walk.order_by(*ordering)[:limit]), rare=False)
                except timebox.OutOfTime:
                    pass
            if event_filter.text and not event_filter.indexed_columns():
                return Found(_newest_by_days(event_filter, bound, limit))
            if _prefixed(event_filter):  # the prefix's matches are rare: read and sort them
                rows = event_filter.apply(Event.objects.all()).filter(bound)
                return Found(list(rows.order_by(*_sorted_after(event_filter))[:limit]), rare=True)
        rows = event_filter.apply(Event.objects.all()).filter(bound)
        return Found(list(rows.order_by(*ordering)[:limit]))
    walk = event_filter.apply(Event.objects.all(), semijoin="exists").filter(bound)
    if not event_filter.indexed_criteria():  # no index to read the matches from: walk
        return _walk_labels(event_filter, walk, after, limit)
    try:
        with timebox.within(WALK_BUDGET):
            return Found(list(walk.order_by(*ordering)[:limit]), rare=False)
    except timebox.OutOfTime:
        pass
    if rows_first and rows_first[2] is None:  # the rows alone answer the filter
        return from_rows(event_filter, rows_first[0], after, limit)
    if not event_filter.indexed_columns() and fts_match(event_filter.text.query) is None:
        # Text alone, a term with no two trigrams in fewer than FEW_ROWS events together (common
        # words): the walk finds them sooner than FTS5 reads their rows (`text_search.fts_match`).
        return Found(list(walk.order_by(*ordering)[:limit]))
    # Sorted by `+occurred`, which no index serves: SQLite reads the matches from the criteria's
    # index and sorts them, rather than walking the occurred index again for the order.
    unindexed = Func(F("occurred"), template="+%(expressions)s", output_field=DateTimeField())
    direction = "desc" if event_filter.descending else "asc"
    ordering = [getattr(unindexed, direction)(), getattr(F("id"), direction)()]
    ids = list(
        by_criteria(event_filter)
        .filter(bound)
        .order_by(*ordering)
        .values_list("id", flat=True)[: RARE_CAP + 1]
    )
    return Found(by_ids(ids[:limit]), rare=True, count=len(ids) if len(ids) <= RARE_CAP else None)


def _names_left_out(
    event_filter: EventFilter, row_q: Q, others: EventFilter | None
) -> tuple[Q, EventFilter | None]:
    """`from_rows`' rows and other criteria, with excluded event names (`exclude_name` the
    only other criterion, as a reader who is not an admin has: `roles.readable` leaves the
    audit trail out) checked on the rows instead of on each row's event, when the window holds
    few events of those names: their ids, read from the (event, occurred) index, are left out
    of the rows (`event_id NOT IN`). Checking each candidate's event by primary key cost twice
    the rows' read (953 candidates at 1M: 4.5 against 2.2 ms)."""
    names = others and others.event
    if not names or names.name or names.prefix or names.exclude_prefix or not names.exclude_name:
        return row_q, others
    if _narrows_beyond_time(others.model_copy(update={"event": None})) or others.distinct:
        return row_q, others
    window = event_filter.occurred
    named = Event.objects.filter(
        event__in=names.exclude_name, occurred__gte=window.since, occurred__lte=window.until
    )
    if named.values("event")[: NAMED_CAP + 1].count() > NAMED_CAP:
        return row_q, others  # many: checked on the candidates' events after all
    return row_q & ~Q(event_id__in=named.values("id")), None


def _walk_labels(
    event_filter: EventFilter, walk: QuerySet, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> Found:
    """A page of a filter without an index of its own (SQLite): walked (resource labels alone
    over the primary resource rows, `walk_rows`), and, when its resource, related or
    any-resource labels imply a term of the search text (`text_search.label_term`), within
    WALK_BUDGET; past it, read from the FTS5 table if those terms narrow it to few rows
    (`text_search.label_fts_match`, `_read_narrowed`), else walked on.

    A label value in no event (a typo, `"Nonexistent*"`) or few walked the whole window: 0.7 s
    at 1M.
    """
    labels = event_filter.labels_alone()

    def walked() -> list[Event]:
        if labels is not None:
            return walk_rows(event_filter, labels, after, limit)
        return list(walk.order_by(*_order_by(event_filter.descending))[:limit])

    specs = _label_specs(event_filter)
    if not any(label_term(k, p) for s in specs for k, ps in s.items() for p in as_list(ps)):
        return Found(walked())
    try:
        with timebox.within(WALK_BUDGET):
            return Found(walked())
    except timebox.OutOfTime:
        pass
    if (match := label_fts_match(specs)) is None:
        return Found(walked())
    bound = keyset_q(*after, event_filter.descending) if after else Q()
    return _read_narrowed(event_filter, Q(FtsRows(match)), bound, limit)


def _label_specs(f: EventFilter) -> list[dict]:
    """The filter's label criteria: its resource's, each related's and each any-resource's."""
    specs = [f.resource.labels] if f.resource and f.resource.labels else []
    specs += [r.labels for r in f._related_list() if r.labels]
    return specs + [a.labels for a in f._any_list() if a.labels]


def _rare_labels(event_filter: EventFilter) -> Q | None:
    """PostgreSQL: for labels without a criterion with an index of its own, when a key's terms
    are in none of the newest events (`text_search.label_search_q`), what narrows the read of
    their matches (the trigram index; empty for exact resource labels, which the planner reads
    from the GIN index on `resource`); None otherwise. Such labels skip the walk: its budget
    (LABEL_WALK_BUDGET) would go by finding too few, as a label value in no event (`us-eats`,
    `Nonexistent*`) walked, then the planner read by regex: 0.4-1.5 s at 1M."""
    f = event_filter
    if connection.vendor != "postgresql" or f.distinct or f.text or f.indexed_criteria():
        return None
    specs = _label_specs(f)
    contained = f.resource.labels if f.resource and f.resource.labels else None
    return label_search_q(specs, contained=contained) if specs else None


def _rare_text(event_filter: EventFilter) -> Sample | None:
    """PostgreSQL: for text without a criterion with an index of its own whose terms the newest
    events hardly hold, what the newest events said (`text_search.rare_text`): its walk
    (WALK_BUDGET) would go by finding too few, as one resource id's term did at 10M (8-9 ms of
    60). None otherwise."""
    f = event_filter
    if connection.vendor != "postgresql" or f.distinct or not f.text or f.indexed_columns():
        return None
    return rare_text(f.text.query)


def _read_narrowed(event_filter: EventFilter, narrowed: Q, bound: Q, limit: int) -> Found:
    """A page, and when it is cheap the count of its matches, read from the events that hold the
    filter's label terms (`narrowed`: the rows of SQLite's FTS5 table,
    `text_search.label_fts_match`, or PostgreSQL's trigram index, `text_search.label_search_q`;
    a necessary condition, not a sufficient one; empty when PostgreSQL's indexes of the
    resource's labels and name serve them), each tested against the whole filter and sorted on
    an `occurred` that no index serves (so neither database walks time instead).

    SQLite reads up to RARE_CAP of their ids (and so counts them), then the page's events by id.
    PostgreSQL reads them a few day partitions at a time (`day_slices`, as `_newest_by_days`
    does for text) until the page is full: its sample saw the terms in few of the newest events,
    not in few of the window's (a value common earlier in the window), and a glob matching a
    tenth of its term's events (`Invoice 42*7`) fills a page from 2-4 of 8 days. The count is
    exact when the page was not filled (every slice read); else the page's density gives the
    total (`events.totals`).
    """
    rows = event_filter.apply(Event.objects.all(), semijoin="exists", by_criteria=True)
    rows = rows.filter(narrowed).filter(bound)
    if connection.vendor == "sqlite":
        occurred = Func(F("occurred"), template="+%(expressions)s", output_field=DateTimeField())
        direction = "desc" if event_filter.descending else "asc"
        ordering = [getattr(occurred, direction)(), getattr(F("id"), direction)()]
        ids = list(rows.order_by(*ordering).values_list("id", flat=True)[: RARE_CAP + 1])
        count, rare = (len(ids) if len(ids) <= RARE_CAP else None), True
    else:
        ids, ordering = [], _sorted_after(event_filter)
        since, until = event_filter.occurred.since, event_filter.occurred.until
        # Until the page is full, not one match more: knowing there is another can cost a slice
        # of 4 days (`Invoice 4242*` at 10M: 18 ms of 45), and a full page's total is then
        # estimated even when every match is on it (flagged; `totals.total_of`).
        full = False
        with serial():
            for lo, hi in stored_days(since, until, event_filter.descending):
                days = rows.filter(occurred__gte=lo, occurred__lte=hi).order_by(*ordering)
                ids += days.values_list("id", flat=True)[: limit - len(ids)]
                if full := len(ids) >= limit:
                    break
        # (Not `rare` past the page: a COUNT by the planner would read the regex over the window.)
        count, rare = (None if full else len(ids)), None
    return Found(by_ids(ids[:limit]), rare=rare, count=count)


def _newest_by_days(
    event_filter: EventFilter, after: Q, limit: int, *, reach: datetime | None = None
) -> list[Event]:
    """Text on PostgreSQL once the walk found too few: the matches read from the trigram index
    a few day partitions at a time, in the filter's order (the newest day, the day before, the 2
    before those, the 4 before those, …: `day_slices`), until the page is full. Newest first,
    the newest day from `reach` first (`rollups.reach`): at 10M, a 0.1 % term's 18.6k
    candidates in the newest day's partition were each rechecked in the table (66-78 ms); from
    the 2 hours that held the page, the planner ANDs them with the occurred BRIN index's pages
    (migration 0017) and rechecks 1,463-1,709 pages (25-29 ms).

    The planner reads every match of the window from the index of each day partition and sorts
    them all; a term in 0.1 % of events (~150 a day at 1M, each of ~2,000 candidates a day
    rechecked in the heap) needs only the newest day or two for a page of 50. Whole UTC days,
    as the partitions are (`events.partitions`), so no partition's index is read twice.
    """
    ordering = _order_by(event_filter.descending)
    since, until = event_filter.occurred.since, event_filter.occurred.until
    found: list[Event] = []
    with serial():
        for lo, hi in stored_days(since, until, event_filter.descending, reach=reach):
            part = event_filter.model_copy(update={"occurred": OccurredFilter(since=lo, until=hi)})
            rows = part.apply(Event.objects.all()).filter(after).order_by(*ordering)
            found += rows[: limit - len(found)]
            if len(found) == limit:
                break
    return found


def _newest_distinct(event_filter: EventFilter, after: Q, limit: int) -> list[Event]:
    """`distinct`: the first `limit` events that are each their resource's first match.

    Walked in the filter's order in chunks, keeping the first event seen of each resource (and,
    past the first page, not a resource that matched before the keyset bound): quick while
    resources vary, which is the common case. Past DISTINCT_BUDGET (a few resources repeated
    throughout), SQL's window over every match answers instead.
    """
    resource = event_filter.resource.model_copy(update={"distinct": False})
    plain = event_filter.model_copy(update={"resource": resource})
    ordering = _order_by(event_filter.descending)
    rows = plain.apply(Event.objects.all(), semijoin="exists").order_by(*ordering)
    found: list[Event] = []
    seen: set[str] = set()
    bound = after
    try:
        with timebox.within(DISTINCT_BUDGET):
            while len(found) < limit:
                chunk = list(rows.filter(bound)[:DISTINCT_CHUNK])
                if not chunk:
                    break
                fresh = [e for e in chunk if not (e.resource_id in seen or seen.add(e.resource_id))]
                if after and fresh:  # resources first matched on an earlier page
                    ids = {e.resource_id for e in fresh}
                    earlier = rows.exclude(after).filter(resource_id__in=ids)
                    shown = set(earlier.values_list("resource_id", flat=True))
                    fresh = [e for e in fresh if e.resource_id not in shown]
                found += fresh
                last = chunk[-1]
                bound = after & keyset_q(last.occurred, last.id, event_filter.descending)
            return found[:limit]
    except timebox.OutOfTime:
        pass
    rows = event_filter.apply(Event.objects.all()).filter(after)
    return list(rows.order_by(*ordering)[:limit])


def explain(event_filter: EventFilter) -> dict[str, str]:
    """The database's plans for the two ways a page is read (see `_newest`) and the count."""
    ordering = _order_by(event_filter.descending)
    walk = event_filter.apply(Event.objects.all(), semijoin="exists").order_by(*ordering)
    if connection.vendor == "sqlite" and (labels := event_filter.labels_alone()) is not None:
        walk = rows_walked(event_filter, labels, None, 50)
    if connection.vendor == "sqlite":  # as `_newest` sorts them
        ordering = [Func(F("occurred"), template="+%(expressions)s", output_field=DateTimeField())]
    with transaction.atomic(), _walking():
        walked = walk[:50].explain()
    return {
        "walk": walked,
        "by_criteria": by_criteria(event_filter).order_by(*ordering)[:50].explain(),
        "count": by_criteria(event_filter).explain(),
    }


def _walk_first(event_filter: EventFilter) -> float | None:
    """How long PostgreSQL walks a page before its planner chooses (None: it plans at once).

    Its statistics cannot estimate the share of a text term, of a label glob (an expression's
    regex gets a fixed guess, and several multiply it down until the planner reads every
    matching row and sorts them rather than walk time) or of several conditions on one resource
    row (a role and an id: on the partitioned log the planner read 50k rows and probed every
    day's partition for each). A text term walks WALK_BUDGET before the trigram index; related
    and any-resource criteria (except ids alone, which the statistics estimate) walk
    LABEL_WALK_BUDGET, and so do resource labels unless another
    criterion has an index of its own, which the planner uses.
    """
    f = event_filter
    if f.text:
        return WALK_BUDGET
    if _plain_row_id(f):
        # A related or any-resource id alone on its row: the rows' statistics on resource_id
        # give its share, so the planner chooses at once (a rare customer id at 1M: 36 ms
        # planned, 44 ms after a walk that found too few).
        return None
    rows = any(r.constrains for r in f._related_list()) or f.any_resource
    if rows or (f.resource and f.resource.labels and not f.indexed_criteria()):
        return LABEL_WALK_BUDGET
    return WALK_BUDGET if _prefixed(f) else None


def _prefixed(f: EventFilter) -> bool:
    """Whether a resource id or event name prefix narrows a filter without text, related or
    any-resource criteria. PostgreSQL estimates a prefix's share from a histogram, which can be
    far off: `acme.order.123` at 1M, 2,975 estimated and 195 found, so its planner walked 256k
    events for the page (116 ms) where reading the 195 from the prefix's index and sorting them
    takes 1 ms. So such a page walks WALK_BUDGET, then reads the matches and sorts them."""
    prefix = (f.resource and f.resource.id_prefix) or (f.event and f.event.prefix)
    return bool(prefix) and not (f.text or f.related or f.any_resource)


def _sorted_after(f: EventFilter) -> list:
    """The filter's order on `occurred + 0`, which no index serves (PostgreSQL): its planner
    reads the matches from their criteria's index and sorts them, rather than walk time."""
    occurred = Func(F("occurred"), template="(%(expressions)s + interval '0 s')")
    occurred = ExpressionWrapper(occurred, output_field=DateTimeField())
    direction = "desc" if f.descending else "asc"
    return [getattr(occurred, direction)(), getattr(F("id"), direction)()]


def _plain_row_id(f: EventFilter) -> bool:
    """Whether a related or any-resource criterion is ids only (no role, prefix or labels)."""
    related = any(
        r.id and not (r.role or r.resources_in_roles or r.labels) for r in f._related_list()
    )
    anything = any(a.id and not (a.id_prefix or a.labels) for a in f._any_list())
    return related or anything


def _walking() -> AbstractContextManager[None]:
    """Read the next statement in the occurred index's order (PostgreSQL): no sort allowed, so
    the planner walks the index and stops at the page, whatever it guesses the matches to be."""
    return local_setting("enable_sort", "off")


def _narrows_beyond_time(event_filter: EventFilter) -> bool:
    f = event_filter
    return not f.distinct and bool(
        f.event or f.resource or f.related or f.any_resource or f.id.id or f.text
    )


def _order_by(descending: bool) -> list:
    if descending:
        return [F("occurred").desc(), F("id").desc()]
    return [F("occurred").asc(), F("id").asc()]
