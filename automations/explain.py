"""Why an automation did or did not fire, and how often it would have: the pure trigger code
run over what is stored."""

from __future__ import annotations

import gc
import heapq
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from pydantic import ValidationError

from automations.explain_state import Watch, absences, trigger_paths
from automations.models import Automation, EngineCursor, Firing
from automations.triggers import (
    MAX_FOLLOWER_DEPTH,
    NEVER_EVALUATED,
    Bucket,
    EventTrigger,
    Replay,
    TriggerInvalid,
    parse_trigger,
    read_order,
    replay,
)
from automations.triggers import explain as explain_clauses
from events import queries
from events.filters import EventFilter, EventNameFilter, OccurredFilter
from events.models import Event as StoredEvent
from events.schema import Event

# The most events one replay reads; past it the replay stops at the last event read.
REPLAY_MAX_EVENTS = 1_000_000
# Events per read of the log: a replay holds a page at a time, whatever the range.
READ_PAGE = 20_000
# How far before `since` the replay starts, so that windows open at `since` are as the engine had
# them: the longest window of the trigger, at most this.
WARMUP_CAP = timedelta(hours=24)


def explain_stored(automation: Automation, row: StoredEvent) -> dict[str, Any]:
    """Each clause of the automation's trigger against a stored event, what held at the event's
    time (replayed: windows, counts, debounce, composite children), and what happened."""
    trigger = parse_trigger(automation.trigger)
    event = row.as_schema()
    event_triggers = [t for t in trigger.all_triggers() if isinstance(t, EventTrigger)]
    covered = any(t.covers(event) for t in event_triggers) and event.event not in NEVER_EVALUATED
    # Paused or not when the engine read the event, from its history: not as it is today.
    enabled, _ = _enabled_history(automation, row.received)
    watch = Watch(trigger, event)
    if covered and enabled and row.received is not None:
        replay_stored(
            trigger, since=row.received, until=row.received, automation=automation, observe=watch
        )
    paths = {child.id: path for path, child in trigger_paths(trigger)}

    def bucket_for(child: EventTrigger, key: tuple[str, ...]) -> Bucket | None:
        window = watch.before.get(paths.get(child.id, ""))  # as it was just before the event
        if not window:
            return None
        start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
        return Bucket(child.id, key, start, end, window["count"])

    clauses = explain_clauses(trigger, event, bucket_for=bucket_for)
    firings = [
        f
        for f in Firing.objects.filter(automation=automation).only("id", "triggered", "event_ids")[
            :1000
        ]
        if str(event.id) in f.event_ids
    ]
    cursor = EngineCursor.objects.filter(name=EngineCursor.DEFAULT).first()
    evaluated = bool(
        cursor
        and cursor.received
        and (row.received, str(row.id)) <= (cursor.received, str(cursor.event_id))
    )
    at_event = watch.report()
    if firings:
        verdict = "It fired for this event."
    elif not enabled:
        verdict = (
            "It did not fire: the automation was disabled when the event arrived."
            if automation.enabled
            else "It did not fire: the automation is disabled (and was when the event arrived)."
        )
    elif not covered:
        failing = next((c for c in clauses if c.passed is False), None)
        verdict = "It did not fire: the event does not match"
        verdict += (
            f" ({failing.name}: expected {failing.expected}, got {failing.actual})."
            if failing
            else "."
        )
    elif not evaluated:
        verdict = "The engine has not evaluated this event yet."
    elif at_event["replayed"]:
        verdict = "It did not fire: " + at_event["reason"]
    else:
        verdict = (
            "The event matched, but the engine did not evaluate it with the trigger (a follower "
            "still waiting for its leader, or outside the stored log)."
        )
    return {
        "automation": str(automation.id),
        "event": str(event.id),
        "enabled": enabled,
        "matched": covered,
        "evaluated": evaluated,
        "fired": bool(firings),
        "firings": [{"id": str(f.id), "triggered": f.triggered.isoformat()} for f in firings],
        "verdict": verdict,
        "clauses": [c.to_json() for c in clauses],
        "at_event": at_event,
    }


def absences_of(firing: Firing) -> list[str]:
    """Which proactive windows of a firing ended too empty (explain_state.absences)."""
    try:
        trigger = parse_trigger(firing.automation.trigger)
    except TriggerInvalid:
        return []
    return absences(trigger, firing.firing)


CANDIDATES = 20  # recent events the explain page offers
CANDIDATE_DAYS = 7


def candidates(automation: Automation, *, limit: int = CANDIDATES) -> list[StoredEvent]:
    """Recent stored events the trigger covers, newest first: the explain page's choices."""
    trigger = parse_trigger(automation.trigger)
    covering = [t for t in trigger.all_triggers() if isinstance(t, EventTrigger)]
    names, prefixes = _names(trigger) or (None, [])
    occurred = OccurredFilter(since=timezone.now() - timedelta(days=CANDIDATE_DAYS))
    try:
        by_name = (
            None if names is None else EventNameFilter(name=names or None, prefix=prefixes or None)
        )
        event_filter = EventFilter(occurred=occurred, event=by_name)
    except ValidationError:  # more names than a filter takes: look at every name
        event_filter = EventFilter(occurred=occurred)
    rows = queries.first_page(event_filter, limit=limit * 5, total=0).events
    return [r for r in rows if any(t.covers(r.as_schema()) for t in covering)][:limit]


def _names(trigger) -> tuple[list[str], list[str]] | None:
    """(names, prefixes) the trigger can count, to narrow the read; None: any name may count."""
    names: list[str] = []
    prefixes: list[str] = []
    for child in trigger.all_triggers():
        if not isinstance(child, EventTrigger):
            continue
        if not child.expect:
            return None
        for pattern in [*child.expect, *child.after]:
            if not any(c in pattern for c in "*?["):
                names.append(pattern)
            elif pattern.endswith("*") and not any(c in pattern[:-1] for c in "*?["):
                prefixes.append(pattern[:-1])
            else:
                return None
    return names, prefixes


def _reads_labels(trigger) -> bool:
    """Whether evaluating the trigger reads events' labels (`match`, `match_related`,
    `for_each`); a trigger that does not is replayed without reading them."""
    return any(
        isinstance(t, EventTrigger) and (t.match or t.match_related or t.for_each)
        for t in trigger.all_triggers()
    )


def _warmup(trigger) -> timedelta:
    windows = [t.within for t in trigger.all_triggers() if getattr(t, "within", None)]
    return min(max(windows, default=timedelta(0)), WARMUP_CAP)


@dataclass
class StoredReplay:
    """A replay over the stored log, with the span it covered."""

    replay: Replay
    since: datetime  # `since` clipped to where the stored log begins
    until: datetime  # `until`, or the last event read when the read was cut short
    horizon: datetime | None  # where the stored log begins (None: nothing stored)
    truncated: bool


def replay_stored(
    trigger,
    *,
    since: datetime,
    until: datetime,
    automation: Automation | None = None,
    budget: float | None = None,
    page: int = READ_PAGE,
    **kwargs,
) -> StoredReplay:
    """Replay the engine over the stored events for this trigger, clipped to the stored log.

    With `automation`, its enabled/disabled history (its `prefect.automation.*` events) is
    honoured; a bare trigger is taken as enabled throughout. The log is read `page` events at a
    time as the replay goes; with `budget` (seconds), the read stops at the first page that ends
    past it, and the answer covers [since, last event read] (`truncated`), as it does past
    `REPLAY_MAX_EVENTS`.
    """
    horizon = queries.oldest_received()
    if horizon is None or horizon > until:
        return StoredReplay(Replay(), since=until, until=until, horizon=horizon, truncated=False)
    since = max(since, horizon)
    start = max(since - _warmup(trigger), horizon)
    names, prefixes = _names(trigger) or (None, ())
    log = _StoredLog(
        start=start,
        until=until,
        names=names,
        prefixes=prefixes,
        labels=_reads_labels(trigger),
        page=page,
        deadline=None if budget is None else time.monotonic() + budget,
    )
    enabled, history = (True, []) if automation is None else _enabled_history(automation, start)
    with _collector_paused():
        result = replay(
            trigger,
            log,
            since=since,
            until=until,
            start=start,
            enabled=enabled,
            changes=history,
            leader_read=log.positions.get,
            cut_at=lambda: log.cut,
            tick=settings.EVENTSITE_ENGINE_TICK,
            **kwargs,
        )
    if log.cut is not None:  # cut short: the answer covers what was read
        until = log.cut
        since = min(since, until)
    return StoredReplay(
        result, since=since, until=until, horizon=horizon, truncated=log.cut is not None
    )


_paused = 0  # replays running with the cyclic garbage collector paused
_paused_lock = threading.Lock()
_resume = False  # whether the collector was enabled when the first of them paused it


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a replay runs (in any thread), and resume it
    when the last one ends.

    A replay allocates a few objects per event read (rows, events, windows), a page of 20,000
    events at a time, and holds them while it evaluates the page; every few hundred allocations
    the collector ran and, as they survived into its older generations, walked the whole
    process's heap again and again: about a third of a broad preview's CPU (issue 12's profile).
    What a replay allocates holds no cycles (reference counting frees it); cyclic garbage made
    elsewhere meanwhile waits for the collector's next run, at most a replay's length later.
    """
    global _paused, _resume
    with _paused_lock:
        _paused += 1
        if _paused == 1:
            _resume = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


@dataclass
class _StoredLog:
    """The stored events of [start, until] the trigger may look at, in the engine's read order,
    read a page at a time (memory stays bounded over any range); the leaders their followers
    wait for are merged in at their place (a leader read in the span releases its followers, as
    in the engine, even when the trigger does not cover it), and `positions` holds the read
    position of every leader asked for. Stops past `REPLAY_MAX_EVENTS` or `deadline`
    (a `time.monotonic()` value): `cut` is then the last event read."""

    start: datetime
    until: datetime
    names: list[str] | None
    prefixes: Sequence[str]
    labels: bool = True  # False: the events' labels are read only if asked for
    page: int = READ_PAGE
    deadline: float | None = None
    cut: datetime | None = None
    positions: dict[uuid.UUID, tuple[datetime, str]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Event]:
        pending: list[tuple[tuple[datetime, str], Event]] = []  # leaders ahead of the page
        merged: set[uuid.UUID] = set()  # leaders merged in: skipped when the page reaches them
        after: tuple[datetime, uuid.UUID] | None = None
        passed = (self.start, "")  # the read position the previous pages reached
        read = 0
        while True:
            page = self._page(after, min(self.page, REPLAY_MAX_EVENTS - read))
            if not page:
                break
            after = (page[-1].received, page[-1].id)
            read += len(page)
            for leader in self._leaders(page):
                # (A leader the read has passed is not merged: nobody waited for it, or it
                # would have been found with its follower's page.)
                if read_order(leader) > passed and leader.id not in merged:
                    merged.add(leader.id)
                    heapq.heappush(pending, (read_order(leader), leader))
            for event in page:
                while pending and pending[0][0] < read_order(event):
                    yield heapq.heappop(pending)[1]
                if not merged or event.id not in merged:
                    yield event
            passed = read_order(page[-1])
            stop = read >= REPLAY_MAX_EVENTS or (
                self.deadline is not None and time.monotonic() >= self.deadline
            )
            if stop and self._page(after, 1):
                self.cut = page[-1].received  # more is stored: the answer ends here
                return
        for _, leader in sorted(pending, key=lambda p: p[0]):
            yield leader

    def _page(self, after, limit: int) -> list[Event]:
        return queries.received_in(
            self.start,
            self.until,
            names=self.names,
            prefixes=self.prefixes,
            after=after,
            labels=self.labels,
            limit=limit,
        )

    def _leaders(self, page: list[Event]) -> list[Event]:
        """The stored leaders (and theirs) of the page's followers, received in the span."""
        found: list[Event] = []
        wanted = {e.follows for e in page if e.follows}
        if not wanted:
            return found  # (most pages of most logs: no event follows another)
        known = {e.id for e in page} | set(self.positions)
        wanted -= known
        for _ in range(MAX_FOLLOWER_DEPTH):
            if not wanted:
                break
            self.positions.update(queries.read_positions(wanted))
            leaders = [
                e
                for e in queries.events_by_ids(wanted)
                if self.start <= (e.received or self.start) <= self.until
            ]
            found += leaders
            known |= wanted
            wanted = {e.follows for e in leaders if e.follows} - known
        return found


def _enabled_history(
    automation: Automation, start: datetime
) -> tuple[bool, list[tuple[datetime, bool]]]:
    """Whether the automation was enabled at `start`, and its changes after, from its events."""
    states = [
        (e.received, bool(e.payload.get("enabled", True)))
        for e in queries.lifecycle(automation.resource_id, names=LIFECYCLE_EVENTS)
    ]
    before = [on for at, on in states if at <= start]
    if before:
        enabled = before[-1]
    elif states or automation.created > start:
        enabled = False  # created after `start`; its first event enables it
    else:
        enabled = automation.enabled  # older than the stored log: its state now
    return enabled, [(at, on) for at, on in states if at > start]


LIFECYCLE_EVENTS = ("prefect.automation.created", "prefect.automation.updated")


def preview(trigger_data: Any, *, since: datetime, until: datetime | None = None) -> dict[str, Any]:
    """The firings this trigger would have made over the stored events of [since, until]."""
    trigger = parse_trigger(trigger_data)
    # Ids of its own, as a saved trigger gets: the evaluator finds a child's parent by id, and a
    # client's repeated ids would send it round in circles.
    trigger.reset_ids()
    now = timezone.now()
    until = min(until or now, now)  # nothing is stored after now
    since = min(since, until)
    # A preview of a long range is cut short where the read passes the query timeout: the
    # answer says so (`truncated`, `until`), where a single read would have been stopped (503).
    budget = settings.EVENTSITE_QUERY_TIMEOUT.total_seconds() or None
    # The collector stays paused until the replay's objects are gone, not only while it runs:
    # resumed with tens of thousands of firings (and their events) alive and never looked at,
    # its first runs walked them all, a third of the heartbeat preview's time.
    with _collector_paused():
        found = replay_stored(trigger, since=since, until=until, budget=budget)
        fired = [f for f in found.replay.firings if not f.resolved]
        answer = {
            "firings": [_previewed(f) for f in fired],
            "count": len(fired),
            "resolved": [_previewed(f) for f in found.replay.firings if f.resolved],
            "since": found.since.isoformat(),
            "until": found.until.isoformat(),
            "horizon": found.horizon.isoformat() if found.horizon else None,
            "events": found.replay.events,
            "truncated": found.truncated,
        }
        del found, fired
    return answer


def _previewed(firing) -> dict[str, Any]:
    event = firing.triggering_event
    return {
        "occurred": firing.triggered.isoformat(),
        "triggering_labels": firing.triggering_labels,
        "triggering_event": str(event.id) if event else None,
    }
