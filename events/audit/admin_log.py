"""Changes made in the Django admin, as audit events (from its `LogEntry` rows)."""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

from events.audit import trail
from events.audit.scope import RequestScope
from events.schema import RESOURCE_ID

ADMIN_EVENTS = {
    ADDITION: trail.ADMIN_ADDED,
    CHANGE: trail.ADMIN_CHANGED,
    DELETION: trail.ADMIN_DELETED,
}


def record_log_entry(entry: LogEntry, scope: RequestScope | None) -> None:
    """The audit event for one admin `LogEntry`, with before/after snapshots where known."""
    model = entry.content_type.model_class() if entry.content_type_id else None
    obj = None
    if model is not None:
        obj = model._default_manager.filter(pk=entry.object_id).first()
    before = after = None
    if entry.action_flag == CHANGE:
        after = trail.snapshot(obj) if obj is not None else None
        if scope is not None and model is not None:
            before = scope.before.get((model._meta.label_lower, str(entry.object_id)))
    elif entry.action_flag == ADDITION:
        after = trail.snapshot(obj) if obj is not None else None
    elif entry.action_flag == DELETION and obj is not None:
        # Logged just before the delete, so the object is still there to describe.
        before = trail.snapshot(obj)
    if obj is not None:
        target = obj
    else:
        label = entry.content_type.app_label + "." + entry.content_type.model
        target = {
            RESOURCE_ID: f"eventsite.{label}.{entry.object_id}",
            "prefect.resource.name": entry.object_repr,
        }
    trail.record(
        ADMIN_EVENTS.get(entry.action_flag, trail.ADMIN_CHANGED),
        target=target,
        request=scope.request if scope else None,
        user=entry.user,
        before=before,
        after=after,
        details={
            "model": f"{entry.content_type.app_label}.{entry.content_type.model}",
            "object_id": entry.object_id,
            "object_repr": entry.object_repr,
            "change_message": entry.get_change_message(),
        },
    )
    if scope is not None:
        scope.recorded_log_entries.add(entry.pk)


def record_bulk_log_entries(scope: RequestScope) -> None:
    """Admin bulk actions write their log entries with `bulk_create`, which sends no signal."""
    user = getattr(scope.request, "user", None)
    if user is None or not user.is_authenticated:
        return
    entries = LogEntry.objects.filter(user=user, action_time__gte=scope.started).exclude(
        pk__in=scope.recorded_log_entries
    )
    for entry in entries.select_related("content_type", "user"):
        record_log_entry(entry, scope)
