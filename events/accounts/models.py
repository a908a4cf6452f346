"""API tokens and failed-login records: who may use eventsite, and who is guessing."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


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
    # "" (the user's role), or narrower: "viewer", "editor", "events-write" (events/accounts/roles.py)
    scope = models.CharField(max_length=20, blank=True, default="")

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
    def issue(cls, user, name: str = "default", scope: str = "") -> tuple[ApiToken, str]:
        """Create a token and return it with its secret, which is not stored."""
        secret = "es_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, prefix=secret[:8], digest=cls.digest_of(secret), scope=scope
        )
        return token, secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiToken | None:
        if not secret:
            return None
        # The user's groups come with it: a request asks for its role twice (the permission, then
        # `roles.readable`), each a query of the groups without this.
        token = (
            cls.objects.active()
            .select_related("user")
            .prefetch_related("user__groups")
            .filter(digest=cls.digest_of(secret))
            .first()
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
