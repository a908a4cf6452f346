"""Builders for test events, as the wire carries them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def event_data(
    event: str = "acme.order.created",
    resource_id: str = "acme.order.1",
    *,
    labels: dict[str, str] | None = None,
    related: list[dict[str, str]] | None = None,
    payload: dict[str, Any] | None = None,
    occurred: datetime | None = None,
    ago: timedelta | None = None,
    id: uuid.UUID | str | None = None,
    follows: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    occurred = occurred or datetime.now(UTC) - (timedelta(seconds=1) if ago is None else ago)
    return {
        "occurred": occurred.isoformat(),
        "event": event,
        "resource": {"prefect.resource.id": resource_id, **(labels or {})},
        "related": related or [],
        "payload": payload or {},
        "id": str(id or uuid.uuid4()),
        "follows": str(follows) if follows else None,
    }


def related(resource_id: str, role: str, **labels: str) -> dict[str, str]:
    return {"prefect.resource.id": resource_id, "prefect.resource.role": role, **labels}


def domain_events():
    """Stored events other than the audit trail (creating the test's API token is audited)."""
    from events.audit import AUDIT_EVENTS
    from events.models import Event

    return Event.objects.exclude(event__in=AUDIT_EVENTS)


def domain_resources():
    from events.audit import AUDIT_EVENTS
    from events.models import EventResource

    return EventResource.objects.exclude(event__event__in=AUDIT_EVENTS)


# A filter that leaves the audit trail out, for API tests that count what they posted.
NOT_AUDIT = {"event": {"exclude_prefix": ["prefect-cloud."]}}
