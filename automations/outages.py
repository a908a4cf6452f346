"""The engine's durable copy of open outages (`TriggerOutage` rows ↔ `State.outages`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from automations.models import TriggerOutage, bucket_key_text
from automations.triggers import Outage, State


def load(state: State, trigger_ids: list[uuid.UUID]) -> None:
    """Put the stored outages of these triggers into `state` (not dirty: a `clean()` follows)."""
    for row in TriggerOutage.objects.filter(trigger_id__in=trigger_ids):
        state.outages[(row.trigger_id, tuple(json.loads(row.bucketing_key)))] = Outage(
            row.since, row.firing_id, dict(row.triggering_labels)
        )


def write(state: State, owner: dict[uuid.UUID, Any]) -> None:
    """Write the outages opened or closed since the last `clean()` (inside the batch's
    transaction). `owner` maps a trigger id to its automation's spec."""
    if not state.dirty_outages:
        return
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
