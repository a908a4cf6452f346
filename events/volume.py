"""Event volume for the feed page: the histogram and the event-name counts, cached.

Counting a week of a busy log costs a scan of every row in it, on every page view. Buckets that
lie wholly in the past hardly change, so each complete bucket's count is cached under its own
start time and only the edges (the partial first bucket, the still-open last ones) are counted
per request. A late event (one that arrives with an old `occurred`) shows in a cached bucket
after at most `BUCKET_TTL`; the rows themselves are always read fresh.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta

import orjson
from django.core.cache import cache
from django.utils import timezone

from events import queries, severity
from events.filters import EventFilter

BUCKET_TTL = 300
NAMES_TTL = 60  # Prefect's UI refreshes its counts every 60 s
# A bucket counts as complete once it ended this long ago: stragglers from clients that batch
# (Prefect's own client sends within a few seconds) have landed by then.
SETTLE = timedelta(seconds=30)


def _key(*parts: object) -> str:
    digest = hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()[:32]
    return f"events.volume:{digest}"


def _criteria(event_filter: EventFilter) -> dict:
    """The filter without its time window: what a bucket's count depends on besides time."""
    data = event_filter.to_json()
    data.pop("occurred", None)
    data.pop("order", None)
    return data


def count_by_time(
    event_filter: EventFilter, *, unit: queries.TimeUnit, interval: float
) -> list[dict]:
    """`queries.count_by_time`, with complete buckets served from the cache.

    Each bucket carries its `count` and `severity`: counts per `events.severity` family, in
    `severity.ORDER` (the histogram stacks them).

    A bucket the window cuts (the first, which starts before `since`) or that has not settled
    (the last) is not cached whole: it is the sum of the next finer unit's buckets over its part
    of the window (`FINER`), which are cached like any other, so that only the minutes at the
    window's edges are counted per request. Counted whole, the 45 minutes of yesterday's first hour in a 24-hour feed at 10M
    events took 53-65 ms of every request with a label or text filter.
    """
    since, until = event_filter.occurred.since, event_filter.occurred.until
    first, step, n = queries.time_buckets(since, until, unit=unit, interval=interval)
    if n == 0:
        return []
    starts = [first + step * i for i in range(n)]
    counts = _counts(event_filter, starts, step, unit, interval)
    out = []
    empty = [0] * len(severity.ORDER)
    for i, start in enumerate(starts):
        by_severity = counts.get(i, empty)
        out.append(
            {
                "value": str(i),
                "count": sum(by_severity),
                "severity": dict(zip(severity.ORDER, by_severity, strict=True)),
                "start": start,
                "end": start + step - timedelta(microseconds=1),
            }
        )
    return out


# The unit whose buckets make up a bucket the window cuts or that has not settled.
FINER: dict[str, queries.TimeUnit] = {"day": "hour", "hour": "minute"}
# At most this many buckets are kept in one cache entry (a filter and a bucket size).
CACHED_BUCKETS = 5000


def _counts(
    event_filter: EventFilter,
    starts: list[datetime],
    step: timedelta,
    unit: queries.TimeUnit,
    interval: float,
) -> dict[int, list[int]]:
    """Counts per severity of the buckets at `starts` (index → counts; empty buckets left out)."""
    since, until = event_filter.occurred.since, event_filter.occurred.until
    settled = timezone.now() - SETTLE
    # One cache entry per filter and bucket size, mapping bucket start → count. Only buckets
    # wholly inside the window and settled are kept: they are the same for every request.
    key = _key("severity", _criteria(event_filter), unit, interval)
    now = time.time()
    # start → (counts per severity, when counted); a count older than BUCKET_TTL is counted again.
    known: dict[str, tuple[list[int], float]] = {
        k: v for k, v in (cache.get(key) or {}).items() if now - v[1] < BUCKET_TTL
    }
    n = len(starts)
    cacheable = {i for i, s in enumerate(starts) if s >= since and s + step <= min(until, settled)}
    counts: dict[int, list[int]] = {}
    for i in cacheable:
        if (hit := known.get(starts[i].isoformat())) is not None:
            counts[i] = hit[0]

    missing = [i for i in range(n) if i not in counts]
    if finer := FINER.get(unit):
        for i in [i for i in missing if i not in cacheable]:
            part = within(event_filter, max(since, starts[i]), min(until, starts[i] + step))
            parts = [b["severity"].values() for b in count_by_time(part, unit=finer, interval=1)]
            counts[i] = [sum(c) for c in zip(*parts, strict=True)] if parts else None
        counts = {i: c for i, c in counts.items() if c is not None}
        missing = [i for i in missing if i in cacheable]
    for lo, hi in _runs(missing):
        window = within(event_filter, max(since, starts[lo]), min(until, starts[hi] + step))
        buckets = queries.count_by_time(window, unit=unit, interval=interval, by_name=True)
        for j, bucket in enumerate(buckets):
            i = lo + j
            if i <= hi:
                counts[i] = list(severity.tally(bucket["names"]).values())
    if added := {starts[i].isoformat(): (counts[i], now) for i in cacheable if i in missing}:
        # Bounded by BUCKET_TTL, and by CACHED_BUCKETS (the newest kept): a sliding window's
        # first buckets, and a cut bucket's finer ones, are asked for again by the next request.
        kept = {**known, **added}
        if len(kept) > CACHED_BUCKETS:
            kept = dict(sorted(kept.items())[-CACHED_BUCKETS:])
        cache.set(key, kept, BUCKET_TTL)
    return counts


def within(event_filter: EventFilter, since: datetime, until: datetime) -> EventFilter:
    """`event_filter` over [since, until] instead of its window."""
    occurred = event_filter.occurred.model_copy(update={"since": since, "until": until})
    return event_filter.model_copy(update={"occurred": occurred})


def _runs(indexes: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs [(lo, hi), …] of sorted indexes, so each run is one query."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def count_by_event(event_filter: EventFilter, *, window_key: str) -> list[dict]:
    """`queries.count_by_event`, cached briefly per window (`window_key`: "24h", or the bounds)."""
    key = _key("names", _criteria(event_filter), window_key)
    rows = cache.get(key)
    if rows is None:
        rows = [
            {"value": r["value"], "count": r["count"]} for r in queries.count_by_event(event_filter)
        ]
        cache.set(key, rows, NAMES_TTL)
    return rows


def window_key(since: datetime, until: datetime, preset: str | None) -> str:
    return preset or f"{since.isoformat()}/{until.isoformat()}"
