"""Webhooks (`/hooks/<slug>` and their templates) and the log of every request they received."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from events import schema


def new_webhook_slug() -> str:
    """A random, URL-safe slug of 128 bits: the receive URL is the webhook's only credential."""
    return secrets.token_urlsafe(16)


class Webhook(models.Model):
    """An HTTP endpoint (`/hooks/<slug>`) whose Jinja template turns each request into an event."""

    class Kind(models.TextChoices):
        STATIC = "static", "Static"
        DYNAMIC = "dynamic", "Dynamic (Jinja)"
        PASS_THROUGH = "pass-through", "Pass-through"
        CLOUDEVENTS = "cloudevents", "CloudEvents"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DYNAMIC)
    template = models.TextField()
    enabled = models.BooleanField(default=True)
    slug = models.CharField(max_length=64, unique=True, default=new_webhook_slug, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhooks",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    # Fields an audit event shows; the slug is a credential, so it is reported changed, not shown.
    AUDITED_FIELDS = ("name", "description", "kind", "template", "enabled", "slug")
    SECRET_FIELDS = frozenset({"slug"})

    class Meta:
        ordering = ["name", "created"]

    def __str__(self) -> str:
        return self.name

    @property
    def resource_id(self) -> str:
        return f"prefect-cloud.webhook.{self.id}"

    def audit_resource(self) -> dict[str, str]:
        return {schema.RESOURCE_ID: self.resource_id, "prefect.resource.name": self.name}

    def rotate(self) -> None:
        self.slug = new_webhook_slug()
        self.save(update_fields=["slug", "updated"])


class WebhookRequest(models.Model):
    """One request a webhook URL received, accepted or not: nothing a sender posted is lost."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        FAILED = "failed", "Failed"
        DISABLED = "disabled", "Webhook disabled"
        TOO_LARGE = "too-large", "Too large"
        UNKNOWN = "unknown", "Unknown URL"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null for requests to a slug that matches no webhook (an old, rotated URL, say).
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, null=True, blank=True, related_name="requests"
    )
    slug = models.CharField(max_length=200)
    received = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=16)
    path = models.TextField()
    query = models.TextField(blank=True, default="")
    headers = models.JSONField(default=dict)  # secrets removed before storing
    body = models.BinaryField(default=b"")
    body_truncated = models.BooleanField(default=False)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status = models.PositiveSmallIntegerField()
    rendered = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    event_id = models.UUIDField(null=True, blank=True)
    replay_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays"
    )

    class Meta:
        ordering = ["-received"]
        # The log page reads one webhook's requests newest first; retention walks `received`.
        indexes = [
            models.Index(fields=["webhook", "-received"], name="webhookrequest_hook_received"),
            models.Index(fields=["received"], name="webhookrequest_received"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status}"

    @property
    def accepted(self) -> bool:
        return self.outcome == self.Outcome.ACCEPTED

    @property
    def replayable(self) -> bool:
        return self.webhook_id is not None and not self.body_truncated

    def body_text(self, limit: int | None = None) -> str:
        data = bytes(self.body)
        if limit is not None:
            data = data[:limit]
        return data.decode("utf-8", errors="replace")
