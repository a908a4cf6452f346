"""Causal ordering: events wait for the event they `follow` before they are evaluated."""

from __future__ import annotations

import uuid
from datetime import datetime

from automations.triggers.definitions import FOLLOWER_WAIT, MAX_FOLLOWER_DEPTH
from events.schema import Event


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
        if leader is None and not self.waiting:
            return [event]  # the usual case, without looking for followers nobody parked
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
