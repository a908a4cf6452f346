"""Builders shared by the automation tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from automations.triggers import AutomationSpec, Evaluator, parse_trigger
from events.schema import Event

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(
    name: str = "acme.thing.happened",
    resource_id: str = "acme.thing.1",
    t: float = 0,
    *,
    labels: dict[str, str] | None = None,
    related: list[dict[str, str]] | None = None,
    follows: uuid.UUID | None = None,
    id: uuid.UUID | None = None,
    received: datetime | None = None,
) -> Event:
    return Event(
        occurred=at(t),
        event=name,
        resource={"prefect.resource.id": resource_id, **(labels or {})},
        related=related or [],
        payload={},
        id=id or uuid.uuid4(),
        follows=follows,
        received=received or at(t),
    )


def rel(resource_id: str, role: str, **labels: str) -> dict[str, str]:
    return {"prefect.resource.id": resource_id, "prefect.resource.role": role, **labels}


def evaluator(trigger: dict, *more: dict) -> Evaluator:
    specs = [
        AutomationSpec(id=uuid.uuid4(), trigger=parse_trigger(t), name=f"a{i}")
        for i, t in enumerate((trigger, *more))
    ]
    return Evaluator(specs)


def event_trigger(**fields) -> dict:
    return {"type": "event", "posture": "Reactive", **fields}
