from __future__ import annotations

import json

import orjson
from django.db import models

from events import schema

# Models of the app's other concepts live in their packages; importing them here registers them
# in the `events` app, so that their tables and migrations keep their names.
from events.accounts.models import ApiToken, LoginFailure
from events.personal.models import Preference, SavedView
from events.webhooks.models import Webhook, WebhookNonce, WebhookRequest


def _int_or_float(text: str) -> int | float:
    """A JSON integer as orjson reads it: past 64 bits, a float."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(text)


class StoredJSONField(models.JSONField):
    """A JSONField read by orjson, as the write path reads what it stores (`ingest`): a page of
    50 events decodes 150 documents, 2.2 → 1.5 ms of CPU with the model instances and wire form
    at 1M. Numbers keep what ingest gave them: an integer past 64 bits is a float (orjson reads
    it so), also when PostgreSQL's jsonb writes a large float as digits (`1e300` comes back as
    301 digits, which the standard library read as an int that no response could encode: a 500
    on every page showing the event). Text orjson refuses (NaN, lone surrogates: written outside
    ingest) is read by the standard library, integers bounded the same way. Same column, so it
    deconstructs as a JSONField (no migration)."""

    def from_db_value(self, value, expression, connection):
        if not isinstance(value, str):
            return super().from_db_value(value, expression, connection)
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            try:
                return json.loads(value, parse_int=_int_or_float)
            except json.JSONDecodeError:
                return value  # (a key transform's plain text, as Django returns it)

    def deconstruct(self):
        name, _, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class Event(models.Model):
    """One stored event: the log every other part of eventsite is built from."""

    id = models.UUIDField(primary_key=True)
    occurred = models.DateTimeField()
    received = models.DateTimeField()
    event = models.CharField(max_length=1024)
    resource_id = models.TextField()
    resource = StoredJSONField()
    related = StoredJSONField(default=list)
    payload = StoredJSONField(default=dict)
    follows = models.UUIDField(null=True, blank=True)
    # The folded text that text search matches (`events.text_search.search_text`), written by
    # ingest. Indexed by trigrams: PostgreSQL pg_trgm GIN (0009), SQLite FTS5 by triggers (0012).
    search = models.TextField(db_default="", editable=False)

    class Meta:
        # The feed reads newest-first by (occurred, id); the name and resource filters narrow by
        # those columns first and then walk occurred, so each index ends with it.
        indexes = [
            models.Index(fields=["occurred", "id"], name="event_occurred_id"),
            # Pattern operator classes: on PostgreSQL they serve prefixes (LIKE 'x%') as well as
            # `=`, in any collation; SQLite ignores them (0007_prefix_indexes).
            models.Index(
                fields=["event", "occurred"],
                name="event_name_occurred",
                opclasses=["varchar_pattern_ops", "timestamptz_ops"],
            ),
            models.Index(
                fields=["resource_id", "occurred"],
                name="event_resource_occurred",
                opclasses=["text_pattern_ops", "timestamptz_ops"],
            ),
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

    # Not a database constraint: on PostgreSQL both tables are partitioned by day, and a foreign
    # key to a partitioned table needs its partition key too (`events.partitions`). Retention and
    # the ORM's own cascade remove resource rows with their events.
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="resources", db_constraint=False
    )
    occurred = models.DateTimeField()
    resource_id = models.TextField()
    role = models.CharField(max_length=1024, blank=True, default="")
    labels = StoredJSONField()

    class Meta:
        indexes = [
            models.Index(
                fields=["resource_id", "occurred"],
                name="eventresource_id_occurred",
                opclasses=["text_pattern_ops", "timestamptz_ops"],
            ),
            models.Index(fields=["occurred"], name="eventresource_occurred"),
            models.Index(fields=["role", "occurred"], name="eventresource_role_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.role or 'primary'}: {self.resource_id}"


class EventId(models.Model):
    """The id of every stored event, unique (PostgreSQL's idempotent ingest, `events.partitions`).

    On PostgreSQL the log is partitioned by day and its primary key is (id, occurred), so ingest
    claims each id here first. Unused on SQLite, whose log keeps `id` as its primary key.
    """

    id = models.UUIDField(primary_key=True)
    occurred = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["occurred"], name="eventid_occurred")]

    def __str__(self) -> str:
        return str(self.id)


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


__all__ = [
    "ApiToken",
    "Event",
    "EventCount",
    "EventId",
    "EventResource",
    "LoginFailure",
    "Preference",
    "SavedView",
    "Webhook",
    "WebhookNonce",
    "WebhookRequest",
]
