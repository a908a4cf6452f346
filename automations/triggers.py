"""Trigger semantics: Prefect's event, compound and sequence triggers as pure code.

No database and no wall clock in here: every function takes the state it reads and writes
(`State`) and the time it evaluates at. The engine keeps `State` in the database and calls
`Evaluator.on_event` / `Evaluator.on_tick`; the form's preview and the "why did it fire"
page run the very same code over stored events.

The algorithm follows Prefect 3.9.1's `server/events/triggers.py` (reference §5.2–5.3):
one bucket per (trigger, for_each key) with start/end/count/last_event; reactive triggers
fire as soon as the count meets the threshold and then debounce until the window ends;
proactive triggers fire at the end of a window when the count stayed under the threshold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from events.filters import glob_matches, labels_match
from events.schema import Event

# Events that occurred up to this long before the first one of a window still count in it, so
# events that arrive slightly out of order are not lost (Prefect's PRECEDING_EVENT_LOOKBACK).
LOOKBACK = timedelta(minutes=15)
# Proactive triggers need a window at least this long; 0 (or none) means this.
PROACTIVE_MINIMUM_WITHIN = timedelta(seconds=10)
# Buckets that ended this long ago are deleted by the periodic sweep.
EXPIRED_BUCKET_BUFFER = timedelta(seconds=60)
# Held `expect` events (proactive triggers with `after`) are kept this long.
HELD_EVENTS_RETENTION = 2 * LOOKBACK
# Followers wait at most this long for the event they follow (reference §1.5).
FOLLOWER_WAIT = LOOKBACK
MAX_FOLLOWER_DEPTH = 20
NEVER_EVALUATED = frozenset({"prefect.log.write"})
TRIGGER_TYPES = ("event", "compound", "sequence")

Patterns = str | list[str]
ResourceSpec = dict[str, Patterns]


# --- trigger definitions -------------------------------------------------------------------------


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)

    def all_triggers(self) -> list[AnyTrigger]:
        return [self]  # type: ignore[list-item]

    def reset_ids(self) -> None:
        """Give this trigger and every nested one a new id (the API regenerates them)."""
        for trigger in self.all_triggers():
            trigger.id = uuid.uuid4()

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {"type": data.pop("type"), **data}


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class EventTrigger(_Trigger):
    """Fire on the presence (Reactive) or absence (Proactive) of matching events."""

    type: Literal["event"] = "event"
    match: ResourceSpec = Field(default_factory=dict)
    match_related: ResourceSpec | list[ResourceSpec] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    for_each: list[str] = Field(default_factory=list)
    posture: Literal["Reactive", "Proactive"]
    threshold: int = Field(default=1, ge=1)
    within: timedelta = Field(default=timedelta(0), validate_default=True)
    # (expect|after, event name) → matches: event names repeat, globbing them again is waste
    _names: dict = PrivateAttr(default_factory=dict)

    @field_validator("after", "expect", "for_each")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("within", mode="before")
    @classmethod
    def _within_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("`within` must be a number of seconds or a duration, not null")
        return value

    @field_validator("within")
    @classmethod
    def _proactive_minimum(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value < timedelta(0):
            raise ValueError("`within` must not be negative")
        if info.data.get("posture") == "Proactive":
            if value == timedelta(0):
                return PROACTIVE_MINIMUM_WITHIN
            if value < PROACTIVE_MINIMUM_WITHIN:
                raise ValueError(
                    "`within` for Proactive triggers must be greater than or equal to 10 seconds"
                )
        return value

    @field_serializer("within")
    def _within_seconds(self, value: timedelta) -> float:
        return value.total_seconds()

    # --- semantics -----------------------------------------------------------------------------

    @property
    def reactive(self) -> bool:
        return self.posture == "Reactive"

    @property
    def immediate(self) -> bool:
        """A reactive trigger with no window counts every event at once."""
        return self.reactive and self.within == timedelta(0)

    @property
    def holds_expect_events(self) -> bool:
        return not self.reactive and bool(self.after)

    def related_specs(self) -> list[ResourceSpec]:
        if isinstance(self.match_related, list):
            return self.match_related
        return [self.match_related]

    def event_name_covered(self, name: str) -> bool:
        """Whether the name is one this trigger looks at (`expect` ∪ `after`; empty: any)."""
        if not self.expect:
            return bool(name)  # Prefect's pattern for "any event" is `.+`
        return any(glob_matches(p, name) for p in self.expect) or self.starts_after(name)

    def covers(self, event: Event) -> bool:
        return self.event_name_covered(event.event) and self.covers_resources(event)

    def covers_resources(self, event: Event) -> bool:
        if self.match and not labels_match(self.match, event.resource):
            return False
        for spec in self.related_specs():
            if spec and not any(labels_match(spec, r) for r in event.related):
                return False
        return True

    def starts_after(self, name: str) -> bool:
        found = self._names.get(("after", name))
        if found is None:
            found = self._names[("after", name)] = any(glob_matches(p, name) for p in self.after)
        return found

    def expects(self, name: str) -> bool:
        if not self.expect:
            return True
        found = self._names.get(("expect", name))
        if found is None:
            found = self._names[("expect", name)] = any(glob_matches(p, name) for p in self.expect)
        return found

    def bucketing_key(self, event: Event) -> tuple[str, ...]:
        return tuple(find_resource_label(event, label) or "" for label in sorted(self.for_each))

    def labels_for(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(sorted(self.for_each), key, strict=False))

    def meets_threshold(self, count: int) -> bool:
        if self.reactive:
            return count >= self.threshold
        return count < self.threshold


class _CompositeTrigger(_Trigger):
    triggers: list[AnyTrigger] = Field(min_length=1)
    within: timedelta | None = None

    @field_validator("within")
    @classmethod
    def _within_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("`within` must not be negative")
        return value

    @field_serializer("within")
    def _within_seconds(self, value: timedelta | None) -> float | None:
        return None if value is None else value.total_seconds()

    def all_triggers(self) -> list[AnyTrigger]:
        return [self, *(t for child in self.triggers for t in child.all_triggers())]  # type: ignore[list-item]

    @property
    def num_expected_firings(self) -> int:
        return len(self.triggers)

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        raise NotImplementedError


class CompoundTrigger(_CompositeTrigger):
    """Fire when `require` (any, all or N) of the child triggers have fired."""

    type: Literal["compound"] = "compound"
    require: int | Literal["any", "all"]

    @field_validator("require")
    @classmethod
    def _require_in_range(cls, value: int | str, info: ValidationInfo) -> int | str:
        if isinstance(value, int):
            children = info.data.get("triggers")
            if value < 1:
                raise ValueError("`require` must be at least 1")
            if children is not None and value > len(children):
                raise ValueError(
                    f"`require` must be at most the number of triggers ({len(children)})"
                )
        return value

    @property
    def num_expected_firings(self) -> int:
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        return int(self.require)

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        return len(firings) >= self.num_expected_firings


class SequenceTrigger(_CompositeTrigger):
    """Fire when every child trigger has fired, in the listed order."""

    type: Literal["sequence"] = "sequence"

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        actual = [f.trigger.id for f in sorted(firings, key=lambda f: f.triggered)]
        return actual == [t.id for t in self.triggers]


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type")
    return getattr(value, "type", None)


AnyTrigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[CompoundTrigger, Tag("compound")]
    | Annotated[SequenceTrigger, Tag("sequence")],
    Discriminator(
        _trigger_tag,
        custom_error_type="invalid_trigger_type",
        custom_error_message=(
            "`type` must be one of event, compound, sequence "
            "(metric triggers are a Prefect Cloud feature)"
        ),
    ),
]
_CompositeTrigger.model_rebuild()
CompoundTrigger.model_rebuild()
SequenceTrigger.model_rebuild()


class _TriggerDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trigger: AnyTrigger


def parse_trigger(data: Any) -> EventTrigger | CompoundTrigger | SequenceTrigger:
    """Validate trigger JSON; raise `TriggerInvalid` with field-level errors (`trigger.…`)."""
    if not isinstance(data, dict):
        raise TriggerInvalid([{"field": "trigger", "message": "must be a JSON object"}])
    try:
        return _TriggerDocument.model_validate({"trigger": data}).trigger
    except ValidationError as exc:
        raise TriggerInvalid(validation_errors(exc)) from None


class TriggerInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def validation_errors(exc: ValidationError, *, prefix: tuple = ()) -> list[dict[str, str]]:
    """Field-level messages from a pydantic error, without the union tags in the paths.

    A discriminated union puts the tag (`event`, `compound`, …) into each location; the user
    wrote `trigger.within`, not `trigger.event.within`.
    """
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        cleaned: list[str] = []
        for i, part in enumerate(loc):
            previous = loc[i - 1] if i else None
            if part in TRIGGER_TYPES and (previous == "trigger" or isinstance(previous, int)):
                continue
            cleaned.append(str(part))
        if prefix:
            cleaned = [*map(str, prefix), *cleaned]
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append({"field": ".".join(cleaned) or "trigger", "message": message})
    return out


def find_resource_label(event: Event, label: str) -> str | None:
    """A label of the primary resource, or `related:<role>:<label>` of the first in that role."""
    directive, _, related_label = label.rpartition(":")
    directive, _, role = directive.partition(":")
    if directive == "related":
        for related in event.related:
            if related.get("prefect.resource.role") == role:
                return related.get(related_label)
        return None
    return event.resource.get(label)


# --- state ---------------------------------------------------------------------------------------

BucketId = tuple[uuid.UUID, tuple[str, ...]]


@dataclass
class Bucket:
    """The evaluation window of one trigger for one for_each key."""

    trigger_id: uuid.UUID
    key: tuple[str, ...]
    start: datetime
    end: datetime
    count: int = 0
    last_event: Event | None = None

    @property
    def ident(self) -> BucketId:
        return (self.trigger_id, self.key)


@dataclass
class Firing:
    """One firing of one trigger; a composite's firing carries its children's."""

    trigger: Any  # EventTrigger | CompoundTrigger | SequenceTrigger
    triggered: datetime
    triggering_labels: dict[str, str] = field(default_factory=dict)
    triggering_event: Event | None = None
    triggering_firings: list[Firing] = field(default_factory=list)
    bucket_key: tuple[str, ...] = ()
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def all_firings(self) -> list[Firing]:
        return [self, *(f for child in self.triggering_firings for f in child.all_firings())]

    def all_events(self) -> list[Event]:
        own = [self.triggering_event] if self.triggering_event else []
        return own + [e for child in self.triggering_firings for e in child.all_events()]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "trigger_id": str(self.trigger.id),
            "trigger_type": self.trigger.type,
            "triggered": self.triggered.isoformat(),
            "triggering_labels": self.triggering_labels,
            "triggering_event": self.triggering_event.to_wire() if self.triggering_event else None,
            "triggering_firings": [f.to_json() for f in self.triggering_firings],
            "bucket_key": list(self.bucket_key),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], triggers: dict[uuid.UUID, Any]) -> Firing:
        return cls(
            id=uuid.UUID(data["id"]),
            trigger=triggers[uuid.UUID(data["trigger_id"])],
            triggered=datetime.fromisoformat(data["triggered"]),
            triggering_labels=data["triggering_labels"],
            triggering_event=(
                Event.from_wire(data["triggering_event"]) if data["triggering_event"] else None
            ),
            triggering_firings=[cls.from_json(f, triggers) for f in data["triggering_firings"]],
            bucket_key=tuple(data.get("bucket_key", ())),
        )


class State:
    """Everything trigger evaluation remembers, with the set of what changed since `clean()`.

    The engine loads it from the database, lets the evaluator change it, writes back what is
    dirty and calls `clean()`; tests and previews simply keep it in memory.
    """

    def __init__(self) -> None:
        self.buckets: dict[BucketId, Bucket] = {}
        # (trigger, key) → {event id: occurred}: `expect` events held for windows opening later
        self.held: dict[BucketId, dict[uuid.UUID, datetime]] = {}
        self.held_at: dict[BucketId, datetime] = {}
        # composite trigger id → {child trigger id: its latest firing}
        self.child_firings: dict[uuid.UUID, dict[uuid.UUID, Firing]] = {}
        # proactive trigger id → when to evaluate it next (not durable: re-evaluating is safe)
        self.next_runs: dict[uuid.UUID, datetime] = {}
        self.dirty_buckets: set[BucketId] = set()
        self.dirty_held: set[BucketId] = set()
        self.dirty_children: set[uuid.UUID] = set()

    def clean(self) -> None:
        self.dirty_buckets.clear()
        self.dirty_held.clear()
        self.dirty_children.clear()

    # buckets
    def bucket(self, trigger_id: uuid.UUID, key: tuple[str, ...]) -> Bucket | None:
        return self.buckets.get((trigger_id, key))

    def put(self, bucket: Bucket) -> Bucket:
        self.buckets[bucket.ident] = bucket
        self.dirty_buckets.add(bucket.ident)
        return bucket

    def remove(self, bucket: Bucket) -> None:
        if self.buckets.pop(bucket.ident, None) is not None:
            self.dirty_buckets.add(bucket.ident)

    def buckets_of(self, trigger_id: uuid.UUID) -> list[Bucket]:
        found = [b for (tid, _), b in self.buckets.items() if tid == trigger_id]
        return sorted(found, key=lambda b: b.start)

    def forget_triggers(self, keep: set[uuid.UUID]) -> None:
        """Drop the state of triggers that no longer exist (an automation edited or deleted)."""
        for ident in [i for i in self.buckets if i[0] not in keep]:
            del self.buckets[ident]
            self.dirty_buckets.add(ident)
        for ident in [i for i in self.held if i[0] not in keep]:
            del self.held[ident]
            self.held_at.pop(ident, None)
            self.dirty_held.add(ident)
        for parent in [p for p in self.child_firings if p not in keep]:
            del self.child_firings[parent]
            self.dirty_children.add(parent)
        for tid in [t for t in self.next_runs if t not in keep]:
            del self.next_runs[tid]


# --- the evaluator -------------------------------------------------------------------------------


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
                names = [*trigger.expect, *trigger.after] if trigger.expect else ["*"]
                for name in _unique(names):
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
        return [t for t in index.candidates(event.resource) if t.covers_resources(event)]

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
        for trigger in self.interested(event) if triggers is None else triggers:
            self._reactive(trigger, event, clock, fired)
        return fired

    def _reactive(
        self, trigger: EventTrigger, event: Event, clock: datetime, fired: list[Firing]
    ) -> None:
        state = self.state
        key = trigger.bucketing_key(event)
        bucket: Bucket | None = None
        if trigger.after and trigger.starts_after(event.event):
            # When one event both opens and counts (a heartbeat), it starts at -1 so that it
            # leaves its own window at 0 once evaluated below.
            initial = -1 if trigger.expects(event.event) else 0
            bucket = self._ensure_bucket(
                trigger,
                key,
                start=event.occurred,
                end=event.occurred + trigger.within,
                last_event=event,
                initial_count=initial,
            )
        if bucket is None and not trigger.after and trigger.expects(event.event):
            # The first window starts a lookback before the event, so events of the same
            # moment that arrive slightly out of order still count in it.
            bucket = self._ensure_bucket(
                trigger,
                key,
                start=event.occurred - LOOKBACK,
                end=event.occurred + trigger.within,
                last_event=event,
            )
        if not trigger.expects(event.event):
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
        for bucket in self.state.buckets_of(trigger.id):
            # A window that already has enough events cannot fire; drop it without evaluating.
            if bucket.count >= trigger.threshold:
                self.state.remove(bucket)
                continue
            following = self._evaluate(trigger, bucket, as_of, None, as_of, fired)
            if following and as_of < following.end < run_again_at:
                run_again_at = following.end
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
            bucket = state.put(
                Bucket(
                    bucket.trigger_id,
                    bucket.key,
                    bucket.start,
                    bucket.end,
                    bucket.count + count,
                    triggering_event or bucket.last_event,
                )
            )
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

    def candidates(self, labels: dict[str, str]) -> list[EventTrigger]:
        if not self.by_label:
            return self.always
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


# --- describing, prefilling ----------------------------------------------------------------------


def describe(trigger: Any) -> str:
    """A one-line human summary of a trigger."""
    if isinstance(trigger, EventTrigger):
        names = ", ".join(trigger.expect) or "any event"
        where = ""
        if rid := trigger.match.get("prefect.resource.id"):
            where = f" on {rid if isinstance(rid, str) else ' | '.join(rid)}"
        gate = f" after {', '.join(trigger.after)}" if trigger.after else ""
        window = f" within {trigger.within.total_seconds():g} s" if trigger.within else ""
        each = f" for each {', '.join(sorted(trigger.for_each))}" if trigger.for_each else ""
        if trigger.reactive:
            return f"{names}{where}{gate} ≥ {trigger.threshold}×{window}{each}"
        return f"fewer than {trigger.threshold}× {names}{where}{gate}{window}{each}"
    if isinstance(trigger, CompoundTrigger):
        need = trigger.require if isinstance(trigger.require, str) else f"{trigger.require} of"
        return f"{need} {len(trigger.triggers)} triggers: " + "; ".join(
            describe(t) for t in trigger.triggers
        )
    return "in sequence: " + " → ".join(describe(t) for t in trigger.triggers)


def trigger_from_event(event: Event) -> dict[str, Any]:
    """The trigger Prefect's UI builds from an event for "Automate" (reference §7.5)."""
    parts = event.event.split(".")
    role = parts[1] if len(parts) > 2 and parts[0] == "prefect" else ""
    match_related: dict[str, str] = {}
    for_each: list[str] = []
    if role in ("flow-run", "work-queue"):
        wanted = "flow" if role == "flow-run" else "work-queue"
        for_each = ["prefect.resource.id"]
        found = next((r for r in event.related if r.get("prefect.resource.role") == wanted), None)
        if found:
            match_related = {
                "prefect.resource.role": wanted,
                "prefect.resource.id": found["prefect.resource.id"],
            }
    return {
        "type": "event",
        "match": {"prefect.resource.id": event.resource_id},
        "match_related": match_related,
        "after": [],
        "expect": [event.event],
        "for_each": for_each,
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }


# --- explain and preview -------------------------------------------------------------------------


@dataclass
class Clause:
    """One condition of a trigger, checked against one event."""

    name: str
    passed: bool | None  # None: not applicable / informational
    expected: str
    actual: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
            "note": self.note,
        }


def explain(
    trigger: Any,
    event: Event,
    *,
    bucket: Bucket | None = None,
    bucket_for: Any = None,
) -> list[Clause]:
    """Each clause of each event trigger, with pass/fail and the value it compared.

    For a composite trigger every child event trigger is explained, prefixed by its path.
    `bucket_for(trigger, key)` looks up the open window of a trigger (the engine's state).
    """
    clauses: list[Clause] = []
    for path, child in _event_triggers_with_paths(trigger):
        window = bucket if path == "" else None
        if bucket_for is not None:
            window = bucket_for(child, child.bucketing_key(event))
        for clause in _explain_event_trigger(child, event, window):
            if path:
                clause.name = f"{path} {clause.name}"
            clauses.append(clause)
    return clauses


def _event_triggers_with_paths(trigger: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(trigger, EventTrigger):
        yield path, trigger
        return
    for i, child in enumerate(trigger.triggers):
        yield from _event_triggers_with_paths(child, f"{path}triggers[{i}]")


def _fmt(patterns: Any) -> str:
    if isinstance(patterns, list):
        return " or ".join(repr(p) for p in patterns) if patterns else "(no pattern: nothing)"
    return repr(patterns)


def _explain_event_trigger(
    trigger: EventTrigger, event: Event, bucket: Bucket | None
) -> list[Clause]:
    from events.filters import label_matches

    out: list[Clause] = []
    if event.event in NEVER_EVALUATED:
        out.append(
            Clause(
                "event", False, "any event but prefect.log.write", event.event, "never evaluated"
            )
        )
    if trigger.match:
        for label, patterns in trigger.match.items():
            value = event.resource.get(label)
            out.append(
                Clause(
                    f"match {label}",
                    label_matches(patterns, value),
                    _fmt(patterns),
                    "(missing)" if value is None else repr(value),
                )
            )
    else:
        out.append(Clause("match", True, "{} (any resource)", event.resource_id))
    for i, spec in enumerate(trigger.related_specs()):
        name = (
            "match_related"
            if not isinstance(trigger.match_related, list)
            else f"match_related[{i}]"
        )
        if not spec:
            out.append(Clause(name, True, "{} (anything)", f"{len(event.related)} related"))
            continue
        winner = next((r for r in event.related if labels_match(spec, r)), None)
        expected = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.items())
        if winner is not None:
            actual = f"{winner.get('prefect.resource.role')}: {winner.get('prefect.resource.id')}"
        elif event.related:
            actual = "none of: " + "; ".join(
                f"{r.get('prefect.resource.role')}: {r.get('prefect.resource.id')}"
                for r in event.related
            )
        else:
            actual = "(no related resources)"
        out.append(Clause(name, winner is not None, expected, actual))
    expects = trigger.expects(event.event)
    out.append(
        Clause(
            "expect",
            expects,
            _fmt(trigger.expect) if trigger.expect else "(empty: any event)",
            repr(event.event),
        )
    )
    if trigger.after:
        out.append(
            Clause(
                "after",
                trigger.starts_after(event.event),
                _fmt(trigger.after),
                repr(event.event),
                "an `after` event opens the window; otherwise a window must already be open",
            )
        )
    key = trigger.bucketing_key(event)
    if trigger.for_each:
        out.append(
            Clause(
                "for_each",
                None,
                ", ".join(sorted(trigger.for_each)),
                ", ".join(f"{k}={v!r}" for k, v in trigger.labels_for(key).items()),
                "the bucket this event counts in",
            )
        )
    if bucket is not None:
        inside = bucket.start <= event.occurred < bucket.end or trigger.immediate
        out.append(
            Clause(
                "window",
                inside,
                f"{bucket.start.isoformat()} ≤ occurred < {bucket.end.isoformat()}",
                event.occurred.isoformat(),
                f"bucket count {bucket.count}",
            )
        )
    out.append(
        Clause(
            "posture",
            None,
            trigger.posture,
            f"threshold {trigger.threshold} within {trigger.within.total_seconds():g} s",
            "Reactive: fires when the count reaches the threshold; "
            "Proactive: fires when a window ends with fewer",
        )
    )
    return out


def simulate(
    automation_trigger: Any,
    events: Iterable[Event],
    *,
    since: datetime,
    until: datetime,
    tick: timedelta = timedelta(seconds=5),
) -> list[Firing]:
    """The firings the trigger would have produced over these events, in `occurred` order.

    Proactive triggers are ticked every `tick` of simulated time, as the engine does.
    """
    spec = AutomationSpec(id=uuid.uuid4(), trigger=automation_trigger)
    evaluator = Evaluator([spec])
    proactive = any(not t.reactive for t in evaluator.event_triggers)
    fired: list[Firing] = []
    clock = since
    for event in sorted(events, key=lambda e: (e.occurred, e.id.hex)):
        if proactive:
            while clock + tick <= event.occurred:
                clock += tick
                fired += evaluator.on_tick(clock)
        fired += evaluator.on_event(event, clock=max(event.occurred, clock))
    if proactive:
        while clock + tick <= until:
            clock += tick
            fired += evaluator.on_tick(clock)
    return fired


# --- causal ordering (`follows`) -----------------------------------------------------------------


class Ordering:
    """Hold events whose `follows` leader has not been evaluated yet (reference §1.5).

    `admit(event, now, seen)` returns the events to evaluate now, in order: nothing if the
    event waits for its leader, else the event followed by any followers that waited for it.
    `lost(now)` releases followers that waited longer than `FOLLOWER_WAIT`.
    """

    def __init__(self) -> None:
        self.waiting: dict[uuid.UUID, list[Event]] = {}  # leader id → followers

    def parked(self) -> list[Event]:
        return [e for followers in self.waiting.values() for e in followers]

    def park(self, event: Event) -> None:
        self.waiting.setdefault(event.follows, []).append(event)

    def admit(self, event: Event, now: datetime, seen) -> list[Event]:
        leader = event.follows
        if (
            leader is not None
            and leader != event.id
            and not seen(leader)
            and (event.received or now) > now - FOLLOWER_WAIT
        ):
            self.park(event)
            return []
        return self._with_followers(event, 0)

    def _with_followers(self, event: Event, depth: int) -> list[Event]:
        out = [event]
        if depth >= MAX_FOLLOWER_DEPTH:
            return out
        for follower in sorted(self.waiting.pop(event.id, []), key=lambda e: e.occurred):
            out += self._with_followers(follower, depth + 1)
        return out

    def lost(self, now: datetime) -> list[Event]:
        lost: list[Event] = []
        for leader, followers in list(self.waiting.items()):
            keep = []
            for follower in followers:
                if (follower.received or now) <= now - FOLLOWER_WAIT:
                    lost.append(follower)
                else:
                    keep.append(follower)
            if keep:
                self.waiting[leader] = keep
            else:
                del self.waiting[leader]
        return sorted(lost, key=lambda e: e.occurred)
