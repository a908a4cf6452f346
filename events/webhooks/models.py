"""Webhooks (`/hooks/<slug>` and their templates) and the log of every request they received."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from events import schema
from eventsite.field_secrets import SecretTextField


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

    class Verification(models.TextChoices):
        NONE = "none", "None: the URL is the only credential"
        BEARER = "bearer", "Bearer token (Authorization: Bearer …)"
        GITHUB = "github", "GitHub signature (X-Hub-Signature-256)"
        STRIPE = "stripe", "Stripe signature (Stripe-Signature)"
        HMAC = "hmac", "HMAC signature in a header of your choice"

    class Algorithm(models.TextChoices):
        SHA256 = "sha256", "SHA-256"
        SHA512 = "sha512", "SHA-512"
        SHA1 = "sha1", "SHA-1"

    class Encoding(models.TextChoices):
        HEX = "hex", "hex"
        BASE64 = "base64", "base64"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.DYNAMIC)
    # Undefined template variables are errors (400) instead of "" (which stores junk events).
    strict = models.BooleanField(default=True)
    # How a request proves it comes from the sender (events.webhooks.verify).
    verification = models.CharField(
        max_length=10, choices=Verification.choices, default=Verification.NONE
    )
    verification_secret = SecretTextField(blank=True, default="")
    signature_header = models.CharField(max_length=100, blank=True, default="X-Signature")
    signature_algorithm = models.CharField(
        max_length=10, choices=Algorithm.choices, default=Algorithm.SHA256
    )
    signature_encoding = models.CharField(
        max_length=10, choices=Encoding.choices, default=Encoding.HEX
    )
    signature_prefix = models.CharField(max_length=50, blank=True, default="")
    # Stripe: how old a signed timestamp may be, in seconds (Stripe's libraries use 300).
    signature_tolerance = models.PositiveIntegerField(default=300)
    template = models.TextField()
    enabled = models.BooleanField(default=True)
    slug = models.CharField(max_length=64, unique=True, default=new_webhook_slug, editable=False)
    # After a rotation with a grace period, the old URL keeps working until then.
    previous_slug = models.CharField(max_length=64, null=True, blank=True, unique=True)
    previous_slug_expires = models.DateTimeField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhooks",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    # Fields an audit event shows; the slugs and the verification key are credentials, so they
    # are reported changed (a fingerprint), never shown.
    AUDITED_FIELDS = (
        "name",
        "description",
        "kind",
        "template",
        "enabled",
        "strict",
        "verification",
        "verification_secret",
        "signature_header",
        "signature_algorithm",
        "signature_encoding",
        "signature_prefix",
        "signature_tolerance",
        "slug",
    )
    SECRET_FIELDS = frozenset({"slug", "previous_slug", "verification_secret"})

    class Meta:
        ordering = ["name", "created"]

    def __str__(self) -> str:
        return self.name

    @property
    def resource_id(self) -> str:
        return f"prefect-cloud.webhook.{self.id}"

    def audit_resource(self) -> dict[str, str]:
        return {schema.RESOURCE_ID: self.resource_id, "prefect.resource.name": self.name}

    def rotate(self, *, grace: timedelta = timedelta(0)) -> None:
        """A new slug; with a `grace` period the current one keeps working until it ends."""
        if grace > timedelta(0):
            self.previous_slug = self.slug
            self.previous_slug_expires = timezone.now() + grace
        else:
            self.previous_slug = None
            self.previous_slug_expires = None
        self.slug = new_webhook_slug()
        self.save(update_fields=["slug", "previous_slug", "previous_slug_expires", "updated"])

    @property
    def old_url_active(self) -> bool:
        return bool(
            self.previous_slug
            and self.previous_slug_expires
            and self.previous_slug_expires > timezone.now()
        )


class WebhookRequest(models.Model):
    """One request a webhook URL received, accepted or not: nothing a sender posted is lost."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        FAILED = "failed", "Failed"
        DISABLED = "disabled", "Webhook disabled"
        TOO_LARGE = "too-large", "Too large"
        UNKNOWN = "unknown", "Unknown URL"
        UNAUTHORIZED = "unauthorized", "Unauthorized"

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
        # A request that failed its check stays out: replaying it would bypass the check.
        return (
            self.webhook_id is not None
            and not self.body_truncated
            and self.outcome != self.Outcome.UNAUTHORIZED
        )

    def body_text(self, limit: int | None = None) -> str:
        data = bytes(self.body)
        if limit is not None:
            data = data[:limit]
        return data.decode("utf-8", errors="replace")


class WebhookNonce(models.Model):
    """A signature already accepted, kept while its timestamp is fresh: a replay is refused."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    expires = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["webhook", "digest"], name="webhooknonce_unique")
        ]
