"""Changing webhooks, each change with its audit event, for the pages and the REST API alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from events import audit
from events.webhooks.models import Webhook

STARTERS: dict[str, str] = {
    Webhook.Kind.STATIC: (
        "{\n"
        '  "event": "model.refreshed",\n'
        '  "resource": {\n'
        '    "prefect.resource.id": "product.models.recommendations",\n'
        '    "prefect.resource.name": "Recommendations [Products]",\n'
        '    "producing-team": "Data Science"\n'
        "  }\n"
        "}"
    ),
    Webhook.Kind.DYNAMIC: (
        "{\n"
        '  "event": "model.refreshed",\n'
        '  "resource": {\n'
        '    "prefect.resource.id": "product.models.{{ body.model }}",\n'
        '    "prefect.resource.name": "{{ body.friendly_name|default(body.model) }}"\n'
        "  },\n"
        '  "payload": {"run": {{ body.run_id|default(none)|tojson }}}\n'
        "}"
    ),
    Webhook.Kind.PASS_THROUGH: "{{ body|tojson }}",
    Webhook.Kind.CLOUDEVENTS: "{{ body|from_cloud_event(headers) }}",
}


def create(*, user, request: HttpRequest | None, **fields: Any) -> Webhook:
    with transaction.atomic():
        webhook = Webhook.objects.create(owner=user, **fields)
        audit.record(
            audit.WEBHOOK_CREATED, target=webhook, request=request, after=audit.snapshot(webhook)
        )
    return webhook


def update(webhook: Webhook, *, request: HttpRequest | None, **fields: Any) -> Webhook:
    """Save changed fields; an enabled flag that flips is recorded as enabled / disabled."""
    before = audit.snapshot(webhook)
    was_enabled = webhook.enabled
    for name, value in fields.items():
        setattr(webhook, name, value)
    after = audit.snapshot(webhook)
    if before == after:
        return webhook
    with transaction.atomic():
        webhook.save()
        if webhook.enabled != was_enabled:
            name = audit.WEBHOOK_ENABLED if webhook.enabled else audit.WEBHOOK_DISABLED
            audit.record(
                name,
                target=webhook,
                request=request,
                before={"enabled": was_enabled},
                after={"enabled": webhook.enabled},
            )
            before.pop("enabled")
            after.pop("enabled")
        if before != after:
            audit.record(
                audit.WEBHOOK_UPDATED, target=webhook, request=request, before=before, after=after
            )
    return webhook


def set_enabled(webhook: Webhook, enabled: bool, *, request: HttpRequest | None) -> Webhook:
    return update(webhook, request=request, enabled=enabled)


# Choices offered for how long an old URL keeps working after a rotation.
GRACE_PERIODS: dict[str, timedelta] = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def rotate(
    webhook: Webhook, *, request: HttpRequest | None, grace: timedelta = timedelta(0)
) -> Webhook:
    """Issue a new slug; with `grace`, the old URL keeps working (and logging) until it ends."""
    before = audit.snapshot(webhook, ["slug"])
    with transaction.atomic():
        webhook.rotate(grace=grace)
        audit.record(
            audit.WEBHOOK_ROTATED,
            target=webhook,
            request=request,
            before=before,
            after=audit.snapshot(webhook, ["slug"]),
            details={
                "grace_seconds": int(grace.total_seconds()),
                "old_url_until": webhook.previous_slug_expires,
            },
        )
    return webhook


def delete(webhook: Webhook, *, request: HttpRequest | None) -> None:
    before = audit.snapshot(webhook)
    target = webhook.audit_resource()
    with transaction.atomic():
        webhook.delete()
        audit.record(audit.WEBHOOK_DELETED, target=target, request=request, before=before)
