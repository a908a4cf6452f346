"""Validate an automation definition: the one check behind the REST API and the forms.

Errors are field-level (`{"field": "trigger.within", "message": …}`) so the API answers 422
with them and the form shows each next to its field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from automations.actions import (
    ActionsInvalid,
    AutomationCommand,
    EmitEvent,
    parse_actions,
    stored_actions,
)
from automations.triggers import EventTrigger, TriggerInvalid, parse_trigger
from events.ingest import internal_event

ACTION_LISTS = ("actions", "actions_on_trigger", "actions_on_resolve")
AUTOMATION_EVENTS = (
    "prefect.automation.triggered",
    "prefect.automation.resolved",
    "prefect.automation.action.triggered",
    "prefect.automation.action.executed",
    "prefect.automation.action.failed",
    "prefect.automation.created",
    "prefect.automation.updated",
    "prefect.automation.deleted",
)


class AutomationInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class AutomationBody(BaseModel):
    """Prefect's AutomationCreate / AutomationUpdate (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=500)
    description: str = ""
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    trigger: Any
    actions: Any
    actions_on_trigger: Any = Field(default_factory=list)
    actions_on_resolve: Any = Field(default_factory=list)
    owner_resource: str | None = None
    # eventsite's extension: let an automation react to its own prefect.automation.* events.
    allow_self_trigger: bool = False


@dataclass
class Definition:
    """A validated automation, normalised for storage."""

    name: str
    description: str
    enabled: bool
    tags: list[str]
    trigger: dict[str, Any]
    actions: list[dict[str, Any]]
    actions_on_trigger: list[dict[str, Any]]
    actions_on_resolve: list[dict[str, Any]]
    owner_resource: str | None
    allow_self_trigger: bool

    def fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "tags": self.tags,
            "trigger": self.trigger,
            "actions": self.actions,
            "actions_on_trigger": self.actions_on_trigger,
            "actions_on_resolve": self.actions_on_resolve,
            "allow_self_trigger": self.allow_self_trigger,
        }


def validate_definition(
    data: Any,
    *,
    automation_id: uuid.UUID,
    allow_owner: bool = True,
    regenerate_ids: bool = True,
    keep_trigger: dict | None = None,
    previous: dict[str, list[dict | None]] | None = None,
) -> Definition:
    """Check everything about an automation; raise `AutomationInvalid` with every problem.

    `automation_id` is the automation's own id (decided before a create), so that a definition
    that would react to its own events or pause itself can be recognised. With
    `regenerate_ids` every trigger gets a new id, as Prefect's API does; with `keep_trigger`
    (the stored trigger) an unchanged trigger keeps its ids, and so its evaluation state.
    `previous` gives, per action list, the stored action each submitted one replaces (by
    position): its secrets are what a `REDACTED` value keeps. The definition's actions are the
    ones to store, secrets sealed.
    """
    previous = previous or {}
    if not isinstance(data, dict):
        raise AutomationInvalid([{"field": "body", "message": "must be a JSON object"}])
    try:
        body = AutomationBody.model_validate(data)
    except ValidationError as exc:
        raise AutomationInvalid(
            [
                {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
        ) from None
    errors: list[dict[str, str]] = []
    if body.owner_resource is not None and not allow_owner:
        errors.append({"field": "owner_resource", "message": "can only be set on create"})
    trigger = None
    try:
        trigger = parse_trigger(body.trigger)
    except TriggerInvalid as exc:
        errors += exc.errors
    parsed_actions: dict[str, list] = {}
    for name in ACTION_LISTS:
        try:
            parsed_actions[name] = parse_actions(
                getattr(body, name), loc=name, previous=previous.get(name), strict=True
            )
        except ActionsInvalid as exc:
            errors += exc.errors
    if errors:
        raise AutomationInvalid(errors)

    if keep_trigger is not None and _same_trigger(trigger, keep_trigger):
        trigger = parse_trigger(keep_trigger)
    elif regenerate_ids or keep_trigger is not None:
        trigger.reset_ids()

    all_actions = [a for name in ("actions", "actions_on_trigger") for a in parsed_actions[name]]
    for name, actions in parsed_actions.items():
        for i, action in enumerate(actions):
            if isinstance(action, AutomationCommand) and action.automation_id == automation_id:
                errors.append(
                    {
                        "field": f"{name}.{i}.automation_id",
                        "message": "an automation cannot pause or resume itself",
                    }
                )
    if not body.allow_self_trigger and (
        reason := self_loop(automation_id, body.name, trigger, all_actions)
    ):
        errors.append({"field": "trigger", "message": reason})
    if errors:
        raise AutomationInvalid(errors)
    return Definition(
        name=body.name,
        description=body.description,
        enabled=body.enabled,
        tags=body.tags,
        trigger=trigger.to_json(),
        **{name: stored_actions(parsed_actions[name], previous.get(name)) for name in ACTION_LISTS},
        owner_resource=body.owner_resource,
        allow_self_trigger=body.allow_self_trigger,
    )


def previous_actions(automation) -> dict[str, list[dict | None]]:
    """Each stored action list, for `validate_definition(previous=…)` when replacing by position."""
    return {name: list(getattr(automation, name)) for name in ACTION_LISTS}


def _same_trigger(trigger, stored: dict) -> bool:
    """Equal apart from the ids."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    try:
        return strip(trigger.to_json()) == strip(parse_trigger(stored).to_json())
    except TriggerInvalid:
        return False


def self_loop(automation_id: uuid.UUID, name: str, trigger, actions: list) -> str | None:
    """Why this automation would react to the events it produces itself, or None.

    The events an automation emits (triggered, action.*, and a static emit-event action's
    event) are built as the engine builds them and offered to each of its event triggers.
    """
    now = datetime.now(UTC)
    resource = {
        "prefect.resource.id": f"prefect.automation.{automation_id}",
        "prefect.resource.name": name,
        "prefect.trigger-type": trigger.type,
    }
    if isinstance(trigger, EventTrigger):
        resource["prefect.posture"] = trigger.posture
    related = [
        {"prefect.resource.id": f"prefect.event.{uuid.uuid4()}", "prefect.resource.role": role}
        for role in ("automation-triggered-event", "triggering-event")
    ]
    own = [
        internal_event(name, occurred=now, resource=resource, related=related)
        for name in AUTOMATION_EVENTS
    ]
    for action in actions:
        if isinstance(action, EmitEvent) and not action.templates():
            data = action.event
            own.append(
                internal_event(
                    data["event"],
                    occurred=now,
                    resource=data["resource"],
                    related=data.get("related") or [],
                )
            )
    triggers = [t for t in trigger.all_triggers() if isinstance(t, EventTrigger)]
    for event in own:
        for child in triggers:
            if child.covers(event):
                return (
                    f"this automation would react to its own {event.event!r} events and loop; "
                    'narrow `match` (e.g. "prefect.resource.id": "!prefect.automation.*") '
                    "or `expect`, or set allow_self_trigger"
                )
    return None
