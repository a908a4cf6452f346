from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from events import schema


class EventQuerySet(models.QuerySet):
    def matching(self, event_filter) -> EventQuerySet:
        """Events that satisfy an `events.filters.EventFilter`."""
        return event_filter.apply(self)


class Event(models.Model):
    """One stored event: the log every other part of eventsite is built from."""

    id = models.UUIDField(primary_key=True)
    occurred = models.DateTimeField()
    received = models.DateTimeField()
    event = models.CharField(max_length=1024)
    resource_id = models.TextField()
    resource = models.JSONField()
    related = models.JSONField(default=list)
    payload = models.JSONField(default=dict)
    follows = models.UUIDField(null=True, blank=True)

    objects = EventQuerySet.as_manager()

    class Meta:
        # The feed reads newest-first by (occurred, id); the name and resource filters narrow by
        # those columns first and then walk occurred, so each index ends with it.
        indexes = [
            models.Index(fields=["occurred", "id"], name="event_occurred_id"),
            models.Index(fields=["event", "occurred"], name="event_name_occurred"),
            models.Index(fields=["resource_id", "occurred"], name="event_resource_occurred"),
            # The automation engine reads the log after its durable cursor in (received, id) order.
            models.Index(fields=["received", "id"], name="event_received_id"),
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.resource_id}"

    @property
    def resource_name(self) -> str:
        return schema.resource_name(self.resource)

    def as_schema(self) -> schema.Event:
        return schema.Event(
            occurred=self.occurred,
            event=self.event,
            resource=self.resource,
            related=self.related,
            payload=self.payload,
            id=self.id,
            follows=self.follows,
            received=self.received,
        )

    def to_wire(self) -> dict:
        """The ReceivedEvent JSON shape, keys in Prefect's order."""
        return self.as_schema().to_wire()


class EventResource(models.Model):
    """One row per resource an event involves (role "" is the primary resource).

    Related, any-resource and label filters become index lookups on this table instead of scans
    of the events' JSON.
    """

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="resources")
    occurred = models.DateTimeField()
    resource_id = models.TextField()
    role = models.CharField(max_length=1024, blank=True, default="")
    labels = models.JSONField()

    class Meta:
        indexes = [
            models.Index(fields=["resource_id", "occurred"], name="eventresource_id_occurred"),
            models.Index(fields=["occurred"], name="eventresource_occurred"),
            models.Index(fields=["role", "occurred"], name="eventresource_role_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.role or 'primary'}: {self.resource_id}"


class EventCount(models.Model):
    """How many events of one name occurred in one minute or one hour (a rollup of the log).

    Kept by the write path in the same transaction as the events, so it is exact; counts,
    histograms and totals over long ranges sum these instead of scanning millions of rows.
    """

    width = models.PositiveIntegerField()  # seconds: 60 or 3600
    bucket = models.DateTimeField()
    event = models.CharField(max_length=1024)
    count = models.BigIntegerField()
    first = models.DateTimeField()
    last = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["width", "bucket", "event"], name="eventcount_unique")
        ]

    def __str__(self) -> str:
        return f"{self.event} @ {self.bucket} (+{self.width}s): {self.count}"


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A named API secret. Only its SHA-256 is stored; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    # A token is random and 256 bits long, so a fast hash is enough; no need for a password KDF.
    TOUCH_EVERY = timedelta(seconds=60)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def digest_of(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str = "default") -> tuple[ApiToken, str]:
        """Create a token and return it with its secret, which is not stored."""
        secret = "es_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, prefix=secret[:8], digest=cls.digest_of(secret)
        )
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiToken | None:
        if not secret:
            return None
        token = (
            cls.objects.active().select_related("user").filter(digest=cls.digest_of(secret)).first()
        )
        if token is not None:
            token.touch()
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked is None

    def touch(self) -> None:
        # Write last_used at most once a minute: a hot ingest client must not cost a write per call.
        now = timezone.now()
        if self.last_used is None or now - self.last_used > self.TOUCH_EVERY:
            self.last_used = now
            ApiToken.objects.filter(pk=self.pk).update(last_used=now)

    def revoke(self) -> None:
        if self.revoked is None:
            self.revoked = timezone.now()
            self.save(update_fields=["revoked"])


# --- webhooks --------------------------------------------------------------------------------------


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


# --- login throttling --------------------------------------------------------------------------------


class LoginFailure(models.Model):
    """One failed login, counted per account and per address to throttle guessing.

    Rows live in the database, not the cache, so every web process sees the same counts.
    """

    username = models.CharField(max_length=150, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["username", "created"], name="loginfailure_user_created"),
            models.Index(fields=["ip", "created"], name="loginfailure_ip_created"),
        ]

    def __str__(self) -> str:
        return f"{self.username or '?'} from {self.ip or '?'} at {self.created:%Y-%m-%d %H:%M:%S}"
