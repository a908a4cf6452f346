"""Why an automation did or did not fire, and how often it would have: the pure trigger code
run over what is stored."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from automations.models import Automation, EngineCursor, Firing, TriggerBucket, bucket_key_text
from automations.triggers import (
    NEVER_EVALUATED,
    Bucket,
    EventTrigger,
    parse_trigger,
    simulate,
)
from automations.triggers import explain as explain_clauses
from events import queries
from events.models import Event as StoredEvent
from events.schema import Event

PREVIEW_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
PREVIEW_MAX_EVENTS = 50_000
PREVIEW_SHOWN = 5


def explain_stored(automation: Automation, row: StoredEvent) -> dict[str, Any]:
    """Each clause of the automation's trigger against a stored event, and what happened."""
    trigger = parse_trigger(automation.trigger)
    event = row.as_schema()

    def bucket_for(child: EventTrigger, key: tuple[str, ...]) -> Bucket | None:
        stored = TriggerBucket.objects.filter(
            trigger_id=child.id, bucketing_key=bucket_key_text(key)
        ).first()
        if stored is None:
            return None
        return Bucket(stored.trigger_id, key, stored.start, stored.end, stored.count)

    clauses = explain_clauses(trigger, event, bucket_for=bucket_for)
    firings = [
        f
        for f in Firing.objects.filter(automation=automation).only("id", "triggered", "event_ids")[
            :1000
        ]
        if str(event.id) in f.event_ids
    ]
    cursor = EngineCursor.objects.filter(name="default").first()
    evaluated = bool(
        cursor
        and cursor.received
        and (row.received, str(row.id)) <= (cursor.received, str(cursor.event_id))
    )
    event_triggers = [t for t in trigger.all_triggers() if isinstance(t, EventTrigger)]
    covered = any(t.covers(event) for t in event_triggers) and event.event not in NEVER_EVALUATED
    if firings:
        verdict = "It fired for this event."
    elif not automation.enabled:
        verdict = "It did not fire: the automation is disabled."
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
    else:
        verdict = (
            "The event matched and was counted, but the trigger did not fire for it "
            "(threshold not reached, inside a debounce window, or a proactive posture)."
        )
    return {
        "automation": str(automation.id),
        "event": str(event.id),
        "enabled": automation.enabled,
        "matched": covered,
        "evaluated": evaluated,
        "fired": bool(firings),
        "firings": [{"id": str(f.id), "triggered": f.triggered.isoformat()} for f in firings],
        "verdict": verdict,
        "clauses": [c.to_json() for c in clauses],
    }


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


def preview(
    trigger_data: Any, *, window: str = "24h", now: datetime | None = None
) -> dict[str, Any]:
    """How many times the trigger would have fired over the stored events of the window."""
    trigger = parse_trigger(trigger_data)
    now = now or timezone.now()
    since = now - PREVIEW_WINDOWS[window]
    names, prefixes = _names(trigger) or (None, ())
    found = queries.in_window(
        since, now, names=names, prefixes=prefixes, limit=PREVIEW_MAX_EVENTS + 1
    )
    truncated = len(found) > PREVIEW_MAX_EVENTS
    events: list[Event] = found[:PREVIEW_MAX_EVENTS]
    fired = simulate(trigger, events, since=since, until=now)
    return {
        "window": window,
        "since": since.isoformat(),
        "until": now.isoformat(),
        "events": len(events),
        "truncated": truncated,
        "count": len(fired),
        "first": [
            {
                "triggered": f.triggered.isoformat(),
                "labels": f.triggering_labels,
                "event": str(f.triggering_event.id) if f.triggering_event else None,
                "event_name": f.triggering_event.event if f.triggering_event else None,
            }
            for f in fired[:PREVIEW_SHOWN]
        ],
        "id": str(uuid.uuid4()),
    }
