"""What trigger evaluation remembers: windows (`Bucket`), firings, open outages (`Outage`) and
their dirty sets."""

from __future__ import annotations

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

    def clean(self) -> None:
        self.dirty_buckets.clear()
        self.dirty_held.clear()
        self.dirty_children.clear()
        self.dirty_outages.clear()

    # buckets
    def bucket(self, trigger_id: uuid.UUID, key: tuple[str, ...]) -> Bucket | None:
        return self.buckets.get((trigger_id, key))

    def put(self, bucket: Bucket) -> Bucket:
        self.buckets[bucket.ident] = bucket
        self._of_trigger.setdefault(bucket.trigger_id, {})[bucket.key] = bucket
        self.dirty_buckets.add(bucket.ident)
        return bucket

    def remove(self, bucket: Bucket) -> None:
        if self.buckets.pop(bucket.ident, None) is not None:
            self._of_trigger.get(bucket.trigger_id, {}).pop(bucket.key, None)
            self.dirty_buckets.add(bucket.ident)

    def buckets_of(self, trigger_id: uuid.UUID, *, ordered: bool = True) -> list[Bucket]:
        """The trigger's windows (oldest start first when `ordered`)."""
        found = list(self._of_trigger.get(trigger_id, {}).values())
        return sorted(found, key=lambda b: b.start) if ordered else found

    def forget_triggers(self, keep: set[uuid.UUID]) -> None:
        """Drop the state of triggers that no longer exist (an automation edited or deleted)."""
        for ident in [i for i in self.buckets if i[0] not in keep]:
            del self.buckets[ident]
            self.dirty_buckets.add(ident)
        for tid in [t for t in self._of_trigger if t not in keep]:
            del self._of_trigger[tid]
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
