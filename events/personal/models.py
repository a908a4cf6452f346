"""Saved views (named filter sets of the feed, shareable by link) and display preferences."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.http import QueryDict

# The pages a view can be of; a saved query never leads anywhere else.
VIEW_PAGES = {"/events/": "Events", "/audit/": "Audit log"}
# Parameters a saved view keeps: the feed's filters, nothing transient ("after", "view").
VIEW_PARAMS = (
    "range",
    "since",
    "until",
    "event",
    "exclude",
    "resource",
    "label",
    "related",
    "role",
    "q",
)


class SavedView(models.Model):
    """A named set of feed filters. Its link (`/views/<id>/`) opens the feed with them for
    anyone signed in; only its owner lists, renames and deletes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views"
    )
    name = models.CharField(max_length=100)
    page = models.CharField(max_length=20, default="/events/")
    query = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="savedview_owner_name")
        ]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def clean_query(query: str) -> str:
        """Only the feed's filter parameters, in a stable order."""
        given = QueryDict(query)
        kept = QueryDict(mutable=True)
        for name in VIEW_PARAMS:
            values = [v for v in given.getlist(name) if v.strip()]
            if values:
                kept.setlist(name, values)
        return kept.urlencode()

    @property
    def url(self) -> str:
        """The feed with this view's filters (and the view marked as the one in use)."""
        page = self.page if self.page in VIEW_PAGES else "/events/"
        return f"{page}?{self.query}" if self.query else page

    @property
    def filters(self) -> list[tuple[str, str]]:
        return [(name, value) for name, values in QueryDict(self.query).lists() for value in values]


class Preference(models.Model):
    """How one person reads times: their browser's time zone or UTC, and relative times or not."""

    class TimeZone(models.TextChoices):
        BROWSER = "browser", "Browser's time zone"
        UTC = "utc", "UTC"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="preference",
    )
    time_zone = models.CharField(max_length=10, choices=TimeZone.choices, default=TimeZone.BROWSER)
    relative_times = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.user}: {self.time_zone}, relative {self.relative_times}"

    @classmethod
    def of(cls, user) -> Preference:
        """The person's preferences; the defaults (not saved) when they chose none yet."""
        try:
            return cls.objects.get(user=user)
        except cls.DoesNotExist:
            return cls(user=user)
