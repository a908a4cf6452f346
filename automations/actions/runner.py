"""Performing an action run: claim it, run it, record the attempt and emit its events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automations.actions.base import (
    ERROR_LIMIT,
    FOLLOWS_WINDOW,
    ActionFailed,
    ActionRetry,
    Outcome,
    RetrySchedule,
    RunContext,
)
from automations.actions.context import template_context
from automations.actions.registry import ActionsInvalid, parse_action
from automations.models import ActionRun, Automation, Firing
from automations.triggers import parse_trigger
from events import templating
from events.ingest import emit
from events.schema import Event

logger = logging.getLogger(__name__)


def claim(run_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Take a due run for this process; only one engine can win it."""
    now = now or timezone.now()
    return bool(
        ActionRun.objects.filter(
            pk=run_id, status=ActionRun.Status.PENDING, next_attempt__lte=now
        ).update(status=ActionRun.Status.RUNNING, started=now, attempts=F("attempts") + 1)
    )


def perform(run_id: uuid.UUID, *, now: Callable[[], datetime] = timezone.now) -> str | None:
    """Claim and perform one due action run; record the attempt and emit its events.

    Returns the run's new status, or None when another worker had it.
    """
    if not claim(run_id, now=now()):
        return None
    run = ActionRun.objects.select_related("automation", "firing").get(pk=run_id)
    automation = run.automation
    firing = run.firing
    triggering_event = Event.from_wire(run.triggering_event) if run.triggering_event else None
    events = [Event.from_wire(e) for e in _firing_events(firing.firing)]
    ctx = RunContext(
        automation=automation,
        template=template_context(
            automation=automation.to_api(),
            event=triggering_event,
            labels=firing.triggering_labels,
            firing=firing.firing,
            events=events,
            firing_id=firing.id,
        ),
        triggering_event=triggering_event,
        triggered=firing.triggered,
        invocation=run.id,
        is_test=firing.is_test,
    )
    outcome = Outcome()
    retry = False
    reason = ""
    schedule = RetrySchedule()
    try:
        action = parse_action(run.action)
        schedule = action.schedule()
        outcome = action.run(ctx)
    except ActionsInvalid as exc:
        reason = f"The action is invalid: {exc}"
    except ActionRetry as exc:
        reason, retry = exc.reason, True
        outcome.details = exc.details
    except ActionFailed as exc:
        reason = exc.reason
        outcome.details = exc.details
    except Exception as exc:  # a bug in an action must not take the engine down
        logger.exception("action %s of automation %s crashed", run.kind, automation.id)
        reason = f"Action crashed: {exc!r}"

    finished = now()
    tries = run.attempts - run.resent_after  # this schedule's attempts (since the last resend)
    will_retry = bool(reason) and retry and tries < schedule.attempts
    with transaction.atomic():
        if run.triggered_event_id is None:
            run.triggered_event_id = uuid.uuid4()
            _emit_action_event(run, "triggered", firing.triggered, outcome, triggering_event)
        details = {**outcome.details}
        if reason:
            run.status = ActionRun.Status.PENDING if will_retry else ActionRun.Status.FAILED
            run.last_error = reason[:ERROR_LIMIT]
            run.next_attempt = finished + schedule.delay(tries) if will_retry else None
            details = {
                **details,
                "reason": reason[:ERROR_LIMIT],
                "attempt": run.attempts,
                "will_retry": will_retry,
            }
            _emit_action_event(
                run, "failed", finished, Outcome(details, outcome.related), triggering_event
            )
        else:
            run.status = ActionRun.Status.SUCCEEDED
            run.last_error = ""
            run.next_attempt = None
            _emit_action_event(run, "executed", finished, outcome, triggering_event)
        run.result = outcome.details
        run.result_excerpt = _excerpt(outcome.details)
        if run.status != ActionRun.Status.PENDING:
            run.finished = finished
        run.save(
            update_fields=[
                "status",
                "last_error",
                "next_attempt",
                "result",
                "result_excerpt",
                "finished",
                "triggered_event_id",
                "updated",
            ]
        )
    return run.status


def _firing_events(firing: dict[str, Any]) -> list[dict]:
    own = [firing["triggering_event"]] if firing.get("triggering_event") else []
    return own + [
        e for child in firing.get("triggering_firings", []) for e in _firing_events(child)
    ]


def _excerpt(details: dict[str, Any]) -> str:
    if not details:
        return ""
    if "status_code" in details:
        return f"HTTP {details['status_code']}: {str(details.get('response_body', ''))[:200]}"
    return templating.prefect_dumps(details)[:300]


def _emit_action_event(
    run, kind: str, occurred: datetime, outcome: Outcome, triggering_event: Event | None
) -> None:
    """Emit `prefect.automation.action.<kind>` as Prefect does (reference §5.4)."""
    automation = run.automation
    trigger = automation.trigger or {}
    resource = {
        "prefect.resource.id": automation.resource_id,
        "prefect.resource.name": automation.name,
        "prefect.trigger-type": trigger.get("type", "event"),
    }
    if trigger.get("type") == "event":
        resource["prefect.posture"] = trigger.get("posture", "Reactive")
    related = list(outcome.related)
    if run.firing.triggered_event_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.event.{run.firing.triggered_event_id}",
                "prefect.resource.role": "automation-triggered-event",
            }
        )
    if triggering_event is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.event.{triggering_event.id}",
                "prefect.resource.role": "triggering-event",
            }
        )
    payload = {"action_index": run.action_index, "action_type": run.kind, "invocation": str(run.id)}
    if kind == "triggered":
        follows = None
        if triggering_event and abs(occurred - triggering_event.occurred) < FOLLOWS_WINDOW:
            follows = triggering_event.id
        event_id = run.triggered_event_id
    else:
        payload = {**payload, **outcome.details}
        follows = run.triggered_event_id
        event_id = uuid.uuid4()
    emit(
        f"prefect.automation.action.{kind}",
        occurred=occurred,
        resource=resource,
        related=related,
        payload=json.loads(templating.prefect_dumps(payload)),
        id=event_id,
        follows=follows,
        source="automations",
    )


def send_test(automation: Automation, entry: tuple[str, int, dict]) -> ActionRun:
    """Run one action (`automation.all_actions()` entry) now, as if the automation had fired on
    its latest firing's triggering event; the firing is marked as a test. Returns the finished run."""
    source, index, action = entry
    # A resolution's event is the one that ended an outage: a firing's actions test on a firing.
    last = (
        automation.firings.filter(state=Firing.State.TRIGGERED, is_test=False)
        .exclude(triggering_event=None)
        .first()
    )
    now = timezone.now()
    trigger = parse_trigger(automation.trigger)
    with transaction.atomic():
        firing = Firing.objects.create(
            automation=automation,
            triggered=now,
            trigger_id=trigger.id,
            triggering_labels=last.triggering_labels if last else {},
            triggering_event_id=last.triggering_event_id if last else None,
            triggering_event=last.triggering_event if last else None,
            event_ids=[str(last.triggering_event_id)] if last else [],
            firing={
                "id": str(uuid.uuid4()),
                "trigger_id": str(trigger.id),
                "trigger_type": trigger.type,
                "triggered": now.isoformat(),
                "triggering_labels": last.triggering_labels if last else {},
                "triggering_event": last.triggering_event if last else None,
                "triggering_firings": [],
                "bucket_key": [],
            },
            is_test=True,
        )
        run = ActionRun.objects.create(
            firing=firing,
            automation=automation,
            action_index=index,
            kind=action.get("type", ""),
            action=action,
            source=source,
            triggering_event=last.triggering_event if last else None,
            next_attempt=now,
        )
    perform(run.id)
    run.refresh_from_db()
    return run
