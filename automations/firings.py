"""Recording firings: the `Firing` row, its `prefect.automation.triggered` event and the pending
action runs, written inside the engine's batch transaction. A resolution (a firing whose state is
`Resolved`) is recorded the same way, with a `prefect.automation.resolved` event and the runs of
`actions_on_resolve`."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.utils import timezone

from automations.models import ActionRun, Automation
from automations.models import Firing as FiringRow
from automations.triggers import EventTrigger, Firing
from events.ingest import internal_event, store
from events.schema import Event


def record_firings(items: list[tuple[Automation, Firing]]) -> list[uuid.UUID]:
    """Store firings, their `prefect.automation.triggered` (or `.resolved`) events and pending
    action runs.

    Runs inside the caller's transaction; one write of each kind for the whole batch (a
    proactive tick can fire hundreds at once). Returns the new action run ids.
    """
    if not items:
        return []
    now = timezone.now()
    events, firing_rows, runs = [], [], []
    for automation, firing in items:
        triggered_event = _triggered_event(automation, firing)
        events.append(triggered_event)
        row, row_runs = _firing_rows(automation, firing, triggered_event, now)
        firing_rows.append(row)
        runs += row_runs
    store(events, source="automations")
    FiringRow.objects.bulk_create(firing_rows)
    ActionRun.objects.bulk_create(runs)
    return [r.id for r in runs]


def _triggered_event(automation: Automation, firing: Firing) -> Event:
    trigger = firing.trigger
    resource = {
        "prefect.resource.id": automation.resource_id,
        "prefect.resource.name": automation.name,
    }
    if isinstance(trigger, EventTrigger):
        resource["prefect.posture"] = trigger.posture
    triggering = firing.triggering_event
    return internal_event(
        "prefect.automation.resolved" if firing.resolved else "prefect.automation.triggered",
        occurred=firing.triggered,
        resource=resource,
        related=(
            [
                {
                    "prefect.resource.id": f"prefect.event.{triggering.id}",
                    "prefect.resource.role": "triggering-event",
                }
            ]
            if triggering
            else []
        ),
        payload={
            "triggering_labels": firing.triggering_labels,
            "triggering_event": triggering.to_wire() if triggering else None,
        },
        id=uuid.uuid4(),
    )


def _firing_rows(
    automation: Automation, firing: Firing, triggered_event: Event, now: datetime
) -> tuple[FiringRow, list[ActionRun]]:
    triggering = firing.triggering_event
    row = FiringRow(
        id=firing.id,
        automation=automation,
        triggered=firing.triggered,
        trigger_id=firing.trigger.id,
        bucket_key=list(firing.bucket_key),
        triggering_labels=firing.triggering_labels,
        triggering_event_id=triggering.id if triggering else None,
        triggering_event=triggering.to_wire() if triggering else None,
        event_ids=list(dict.fromkeys(str(e.id) for e in firing.all_events())),
        firing=firing.to_json(),
        triggered_event_id=triggered_event.id,
        state=firing.state,
    )
    runs = [
        ActionRun(
            firing=row,
            automation=automation,
            action_index=index,
            kind=action.get("type", ""),
            action=action,
            source=source,
            triggering_event=(
                (triggering.to_wire() if triggering else None)
                if source == "actions"
                else triggered_event.to_wire()
            ),
            next_attempt=now,
        )
        for source, index, action in (
            automation.resolve_actions() if firing.resolved else automation.all_actions()
        )
    ]
    return row, runs
