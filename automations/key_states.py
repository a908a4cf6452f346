"""Where each for_each key of an automation stands, for its page: firing, armed or resolved.

Read from the engine's durable state (`TriggerOutage`, `TriggerBucket`) and the latest resolved
firings; bounded: at most `LIMIT` keys, outages first.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from automations.models import Automation, Firing, TriggerBucket, TriggerOutage, bucket_key_text
from automations.triggers import EventTrigger, TriggerInvalid, parse_trigger

LIMIT = 50
RESOLVED_LOOKED_AT = 200  # the latest resolutions read to find each key's last one


@dataclass
class KeyState:
    labels: dict[str, str]
    state: str  # "firing" | "armed" | "resolved"
    since: datetime | None = None  # firing since
    window_end: datetime | None = None  # armed: the window ends
    count: int | None = None  # armed: events counted in the window
    threshold: int | None = None
    resolved: datetime | None = None  # the key's latest resolution


@dataclass
class KeyStates:
    keys: list[KeyState]
    more: int  # keys left out (beyond LIMIT; about: resolved keys are not counted)


def key_states(automation: Automation, *, limit: int = LIMIT) -> KeyStates:
    """Each key's state: "firing since T", "armed, window ends at T", or "resolved at T"."""
    try:
        triggers = {t.id: t for t in parse_trigger(automation.trigger).all_triggers()}
    except TriggerInvalid:
        return KeyStates([], 0)
    found: dict[tuple[uuid.UUID, str], KeyState] = {}

    def labels(trigger_id: uuid.UUID, key_text: str) -> dict[str, str]:
        trigger = triggers.get(trigger_id)
        if not isinstance(trigger, EventTrigger):
            return {}
        return trigger.labels_for(tuple(json.loads(key_text)))

    outages = TriggerOutage.objects.filter(automation=automation, trigger_id__in=triggers)
    total = outages.count()
    for row in outages.order_by("since")[:limit]:
        found[(row.trigger_id, row.bucketing_key)] = KeyState(
            labels(row.trigger_id, row.bucketing_key), "firing", since=row.since
        )
    buckets = TriggerBucket.objects.filter(automation=automation, trigger_id__in=triggers)
    total += buckets.count()
    for row in buckets.order_by("end")[: max(limit - len(found), 0)]:
        trigger = triggers[row.trigger_id]
        if (row.trigger_id, row.bucketing_key) in found:
            total -= 1  # the window of a key in an outage (a key-less trigger keeps one)
            continue
        found.setdefault(
            (row.trigger_id, row.bucketing_key),
            KeyState(
                labels(row.trigger_id, row.bucketing_key),
                "armed",
                window_end=row.end,
                count=max(row.count, 0),
                threshold=getattr(trigger, "threshold", None),
            ),
        )
    resolved = Firing.objects.filter(automation=automation, state=Firing.State.RESOLVED).only(
        "trigger_id", "bucket_key", "triggered"
    )[:RESOLVED_LOOKED_AT]
    for row in resolved:  # newest first: the first seen of a key is its latest
        ident = (row.trigger_id, bucket_key_text(tuple(row.bucket_key)))
        state = found.get(ident)
        if state is not None:
            if state.resolved is None and state.state != "firing":
                state.resolved = row.triggered
        elif len(found) < limit and row.trigger_id in triggers:
            found[ident] = KeyState(
                labels(row.trigger_id, ident[1]), "resolved", resolved=row.triggered
            )
            total += 1
    return KeyStates(list(found.values()), max(total - len(found), 0))
