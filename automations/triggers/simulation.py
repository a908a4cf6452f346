"""Replay the engine over stored events: the one simulation behind preview and explain.

The engine reads the log in (received, id) order and evaluates each event with its clock at the
moment it reads it, which is the event's `received` when it keeps up; followers wait for their
leader (`Ordering`); the proactive tick runs every `tick`, after the events read at the same
moment; a disabled automation has no trigger state, and when enabled again starts afresh; with
nothing enabled and no follower waiting, the engine skips over the log without admitting events. The
replay does exactly that with the engine's own `Evaluator`, so the firings it reports are the
ones the engine makes (a differential test holds the two together).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from automations.triggers.definitions import SWEEP_EVERY
from automations.triggers.evaluator import AutomationSpec, Evaluator
from automations.triggers.ordering import Ordering
from automations.triggers.state import Firing
from events.schema import Event

TICK = timedelta(seconds=5)


@dataclass
class Replay:
    """What a replay found: the firings in [since, until], and what it evaluated."""

    firings: list[Firing] = field(default_factory=list)
    events: int = 0  # events read
    evaluated: int = 0  # events the trigger covered while the automation was enabled


def read_order(event: Event) -> tuple[datetime, str]:
    """The engine's read order: (received, id), as the (received, id) index sorts."""
    return (event.received or event.occurred, event.id.hex)


def replay(
    trigger: Any,
    events: Iterable[Event],
    *,
    since: datetime,
    until: datetime,
    start: datetime | None = None,
    tick: timedelta = TICK,
    enabled: bool = True,
    changes: Sequence[tuple[datetime, bool]] = (),
    leader_read: Callable[[uuid.UUID], tuple[datetime, str] | None] | None = None,
    on_firing: Callable[[Firing, Evaluator], None] | None = None,
    observe: Callable[[Event, Evaluator | None], Callable[[list[Firing]], None] | None]
    | None = None,
    cut_at: Callable[[], datetime | None] | None = None,
) -> Replay:
    """The firings the engine would have made for this trigger, from `start` to `until`.

    `events` are in `read_order`; the replay begins at `start` (default `since`: earlier to let
    windows open before `since`) and reports the firings stamped in [since, until]. `enabled` is
    the automation's state at `start` and `changes` the (time, enabled) changes after it.
    `leader_read` gives the read position of a `follows` leader that is not among `events`
    (None: not stored, so the follower waits as in the engine). `observe(event, evaluator)` is
    called as each admitted event is about to be evaluated (evaluator None: paused); what it
    returns, if anything, is called with the firings the event made (explain reads the state
    around one event this way). `cut_at()`, asked once the events run out, says where their
    read was cut short (None: it was not); the replay then ends there instead of at `until`.
    """
    start = since if start is None else start
    spec = AutomationSpec(id=uuid.uuid4(), trigger=trigger)
    result = Replay()
    pending_changes = sorted(c for c in changes if start < c[0] <= until)
    evaluator = Evaluator([spec]) if enabled else None
    proactive = any(not t.reactive for t in Evaluator([spec]).event_triggers)
    ordering = Ordering()
    read: set[int] = set()  # the numbers of the ids of the events read
    parked: set[uuid.UUID] = set()
    next_tick = start
    next_sweep = start
    last_read: Event | None = None  # the engine's read position: the last event read

    def apply_changes(now: datetime) -> None:
        nonlocal evaluator
        while pending_changes and pending_changes[0][0] <= now:
            _, on = pending_changes.pop(0)
            if on and evaluator is None:
                evaluator = Evaluator([spec])  # a fresh state, as the engine's after a pause
            elif not on:
                evaluator = None

    def record(fired: list[Firing]) -> None:
        for firing in fired:
            if since <= firing.triggered <= until:
                result.firings.append(firing)
                if on_firing is not None:
                    on_firing(firing, evaluator)

    def evaluate(event: Event, now: datetime) -> None:
        after = observe(event, evaluator) if observe is not None else None
        if evaluator is None:
            return
        triggers = evaluator.interested(event)
        fired = evaluator.on_event(event, clock=now, triggers=triggers) if triggers else []
        if triggers:
            result.evaluated += 1
            record(fired)
        if after is not None:
            after(fired)

    def leader_seen(leader: uuid.UUID) -> bool:
        if leader in parked:
            return False
        if leader.int in read:
            return True
        at = leader_read(leader) if leader_read else None
        position = read_order(last_read) if last_read is not None else (start, "")
        return at is not None and at < position

    def run_tick(now: datetime) -> None:
        nonlocal next_sweep
        apply_changes(now)
        for event in ordering.lost(now):
            parked.discard(event.id)
            evaluate(event, now)
        if evaluator is not None:
            record(evaluator.on_tick(now))
        if now >= next_sweep:  # on the engine's schedule, paused or not
            if evaluator is not None:
                evaluator.sweep(now)
            next_sweep = now + SWEEP_EVERY

    def skip_ticks(before: datetime) -> bool:
        """Run the ticks before `before` at once when they can only sweep: a reactive trigger,
        no follower waiting, no pause or resume among them. Only the last sweep matters then
        (each one removes what an earlier one would). False: tick one by one."""
        nonlocal next_tick, next_sweep
        if proactive or parked or (pending_changes and pending_changes[0][0] < before):
            return False
        count = -(-(before - next_tick) // tick)  # the ticks at next_tick + i·tick < before
        if count <= 0:
            return True
        last_tick = next_tick + (count - 1) * tick
        first = next_tick + max(-(-(next_sweep - next_tick) // tick), 0) * tick
        if first <= last_tick:
            every = -(-SWEEP_EVERY // tick) * tick  # a sweep every so many ticks after it
            swept = first + (last_tick - first) // every * every
            if evaluator is not None:
                evaluator.sweep(swept)
            next_sweep = swept + SWEEP_EVERY
        next_tick = last_tick + tick
        return True

    events_read = 0
    for event in events:
        now = event.received or event.occurred
        if now > until:
            break
        # (The checks in front of each call spare a call per event when it has nothing to do:
        # most events of a busy log come between two ticks.)
        if next_tick < now and not skip_ticks(now):
            while next_tick < now:
                run_tick(next_tick)
                next_tick += tick
        if pending_changes:
            apply_changes(now)
        events_read += 1
        last_read = event
        read.add(event.id.int)  # (by its number: a UUID's own hash is a Python call)
        if evaluator is None and not parked:
            continue  # the engine skips over the log while nothing is enabled or waiting
        if event.follows is None and not ordering.waiting:
            evaluate(event, now)  # (`ordering.admit`'s usual case, without the call)
            continue
        released = ordering.admit(event, now, leader_seen)
        if not released:
            parked.add(event.id)
            continue
        for e in released:
            if parked:
                parked.discard(e.id)
            evaluate(e, now)
    result.events = events_read
    cut = cut_at() if cut_at is not None else None
    if cut is not None:
        until = min(until, cut)  # (`record` reads it too: nothing is reported past the cut)
    while next_tick <= until:
        if not proactive and not parked:
            break  # with no event left, a reactive trigger cannot fire
        run_tick(next_tick)
        next_tick += tick
    return result
