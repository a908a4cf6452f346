"""Evaluate triggers against events and the clock: pure, no database and no wall clock.

The algorithm follows Prefect 3.9.1's `server/events/triggers.py` (reference §5.2–5.3):
one bucket per (trigger, for_each key) with start/end/count/last_event; reactive triggers
fire as soon as the count meets the threshold and then debounce until the window ends;
proactive triggers fire at the end of a window when the count stayed under the threshold.

Resolve (Prefect Cloud's `Resolved` state; OSS never resolves): a top-level proactive trigger
that fires opens an `Outage` for its for_each key. While it is open the key notifies no more,
and its windows are not kept; the next expected event for the key ends it with a `Resolved`
firing (stamped at the clock, carrying the firing's labels and the returning event). A
proactive trigger without `after` keeps rolling a key's windows after they met the threshold,
so a key that goes silent fires (Prefect drops them, and a silent key never fires).
The engine keeps `State` in the database and calls `Evaluator.on_event` / `on_tick`;
`simulation.replay` drives the very same code over stored events as the engine does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from automations.triggers.definitions import (
    EXPIRED_BUCKET_BUFFER,
    HELD_EVENTS_RETENTION,
    LOOKBACK,
    NEVER_EVALUATED,
    EventTrigger,
    unique,
)
from automations.triggers.state import RESOLVED, Bucket, Firing, Outage, State
from events.schema import Event


@dataclass
class AutomationSpec:
    """What the evaluator needs of an automation."""

    id: uuid.UUID
    trigger: Any  # EventTrigger | CompoundTrigger | SequenceTrigger
    name: str = ""


class Evaluator:
    """Evaluate a set of automations' triggers against events and the clock.

    `on_event(event, clock=…)` and `on_tick(clock)` return the top-level firings, i.e. the
    ones that run an automation's actions (child firings of composite triggers never do).
    """

    def __init__(self, automations: Iterable[AutomationSpec], state: State | None = None):
        self.state = state or State()
        self.automations: dict[uuid.UUID, AutomationSpec] = {}
        self.triggers: dict[uuid.UUID, Any] = {}
        self.parents: dict[uuid.UUID, Any] = {}  # trigger id → parent composite (None: top)
        self.owner: dict[uuid.UUID, AutomationSpec] = {}  # trigger id → automation
        self.event_triggers: list[EventTrigger] = []
        # Triggers indexed by the exact event names they care about, and by the literal prefix
        # of their glob patterns; the triggers a name selects are cached per name.
        self._by_name: dict[str, list[EventTrigger]] = {}
        self._by_prefix: dict[str, list[EventTrigger]] = {}
        self._for_name: dict[str, list[EventTrigger]] = {}
        for automation in automations:
            self._load(automation)
        self.state.forget_triggers(set(self.triggers))

    def _load(self, automation: AutomationSpec) -> None:
        self.automations[automation.id] = automation

        def visit(trigger: Any, parent: Any) -> None:
            self.triggers[trigger.id] = trigger
            self.parents[trigger.id] = parent
            self.owner[trigger.id] = automation
            if isinstance(trigger, EventTrigger):
                self.event_triggers.append(trigger)
                if not trigger.reactive:
                    self.state.track_ends(trigger.id)
                names = [*trigger.expect, *trigger.after] if trigger.expect else ["*"]
                for name in unique(names):
                    if _is_glob(name):
                        prefix = _literal_prefix(name)
                        bucket = self._by_prefix.setdefault(prefix, [])
                        if trigger not in bucket:
                            bucket.append(trigger)
                    else:
                        bucket = self._by_name.setdefault(name, [])
                        if trigger not in bucket:
                            bucket.append(trigger)
            else:
                for child in trigger.triggers:
                    visit(child, trigger)

        visit(automation.trigger, None)

    def interested(self, event: Event) -> list[EventTrigger]:
        """The event triggers that cover this event (name and resources)."""
        if event.event in NEVER_EVALUATED:
            return []
        index = self._for_name.get(event.event)
        if index is None:
            index = self._candidates(event.event)
        if index.unconditional:
            return index.always  # (shared: not to be changed)
        return [t for t in index.candidates(event) if t.covers_resources(event)]

    def _candidates(self, name: str) -> _LabelIndex:
        """The triggers whose `expect`/`after` names cover this event name, indexed by label."""
        by_id = {t.id: t for t in self._by_name.get(name, [])}
        for prefix, triggers in self._by_prefix.items():
            if name.startswith(prefix):
                by_id.update((t.id, t) for t in triggers)
        found = [t for t in by_id.values() if t.event_name_covered(name)]
        if len(self._for_name) > 10_000:  # bound the cache; names are few in practice
            self._for_name.clear()
        index = self._for_name[name] = _LabelIndex(found)
        return index

    # --- reactive ------------------------------------------------------------------------------

    def on_event(
        self, event: Event, *, clock: datetime, triggers: list[EventTrigger] | None = None
    ) -> list[Firing]:
        """Evaluate one event against every trigger that covers it (reactive evaluation).

        `triggers` is `interested(event)` when the caller has already computed it.
        """
        fired: list[Firing] = []
        in_outage = self.state.in_outage
        for trigger in self.interested(event) if triggers is None else triggers:
            key = trigger.bucketing_key(event)
            self._reactive(trigger, key, event, clock, fired)
            if in_outage and trigger.id in in_outage:
                self._resolve(trigger, key, event, clock, fired)
        return fired

    def _resolve(
        self,
        trigger: EventTrigger,
        key: tuple[str, ...],
        event: Event,
        clock: datetime,
        fired: list[Firing],
    ) -> None:
        """End the key's outage if this is an expected event (the events are back)."""
        if not trigger.expects(event.event):
            return
        outage = self.state.close_outage((trigger.id, key))
        if outage is not None:
            fired.append(
                Firing(
                    trigger=trigger,
                    triggered=clock,
                    triggering_labels=outage.triggering_labels,
                    triggering_event=event,
                    bucket_key=key,
                    state=RESOLVED,
                )
            )

    def _reactive(
        self,
        trigger: EventTrigger,
        key: tuple[str, ...],
        event: Event,
        clock: datetime,
        fired: list[Firing],
    ) -> None:
        state = self.state
        name = event.event
        expects = trigger.expects(name)
        # (The key's window is looked up first: when it is open, as for most events, the
        # window a new one would have is not worked out.)
        bucket = state.buckets.get((trigger.id, key))
        if trigger.after:
            if bucket is None and trigger.starts_after(name):
                # When one event both opens and counts (a heartbeat), it starts at -1 so that it
                # leaves its own window at 0 once evaluated below.
                bucket = self._ensure_bucket(
                    trigger,
                    key,
                    start=event.occurred,
                    end=event.occurred + trigger.within,
                    last_event=event,
                    initial_count=-1 if expects else 0,
                )
            elif bucket is not None and not trigger.starts_after(name):
                bucket = None  # (opened by an `after` event only: held, then looked up below)
        elif expects and bucket is None:
            # The first window starts a lookback before the event, so events of the same
            # moment that arrive slightly out of order still count in it.
            bucket = self._ensure_bucket(
                trigger,
                key,
                start=event.occurred - LOOKBACK,
                end=event.occurred + trigger.within,
                last_event=event,
            )
        if not expects:
            return
        if bucket is None:
            if trigger.holds_expect_events and not self._hold(trigger, key, event, clock):
                return
            bucket = state.bucket(trigger.id, key)
            if bucket is None:
                return
        self._evaluate(trigger, bucket, event.occurred, event, clock, fired)

    # --- proactive -----------------------------------------------------------------------------

    def on_tick(self, clock: datetime) -> list[Firing]:
        """Evaluate proactive triggers whose time has come (the periodic evaluation)."""
        fired: list[Firing] = []
        for trigger in self.event_triggers:
            if trigger.reactive:
                continue
            if self.state.next_runs.get(trigger.id, clock) > clock:
                continue
            self.state.next_runs[trigger.id] = self._proactive(trigger, clock, fired)
        return fired

    def _proactive(self, trigger: EventTrigger, as_of: datetime, fired: list[Firing]) -> datetime:
        run_again_at = as_of + trigger.within
        if not trigger.for_each:
            self._ensure_bucket(
                trigger, (), start=as_of, end=as_of + trigger.within, last_event=None
            )
        # Without `after`, a key's windows roll on after meeting the threshold, so that a key
        # going silent fires (one key, without for_each, is opened afresh on every run).
        rolls = not trigger.after and bool(trigger.for_each)
        state = self.state
        outages = state.outages
        # Only the windows put since the last run can have newly met the threshold, and only
        # those that ended can be due: the state indexes both (`track_ends`), instead of this
        # run looking at every key's window at every tick.
        if not rolls:
            enough = trigger.threshold
            for bucket in state.touched(trigger.id):
                # A window that already has enough events cannot fire; drop it unevaluated.
                if bucket.count >= enough:
                    state.remove(bucket)
        else:
            state.touched(trigger.id)  # (nothing to check: taken to keep the set small)
        due = []
        for bucket in state.due(trigger.id, as_of):
            if outages and bucket.ident in outages:
                # The key is in an outage: it has notified, an expected event resolves it.
                state.remove(bucket)
            else:
                due.append(bucket)
        for bucket in due:
            self._evaluate(trigger, bucket, as_of, None, as_of, fired)
        # The first window still open (every stored one is: those that ended were evaluated,
        # which rolls them on past `as_of`, or removed).
        next_end = state.next_end(trigger.id)
        if next_end is not None and next_end < run_again_at:
            run_again_at = next_end
        return run_again_at

    def sweep(self, clock: datetime) -> None:
        """Delete buckets that ended long ago and held events nobody can need any more."""
        horizon = clock - EXPIRED_BUCKET_BUFFER
        for bucket in [b for b in self.state.buckets.values() if b.end <= horizon]:
            self.state.remove(bucket)
        for ident, held_at in list(self.state.held_at.items()):
            bucket = self.state.buckets.get(ident)
            if held_at < clock - HELD_EVENTS_RETENTION and not (bucket and bucket.end > clock):
                self.state.held.pop(ident, None)
                self.state.held_at.pop(ident, None)
                self.state.dirty_held.add(ident)

    # --- the core ------------------------------------------------------------------------------

    def _evaluate(
        self,
        trigger: EventTrigger,
        bucket: Bucket,
        now: datetime,
        triggering_event: Event | None,
        clock: datetime,
        fired: list[Firing],
    ) -> Bucket | None:
        """Count the event (if any) in the bucket, fire if due, and roll the window.

        `now` is the event's `occurred` for reactive evaluation and the clock for proactive
        evaluation; `clock` is the wall time a firing is stamped with.
        """
        state = self.state
        count = 1 if triggering_event else 0

        if now < bucket.start:
            # Older than the open window: a late event, or one inside the debounce period
            # after a reactive firing. It changes nothing.
            return bucket

        previous_last_event = bucket.last_event
        if count and (trigger.immediate or bucket.start <= now < bucket.end):
            # Counted in place (the bucket is the state's; nothing else holds it).
            bucket.count += count
            bucket.last_event = triggering_event
            state.changed(bucket)
            count = 0

        # Reactive triggers fire as soon as the threshold is met; proactive ones only when the
        # window is over, since a late event could still arrive in time.
        ready_to_fire = trigger.reactive or bucket.end <= now
        meets_threshold = trigger.meets_threshold(bucket.count)

        if ready_to_fire and meets_threshold:
            self._fire(
                Firing(
                    trigger=trigger,
                    triggered=clock,
                    triggering_labels=trigger.labels_for(bucket.key),
                    triggering_event=triggering_event or bucket.last_event,
                    bucket_key=bucket.key,
                ),
                fired,
            )
            state.remove(bucket)
        elif now < bucket.end:
            # The heartbeat pattern: a proactive trigger whose `after` and `expect` share an
            # event restarts its window at every occurrence.
            if (
                triggering_event
                and not trigger.reactive
                and not meets_threshold
                and trigger.starts_after(triggering_event.event)
                and trigger.expects(triggering_event.event)
            ):
                state.remove(bucket)
                last_event = triggering_event
                if (
                    previous_last_event
                    and trigger.expects(previous_last_event.event)
                    and not trigger.starts_after(previous_last_event.event)
                    and previous_last_event.occurred >= triggering_event.occurred
                ):
                    last_event = previous_last_event
                return self._start_bucket(
                    trigger,
                    bucket.key,
                    start=triggering_event.occurred,
                    end=triggering_event.occurred + trigger.within,
                    count=0,
                    last_event=last_event,
                )
            return bucket

        # The window is over (or the trigger fired): start the next one, unless windows are
        # opened by `after` events only.
        if trigger.after:
            state.remove(bucket)
            return None
        if trigger.within == timedelta(0):
            return None

        start = max(bucket.end, now)
        end = start + trigger.within
        if trigger.reactive and count > 0:
            # The event fell after the window it was evaluated against: it opens a fresh one
            # and is counted there, which may fire at once.
            following = self._start_bucket(trigger, bucket.key, start=start, end=end, count=0)
            return self._evaluate(trigger, following, now, triggering_event, clock, fired)
        return self._start_bucket(trigger, bucket.key, start=start, end=end, count=count)

    def _ensure_bucket(
        self,
        trigger: EventTrigger,
        key: tuple[str, ...],
        *,
        start: datetime,
        end: datetime,
        last_event: Event | None,
        initial_count: int = 0,
    ) -> Bucket:
        existing = self.state.bucket(trigger.id, key)
        if existing is not None:
            return existing
        count = initial_count + self._held_in_window(trigger, key, start, end)
        return self.state.put(Bucket(trigger.id, key, start, end, count, last_event))

    def _start_bucket(
        self,
        trigger: EventTrigger,
        key: tuple[str, ...],
        *,
        start: datetime,
        end: datetime,
        count: int,
        last_event: Event | None = None,
    ) -> Bucket:
        count += self._held_in_window(trigger, key, start, end)
        return self.state.put(Bucket(trigger.id, key, start, end, count, last_event))

    # --- held expect events (proactive triggers with `after`) ----------------------------------

    def _hold(self, trigger: EventTrigger, key: tuple[str, ...], event: Event, clock) -> bool:
        """Hold an `expect`-only event for windows opening later over it.

        Returns False when it was already held (evaluating it again would count it twice).
        """
        ident = (trigger.id, key)
        held = self.state.held.setdefault(ident, {})
        if event.id in held:
            return False
        held[event.id] = event.occurred
        newest = max(held.values())
        horizon = newest - max(HELD_EVENTS_RETENTION, trigger.within)
        for event_id in [i for i, occurred in held.items() if occurred < horizon]:
            del held[event_id]
        # Within one `within`-wide slot only the first and last `threshold` events can change
        # an outcome (a count at the threshold already stops a proactive firing).
        slot = _slot_start(event.occurred, trigger.within)
        in_slot = sorted(
            (occurred, i)
            for i, occurred in held.items()
            if slot <= occurred < slot + trigger.within
        )
        keep = {i for _, i in in_slot[: trigger.threshold]} | {
            i for _, i in in_slot[-trigger.threshold :]
        }
        for _, event_id in in_slot:
            if event_id not in keep:
                del held[event_id]
        self.state.held_at[ident] = clock
        self.state.dirty_held.add(ident)
        return True

    def _held_in_window(
        self, trigger: EventTrigger, key: tuple[str, ...], start: datetime, end: datetime
    ) -> int:
        if not trigger.holds_expect_events:
            return 0
        held = self.state.held.get((trigger.id, key), {})
        return sum(1 for occurred in held.values() if start <= occurred < end)

    # --- firing --------------------------------------------------------------------------------

    def _fire(self, firing: Firing, fired: list[Firing]) -> None:
        parent = self.parents.get(firing.trigger.id)
        if parent is None:
            trigger = firing.trigger
            if isinstance(trigger, EventTrigger) and not trigger.reactive:
                ident = (trigger.id, firing.bucket_key)
                if ident in self.state.outages:
                    return  # notified once for this outage already
                self.state.open_outage(
                    ident, Outage(firing.triggered, firing.id, firing.triggering_labels)
                )
            fired.append(firing)
        else:
            self._evaluate_composite(parent, firing, fired)

    def _evaluate_composite(self, parent: Any, firing: Firing, fired: list[Firing]) -> None:
        if parent.num_expected_firings == 1:
            self._fire(
                Firing(
                    trigger=parent,
                    triggered=firing.triggered,
                    triggering_firings=[firing],
                    triggering_event=firing.triggering_event,
                ),
                fired,
            )
            return
        children = self.state.child_firings.setdefault(parent.id, {})
        if parent.within is not None:
            horizon = firing.triggered - parent.within
            for child_id in [c for c, f in children.items() if f.triggered < horizon]:
                del children[child_id]
        # One firing per child trigger: the latest replaces (and moves after) the earlier one.
        children.pop(firing.trigger.id, None)
        children[firing.trigger.id] = firing
        self.state.dirty_children.add(parent.id)
        firings = list(children.values())
        if parent.ready_to_fire(firings):
            children.clear()
            self._fire(
                Firing(
                    trigger=parent,
                    triggered=firing.triggered,
                    triggering_firings=firings,
                    triggering_event=firing.triggering_event,
                ),
                fired,
            )


class _LabelIndex:
    """Triggers indexed by the literal prefix of one positive `match` label pattern.

    With a thousand automations most of them name the resources they care about
    (`"prefect.resource.id": "acme.order.1234*"`, `"acme.region": "eu-west"`); looking those up
    by the event's label values skips the rest instead of testing every trigger. Triggers with
    no such label (no `match`, or only negated or leading-glob patterns) are always candidates.
    The full `covers_resources` check still runs on every candidate.
    """

    def __init__(self, triggers: list[EventTrigger]):
        self.always: list[EventTrigger] = []
        self.by_label: dict[str, dict[str, list[EventTrigger]]] = {}
        self.lengths: dict[str, list[int]] = {}
        for trigger in triggers:
            best = None
            for label, patterns in trigger.match.items():
                values = [patterns] if isinstance(patterns, str) else patterns
                if not values or any(v.startswith("!") for v in values):
                    continue
                prefixes = [_literal_prefix(v) for v in values]
                shortest = min(len(p) for p in prefixes)
                if shortest and (best is None or shortest > best[0]):
                    best = (shortest, label, prefixes)
            if best is None:
                self.always.append(trigger)
                continue
            _, label, prefixes = best
            table = self.by_label.setdefault(label, {})
            for prefix in set(prefixes):
                table.setdefault(prefix, []).append(trigger)
        for label, table in self.by_label.items():
            self.lengths[label] = sorted({len(p) for p in table})
        # Every trigger covers every event of the name (no `match` nor `match_related`): the
        # candidates are the answer, without a look at the event's resources.
        self.unconditional = not self.by_label and not any(
            t.match or t.match_related for t in self.always
        )

    def candidates(self, event: Event) -> list[EventTrigger]:
        if not self.by_label:
            return self.always  # without reading the labels: a stored event decodes them on use
        labels = event.resource
        found = list(self.always)
        for label, table in self.by_label.items():
            value = labels.get(label)
            if value is None:
                continue
            for length in self.lengths[label]:
                if length > len(value):
                    break
                found += table.get(value[:length], ())
        if len(found) > 1:
            found = list({t.id: t for t in found}.values())
        return found


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _literal_prefix(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern


def _slot_start(occurred: datetime, width: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    if width <= timedelta(0):
        return occurred
    return epoch + (occurred - epoch) // width * width
