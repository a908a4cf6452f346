"""What trigger evaluation remembers: windows (`Bucket`), firings, open outages (`Outage`) and
their dirty sets."""

from __future__ import annotations

import heapq
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events.schema import Event

BucketId = tuple[uuid.UUID, tuple[str, ...]]

# Prefect's TriggerState: a firing either starts an outage or ends it.
TRIGGERED = "Triggered"
RESOLVED = "Resolved"


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


_IDS: list[int] = []  # random 128-bit numbers, drawn from the OS 256 at a time
_VERSION_4 = ~(0xC000 << 48 | 0xF000 << 64) & (1 << 128) - 1
_VERSION_4_BITS = 0x8000 << 48 | 0x4000 << 64
_new = object.__new__
_set = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown  # (looked up once: an enum member's lookup is slow)


def new_id() -> uuid.UUID:
    """`uuid.uuid4()`, at a third of its cost: one read of the OS's randomness per 256 ids, and
    the UUID built without `UUID.__init__`'s checks (a replay makes one per firing)."""
    try:
        value = _IDS.pop()
    except IndexError:
        pool = os.urandom(16 * 256)
        _IDS.extend(int.from_bytes(pool[i : i + 16]) for i in range(0, len(pool), 16))
        value = _IDS.pop()
    made = _new(uuid.UUID)
    _set(made, "int", value & _VERSION_4 | _VERSION_4_BITS)
    _set(made, "is_safe", _UNKNOWN_SAFETY)
    return made


@dataclass
class Firing:
    """One firing of one trigger; a composite's firing carries its children's."""

    trigger: Any  # EventTrigger | CompoundTrigger | SequenceTrigger
    triggered: datetime
    triggering_labels: dict[str, str] = field(default_factory=dict)
    triggering_event: Event | None = None
    triggering_firings: list[Firing] = field(default_factory=list)
    bucket_key: tuple[str, ...] = ()
    id: uuid.UUID = field(default_factory=new_id)
    state: str = TRIGGERED  # or RESOLVED: the condition of an earlier firing cleared

    @property
    def resolved(self) -> bool:
        return self.state == RESOLVED

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
            "state": self.state,
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
            state=data.get("state", TRIGGERED),
        )


@dataclass
class Outage:
    """A proactive trigger that fired for one for_each key and has not resolved yet.

    While it is open the key notifies no more (one notification per outage); an expected event
    for the key resolves it.
    """

    since: datetime
    firing_id: uuid.UUID
    triggering_labels: dict[str, str] = field(default_factory=dict)


class State:
    """Everything trigger evaluation remembers, with the set of what changed since `clean()`.

    The engine loads it from the database, lets the evaluator change it, writes back what is
    dirty and calls `clean()`; tests and previews simply keep it in memory.
    """

    def __init__(self) -> None:
        self.buckets: dict[BucketId, Bucket] = {}  # change it through put / remove only
        self._of_trigger: dict[
            uuid.UUID, dict[tuple[str, ...], Bucket]
        ] = {}  # the same, by trigger
        # (trigger, key) → {event id: occurred}: `expect` events held for windows opening later
        self.held: dict[BucketId, dict[uuid.UUID, datetime]] = {}
        self.held_at: dict[BucketId, datetime] = {}
        # composite trigger id → {child trigger id: its latest firing}
        self.child_firings: dict[uuid.UUID, dict[uuid.UUID, Firing]] = {}
        # proactive trigger id → when to evaluate it next (not durable: re-evaluating is safe)
        self.next_runs: dict[uuid.UUID, datetime] = {}
        # (trigger, key) → the open outage of a top-level proactive trigger
        self.outages: dict[BucketId, Outage] = {}
        # trigger id → how many of its keys are in an outage (the hot path asks only this)
        self.in_outage: dict[uuid.UUID, int] = {}
        self.dirty_outages: set[BucketId] = set()
        self.dirty_buckets: set[BucketId] = set()
        self.dirty_held: set[BucketId] = set()
        self.dirty_children: set[uuid.UUID] = set()
        # For the triggers `track_ends` was asked about (proactive ones): a heap of their
        # windows' (end, key), stale entries left in until they come up, and the keys put since
        # `touched` last took them; the proactive run reads these instead of every window.
        self._ends: dict[uuid.UUID, list[tuple[datetime, tuple[str, ...]]]] = {}
        self._touched: dict[uuid.UUID, set[tuple[str, ...]]] = {}

    def clean(self) -> None:
        self.dirty_buckets.clear()
        self.dirty_held.clear()
        self.dirty_children.clear()
        self.dirty_outages.clear()

    # buckets
    def bucket(self, trigger_id: uuid.UUID, key: tuple[str, ...]) -> Bucket | None:
        return self.buckets.get((trigger_id, key))

    def put(self, bucket: Bucket) -> Bucket:
        ident = bucket.ident
        ends = self._ends.get(bucket.trigger_id) if self._ends else None
        if ends is not None:
            old = self.buckets.get(ident)
            if old is None or old.end != bucket.end:
                heapq.heappush(ends, (bucket.end, bucket.key))
            self._touched[bucket.trigger_id].add(bucket.key)
        self.buckets[ident] = bucket
        of_trigger = self._of_trigger.get(bucket.trigger_id)
        if of_trigger is None:
            of_trigger = self._of_trigger[bucket.trigger_id] = {}
        of_trigger[bucket.key] = bucket
        self.dirty_buckets.add(ident)
        return bucket

    def changed(self, bucket: Bucket) -> None:
        """The stored bucket's count or last event was changed in place (not its window)."""
        if self._ends and bucket.trigger_id in self._touched:
            self._touched[bucket.trigger_id].add(bucket.key)
        self.dirty_buckets.add(bucket.ident)

    def remove(self, bucket: Bucket) -> None:
        if self.buckets.pop(bucket.ident, None) is not None:
            self._of_trigger.get(bucket.trigger_id, {}).pop(bucket.key, None)
            self.dirty_buckets.add(bucket.ident)

    def buckets_of(self, trigger_id: uuid.UUID, *, ordered: bool = True) -> list[Bucket]:
        """The trigger's windows (oldest start first when `ordered`)."""
        found = list(self._of_trigger.get(trigger_id, {}).values())
        return sorted(found, key=lambda b: b.start) if ordered else found

    def track_ends(self, trigger_id: uuid.UUID) -> None:
        """Index the trigger's windows by their end (see `due` and `touched`)."""
        if trigger_id in self._ends:
            return
        of_trigger = self._of_trigger.get(trigger_id, {})
        self._ends[trigger_id] = [(b.end, b.key) for b in of_trigger.values()]
        heapq.heapify(self._ends[trigger_id])
        self._touched[trigger_id] = set(of_trigger)

    def due(self, trigger_id: uuid.UUID, as_of: datetime) -> list[Bucket]:
        """The tracked trigger's windows that ended by `as_of` (each once), in the order
        `buckets_of(…, ordered=True)` gives them."""
        ends = self._ends[trigger_id]
        of_trigger = self._of_trigger.get(trigger_id, {})
        due: dict[tuple[str, ...], Bucket] = {}
        while ends and ends[0][0] <= as_of:
            end, key = heapq.heappop(ends)
            bucket = of_trigger.get(key)
            if bucket is not None and bucket.end == end:
                due[key] = bucket
        found = sorted(due.values(), key=lambda b: b.start)
        if any(a.start == b.start for a, b in zip(found, found[1:], strict=False)):
            # Windows that start together: in the order of the trigger's windows, as there.
            rank = {key: i for i, key in enumerate(of_trigger)}
            found.sort(key=lambda b: (b.start, rank[b.key]))
        return found

    def next_end(self, trigger_id: uuid.UUID) -> datetime | None:
        """When the tracked trigger's first window still stored ends."""
        ends = self._ends[trigger_id]
        of_trigger = self._of_trigger.get(trigger_id, {})
        while ends:
            end, key = ends[0]
            bucket = of_trigger.get(key)
            if bucket is not None and bucket.end == end:
                return end
            heapq.heappop(ends)
        return None

    def touched(self, trigger_id: uuid.UUID) -> list[Bucket]:
        """The tracked trigger's windows put since the last call (those still stored)."""
        keys = self._touched[trigger_id]
        if not keys:
            return []
        of_trigger = self._of_trigger.get(trigger_id, {})
        found = [b for b in map(of_trigger.get, keys) if b is not None]
        keys.clear()
        return found

    def forget_triggers(self, keep: set[uuid.UUID]) -> None:
        """Drop the state of triggers that no longer exist (an automation edited or deleted)."""
        for ident in [i for i in self.buckets if i[0] not in keep]:
            del self.buckets[ident]
            self.dirty_buckets.add(ident)
        for tid in [t for t in self._of_trigger if t not in keep]:
            del self._of_trigger[tid]
        for tid in [t for t in self._ends if t not in keep]:
            del self._ends[tid]
            del self._touched[tid]
        for ident in [i for i in self.held if i[0] not in keep]:
            del self.held[ident]
            self.held_at.pop(ident, None)
            self.dirty_held.add(ident)
        for parent in [p for p in self.child_firings if p not in keep]:
            del self.child_firings[parent]
            self.dirty_children.add(parent)
        for tid in [t for t in self.next_runs if t not in keep]:
            del self.next_runs[tid]
        for ident in [i for i in self.outages if i[0] not in keep]:
            del self.outages[ident]
            self.dirty_outages.add(ident)
        self.in_outage = {t: n for t, n in self.in_outage.items() if t in keep}

    # outages
    def open_outage(self, ident: BucketId, outage: Outage) -> None:
        if ident not in self.outages:
            self.in_outage[ident[0]] = self.in_outage.get(ident[0], 0) + 1
        self.outages[ident] = outage
        self.dirty_outages.add(ident)

    def close_outage(self, ident: BucketId) -> Outage | None:
        outage = self.outages.pop(ident, None)
        if outage is not None:
            self.dirty_outages.add(ident)
            left = self.in_outage[ident[0]] - 1
            if left:
                self.in_outage[ident[0]] = left
            else:
                del self.in_outage[ident[0]]
        return outage
