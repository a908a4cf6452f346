"""Changing automations, each change with its `prefect.automation.*` event and audit event.

The same pattern as `events.webhooks.changes`: pages, the REST API and actions (pause/resume)
change automations only through these functions, so every change is recorded alike. The actor
comes from the request being served, if any (`events.audit.scope`).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from automations.models import Automation
from events import audit
from events.ingest import emit

_AUDIT_NAMES = {
    "created": audit.AUTOMATION_CREATED,
    "updated": audit.AUTOMATION_UPDATED,
    "deleted": audit.AUTOMATION_DELETED,
}


def create(*, id: uuid.UUID, owner, owner_resource: str | None = None, **fields: Any) -> Automation:
    """Create an automation from validated definition fields."""
    if fields.get("enabled", True):
        fields["enabled_since"] = timezone.now()
    with transaction.atomic():
        automation = Automation.objects.create(
            id=id, owner=owner, owner_resource=owner_resource, **fields
        )
        _recorded(automation, "created")
    return automation


def update(automation: Automation, fields: dict[str, Any]) -> Automation:
    """Save new definition fields and record the change (with its before/after diff)."""
    with transaction.atomic():
        before, was_enabled = audit.snapshot(automation), automation.enabled
        for name, value in fields.items():
            setattr(automation, name, value)
        automation.updated = timezone.now()
        if automation.enabled and not was_enabled:
            automation.enabled_since = automation.updated
        automation.save()
        _recorded(automation, "updated", before=before)
    return automation


def delete(automation: Automation) -> None:
    """Delete, emitting `prefect.automation.deleted` and the audit event."""
    with transaction.atomic():
        payload, before = automation.to_api(), audit.snapshot(automation)
        automation.delete()
        _recorded(automation, "deleted", payload=payload, before=before)


def set_enabled(automation: Automation, enabled: bool) -> bool:
    """Enable or disable; emits `prefect.automation.updated` when it changes anything."""
    now = timezone.now()
    since = {"enabled_since": now} if enabled else {}
    with transaction.atomic():
        changed = (
            Automation.objects.filter(pk=automation.pk)
            .exclude(enabled=enabled)
            .update(enabled=enabled, updated=now, **since)
        )
        automation.refresh_from_db()
        if changed:
            _recorded(automation, "updated", audited=False)
            audit.record(
                audit.AUTOMATION_ENABLED if enabled else audit.AUTOMATION_DISABLED,
                target=automation,
                before={"enabled": not enabled},
                after={"enabled": enabled},
            )
    return bool(changed)


def _recorded(
    automation: Automation,
    kind: str,
    *,
    payload: dict | None = None,
    before: dict | None = None,
    audited: bool = True,
) -> None:
    """Emit `prefect.automation.<kind>` with the automation's JSON, and its audit event."""
    emit(
        f"prefect.automation.{kind}",
        resource=automation.audit_resource(),
        payload=payload if payload is not None else automation.to_api(),
        source="automations",
    )
    if audited:
        after = None if kind == "deleted" else audit.snapshot(automation)
        audit.record(_AUDIT_NAMES[kind], target=automation, before=before, after=after)
