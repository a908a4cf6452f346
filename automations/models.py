from __future__ import annotations

import uuid
from typing import Any

import orjson
from django.conf import settings
from django.db import models
from django.utils import timezone

from events.schema import RESOURCE_ID, isoformat
from eventsite import field_secrets


class Automation(models.Model):
    """A trigger and the actions to run when it fires (Prefect's Automation, reference §5.1)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=500)
    description = models.TextField(blank=True, default="")
    enabled = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True)
    trigger = models.JSONField()
    actions = models.JSONField(default=list)
    actions_on_trigger = models.JSONField(default=list, blank=True)
    actions_on_resolve = models.JSONField(default=list, blank=True)
    owner_resource = models.CharField(max_length=1024, null=True, blank=True, db_index=True)
    # Reacting to `prefect.automation.*` events can loop; it must be asked for explicitly.
    allow_self_trigger = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="automations",
    )
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now)
    # When it was last enabled. It reacts to events received from then on: an engine that lags
    # behind the log, or reads again after a restart, never applies it to what came before.
    enabled_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "created"]

    def __str__(self) -> str:
        return self.name

    @property
    def resource_id(self) -> str:
        return f"prefect.automation.{self.id}"

    def all_actions(self) -> list[tuple[str, int, dict]]:
        """(list name, index in the run, action) for every action a firing runs.

        Prefect numbers `actions` and then `actions_on_trigger` with one index; a resolution
        runs `actions_on_resolve` instead (`resolve_actions`).
        """
        out = [("actions", i, a) for i, a in enumerate(self.actions)]
        out += [
            ("actions_on_trigger", len(self.actions) + i, a)
            for i, a in enumerate(self.actions_on_trigger)
        ]
        return out

    def resolve_actions(self) -> list[tuple[str, int, dict]]:
        """(list name, index in the run, action) for every action a resolution runs."""
        return [("actions_on_resolve", i, a) for i, a in enumerate(self.actions_on_resolve)]

    def to_api(self) -> dict[str, Any]:
        """Prefect's Automation JSON (the response omits `owner_resource`, like Prefect).

        Secret settings are sealed in the stored actions and shown as `REDACTED` here: this is
        what API answers, `prefect.automation.*` events and action templates see.
        """
        return field_secrets.redact(self.stored_json())

    def stored_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "tags": self.tags,
            "trigger": self.trigger,
            "actions": self.actions,
            "actions_on_trigger": self.actions_on_trigger,
            "actions_on_resolve": self.actions_on_resolve,
            "id": str(self.id),
            "created": isoformat(self.created),
            "updated": isoformat(self.updated),
        }

    # What an audit event shows of an automation's state (issue 6: before/after diffs).
    AUDITED_FIELDS = (
        "name",
        "description",
        "enabled",
        "tags",
        "trigger",
        "actions",
        "actions_on_trigger",
        "actions_on_resolve",
    )

    def audit_resource(self) -> dict[str, str]:
        return {RESOURCE_ID: self.resource_id, "prefect.resource.name": self.name}


def bucket_key_text(values: tuple[str, ...]) -> str:
    """The stored form of a for_each bucketing key: compact JSON of its values."""
    return orjson.dumps(list(values)).decode()


class TriggerBucket(models.Model):
    """The open window of one trigger for one for_each key (see automations.triggers.Bucket)."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="buckets")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()  # JSON list of the key's values
    start = models.DateTimeField()
    end = models.DateTimeField()
    count = models.IntegerField(default=0)
    last_event = models.JSONField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger_id", "bucketing_key"], name="triggerbucket_unique_key"
            )
        ]


class HeldEvents(models.Model):
    """`expect` events held for windows opening later (proactive triggers with `after`)."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="+")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()
    events = models.JSONField(default=dict)  # event id → occurred
    held_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger_id", "bucketing_key"], name="heldevents_unique_key"
            )
        ]


class TriggerOutage(models.Model):
    """A proactive trigger that fired for one for_each key and has not resolved yet
    (see automations.triggers.Outage)."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="outages")
    trigger_id = models.UUIDField()
    bucketing_key = models.TextField()
    since = models.DateTimeField()
    firing_id = models.UUIDField()
    triggering_labels = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trigger_id", "bucketing_key"], name="triggeroutage_unique_key"
            )
        ]


class ChildFirings(models.Model):
    """The latest firing of each child of a composite trigger, waiting for the others."""

    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="+")
    parent_trigger_id = models.UUIDField(unique=True)
    firings = models.JSONField(default=list)


class Firing(models.Model):
    """One firing of an automation's trigger, or the resolution of an earlier one."""

    class State(models.TextChoices):
        TRIGGERED = "Triggered"
        RESOLVED = "Resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="firings")
    triggered = models.DateTimeField(db_index=True)
    trigger_id = models.UUIDField()
    bucket_key = models.JSONField(default=list)
    triggering_labels = models.JSONField(default=dict)
    triggering_event_id = models.UUIDField(null=True, blank=True)
    triggering_event = models.JSONField(null=True, blank=True)
    event_ids = models.JSONField(default=list)  # every triggering event, composite tree included
    firing = models.JSONField(default=dict)  # the whole firing tree, for templates
    # prefect.automation.triggered (or .resolved)
    triggered_event_id = models.UUIDField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.TRIGGERED)
    is_test = models.BooleanField(default=False)

    class Meta:
        ordering = ["-triggered"]
        indexes = [
            models.Index(fields=["automation", "-triggered"], name="firing_automation_time"),
            # The event page lists the firings an event caused (however late it came).
            models.Index(fields=["triggering_event_id"], name="firing_triggering_event"),
        ]

    def __str__(self) -> str:
        return f"{self.automation_id} at {self.triggered}"


class ActionRun(models.Model):
    """One action of one firing: every attempt updates it (and emits an event)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    # The id is Prefect's TriggeredAction id, the `invocation` in the action events.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    firing = models.ForeignKey(Firing, on_delete=models.CASCADE, related_name="action_runs")
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="action_runs")
    action_index = models.IntegerField()
    kind = models.CharField(max_length=100)
    action = models.JSONField()  # the action as it was when the automation fired
    source = models.CharField(max_length=30, default="actions")
    # The `event` of the templates: the firing's triggering event, or for `actions_on_trigger`
    # the automation.triggered event (as Prefect does).
    triggering_event = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.IntegerField(default=0)  # every attempt, numbered on across resends
    # `attempts` when the run was last resent: its fresh retry schedule counts from there.
    resent_after = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    result_excerpt = models.TextField(blank=True, default="")
    next_attempt = models.DateTimeField(null=True, blank=True)
    triggered_event_id = models.UUIDField(null=True, blank=True)  # …action.triggered
    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created", "action_index"]
        indexes = [models.Index(fields=["status", "next_attempt"], name="actionrun_due")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.action_index} ({self.status})"


class Delivery(models.Model):
    """One attempt of one action run: what was sent and what came back, or the mail sent.

    Every attempt is a row (the run keeps only its latest result), so the automation page can
    show each try, and "Send test" can show the real answer. Secrets are never in it: the
    request shows configured header values as REDACTED and every text is scrubbed of the
    action's secrets before it is stored (`automations.actions.base.Action.run`).
    """

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded"
        RETRYING = "retrying"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(ActionRun, on_delete=models.CASCADE, related_name="deliveries")
    automation = models.ForeignKey(Automation, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.IntegerField()
    kind = models.CharField(max_length=100)
    started = models.DateTimeField()
    finished = models.DateTimeField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    summary = models.TextField(blank=True, default="")
    # {"method", "url", "headers", "body"} for HTTP; {"from", "to", "subject", "body"} for mail.
    request = models.JSONField(default=dict, blank=True)
    # {"status_code", "headers", "body", "truncated", "redirects"}
    response = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    is_test = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["automation", "-started"], name="delivery_automation_time")]

    def __str__(self) -> str:
        return f"{self.kind} attempt {self.attempt} ({self.outcome})"

    @property
    def is_mail(self) -> bool:
        return "to" in self.request


class EngineCursor(models.Model):
    """How far the engine has read the event log, durably.

    `version` changes with every write of engine state, so an engine can tell whether another
    one wrote in between and its in-memory copy is stale.
    """

    # The deployment's engine (`serve`, `run_engine`): the row an engine is given unless named
    # otherwise, and the one the explain page reads.
    DEFAULT = "default"

    name = models.CharField(max_length=50, primary_key=True)
    received = models.DateTimeField(null=True, blank=True)
    event_id = models.UUIDField(null=True, blank=True)
    version = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)


class SeenEvent(models.Model):
    """Events near the cursor that changed trigger state, so a re-read never counts them twice."""

    event_id = models.UUIDField(primary_key=True)
    received = models.DateTimeField(db_index=True)


class ParkedEvent(models.Model):
    """An event waiting for the event it `follows` (reference §1.5)."""

    event_id = models.UUIDField(primary_key=True)
    leader_id = models.UUIDField(db_index=True)
    received = models.DateTimeField()
