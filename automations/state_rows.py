"""The engine's trigger state in the database: loading it, and writing what a batch changed.

The state itself (`automations.triggers.State`) is pure and lives in the engine's memory; these rows
make it durable: `TriggerBucket` (windows and their counts), `HeldEvents` (a sequence's members
waiting for the rest), `ChildFirings` (the children of a composite that have fired) and
`TriggerOutage` (the open outages of proactive triggers, until they resolve). `write`
runs inside the engine's batch transaction (`Engine._commit`), so state, firings and cursor move
together."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import connection

from automations.models import (
    ChildFirings,
    HeldEvents,
    TriggerBucket,
    TriggerOutage,
    bucket_key_text,
)
from automations.triggers import Bucket, Evaluator, Firing, Outage, State
from events.schema import Event
from events.sql_params import sql_adapters


def load(state: State, trigger_ids: list[uuid.UUID], persisted: set[tuple]) -> list[ChildFirings]:
    """Put the stored windows and held events of these triggers into `state`; add the idents of
    the windows that have a row to `persisted`. Returns the composites' child-firing rows, which
    need the evaluator's triggers (`load_child_firings`)."""
    for row in TriggerBucket.objects.filter(trigger_id__in=trigger_ids):
        bucket = Bucket(
            row.trigger_id,
            tuple(json.loads(row.bucketing_key)),
            row.start,
            row.end,
            row.count,
            Event.from_wire(row.last_event) if row.last_event else None,
        )
        state.put(bucket)  # not dirty: the caller's `clean()` follows the load
        persisted.add(bucket.ident)
    for row in HeldEvents.objects.filter(trigger_id__in=trigger_ids):
        ident = (row.trigger_id, tuple(json.loads(row.bucketing_key)))
        state.held[ident] = {uuid.UUID(k): datetime.fromisoformat(v) for k, v in row.events.items()}
        state.held_at[ident] = row.held_at
    for row in TriggerOutage.objects.filter(trigger_id__in=trigger_ids):
        ident = (row.trigger_id, tuple(json.loads(row.bucketing_key)))
        state.open_outage(ident, Outage(row.since, row.firing_id, dict(row.triggering_labels)))
    return list(ChildFirings.objects.filter(parent_trigger_id__in=trigger_ids))


def load_child_firings(state: State, rows: list[ChildFirings], triggers: dict) -> None:
    for row in rows:
        try:
            state.child_firings[row.parent_trigger_id] = {
                uuid.UUID(f["trigger_id"]): Firing.from_json(f, triggers) for f in row.firings
            }
        except KeyError:  # a child trigger that no longer exists
            continue


def write(
    state: State, evaluator: Evaluator, persisted: set[tuple], clock: Callable[[], datetime]
) -> None:
    """Write the windows, held events, child firings and outages the batch changed
    (`state.dirty_*`)."""
    owner = evaluator.owner
    owner_trigger = evaluator.triggers.__getitem__
    uid, dt, js, jp = sql_adapters()
    upserts, deletes, written, removed = [], [], [], []
    for ident in state.dirty_buckets:
        bucket = state.buckets.get(ident)
        key = bucket_key_text(ident[1])
        if bucket is None or ident[0] not in owner:
            # A window opened and closed within this batch never had a row.
            if ident in persisted:
                deletes.append((uid(ident[0]), key))
                removed.append(ident)
            continue
        upserts.append(
            (
                uid(owner[ident[0]].id),
                uid(ident[0]),
                key,
                dt(bucket.start),
                dt(bucket.end),
                bucket.count,
                # Only proactive firings read a window's last event; reactive ones fire on the
                # event in hand, so their windows need not store it.
                js(bucket.last_event.to_wire())
                if bucket.last_event and not owner_trigger(ident[0]).reactive
                else None,
                dt(clock()),
            )
        )
        written.append(ident)
    table = connection.ops.quote_name(TriggerBucket._meta.db_table)
    with connection.cursor() as cursor:
        if deletes:
            cursor.executemany(
                f"DELETE FROM {table} WHERE trigger_id = %s AND bucketing_key = %s", deletes
            )
        if upserts:
            # Plain SQL: the ORM's bulk upsert costs more in Python than SQLite does per row.
            cursor.executemany(
                f"INSERT INTO {table} (automation_id, trigger_id, bucketing_key, start, "
                f'"end", count, last_event, updated) VALUES (%s, %s, %s, %s, %s, %s, {jp}, %s) '
                "ON CONFLICT (trigger_id, bucketing_key) DO UPDATE SET start = excluded.start, "
                '"end" = excluded."end", count = excluded.count, '
                "last_event = excluded.last_event, updated = excluded.updated",
                upserts,
            )
    persisted.difference_update(removed)
    persisted.update(written)
    for ident in state.dirty_held:
        key = bucket_key_text(ident[1])
        held = state.held.get(ident)
        HeldEvents.objects.filter(trigger_id=ident[0], bucketing_key=key).delete()
        if held and ident[0] in owner:
            HeldEvents.objects.create(
                automation_id=owner[ident[0]].id,
                trigger_id=ident[0],
                bucketing_key=key,
                events={str(k): v.isoformat() for k, v in held.items()},
                held_at=state.held_at.get(ident, clock()),
            )
    for parent in state.dirty_children:
        firings = state.child_firings.get(parent)
        ChildFirings.objects.filter(parent_trigger_id=parent).delete()
        if firings and parent in owner:
            ChildFirings.objects.create(
                automation_id=owner[parent].id,
                parent_trigger_id=parent,
                firings=[f.to_json() for f in firings.values()],
            )
    _write_outages(state, owner)


def _write_outages(state: State, owner: dict) -> None:
    """Outages opened or closed (a firing, a resolution, a trigger gone): rare, row by row."""
    for trigger_id, key in state.dirty_outages:
        TriggerOutage.objects.filter(
            trigger_id=trigger_id, bucketing_key=bucket_key_text(key)
        ).delete()
    TriggerOutage.objects.bulk_create(
        [
            TriggerOutage(
                automation_id=owner[ident[0]].id,
                trigger_id=ident[0],
                bucketing_key=bucket_key_text(ident[1]),
                since=outage.since,
                firing_id=outage.firing_id,
                triggering_labels=outage.triggering_labels,
            )
            for ident in state.dirty_outages
            if (outage := state.outages.get(ident)) is not None and ident[0] in owner
        ]
    )
