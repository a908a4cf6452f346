"""The migration that moves existing secrets out of the clear and renames eventsite's kinds."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from automations.actions import parse_action
from eventsite.field_secrets import REDACTED

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("automations", "0002_delivery_log"),
    ("events", "0004_indexes_for_engine_and_roles"),
]
AFTER = [
    ("automations", "0003_seal_action_secrets"),
    ("events", "0005_webhook_verification_strict_grace"),
]
CLEAR = {"type": "call-webhook", "url": "https://x.example/in", "headers": {"X-Key": "clear-1"}}
MAIL = {"type": "send-notification", "to": ["a@example.com"], "body": "b"}


@pytest.fixture(autouse=True)
def _back_to_the_latest_schema():
    """Leave the database at the newest migration of every app, whatever migrations come later:
    the tests after this one (and the servers they start) need the whole schema."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_secrets_are_sealed_renamed_and_scrubbed_from_the_log():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    automation = old.get_model("automations", "Automation").objects.create(
        id=uuid.uuid4(),
        name="legacy",
        trigger={"type": "event", "posture": "Reactive", "expect": ["x"]},
        actions=[CLEAR, MAIL],
    )
    Event = old.get_model("events", "Event")
    now = timezone.now()
    for name, payload in (
        ("prefect-cloud.webhook.failed", {"path": "/hooks/the-old-slug", "status": 400}),
        ("prefect.automation.created", {"actions": [CLEAR]}),
        (
            "prefect-cloud.automation.updated",
            {"changes": {"actions": {"before": [CLEAR], "after": [CLEAR, MAIL]}}},
        ),
    ):
        Event.objects.create(
            id=uuid.uuid4(),
            occurred=now,
            received=now,
            event=name,
            resource_id=f"prefect.automation.{automation.id}",
            resource={"prefect.resource.id": f"prefect.automation.{automation.id}"},
            related=[],
            payload=payload,
        )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    new = executor.loader.project_state(AFTER).apps
    stored = new.get_model("automations", "Automation").objects.get(pk=automation.id)
    assert [a["type"] for a in stored.actions] == ["call-webhook-url", "send-email"]
    assert stored.actions[0]["headers"]["X-Key"].startswith("sealed:v1:")
    assert parse_action(stored.actions[0]).headers == {"X-Key": "clear-1"}
    NewEvent = new.get_model("events", "Event")
    for row in NewEvent.objects.all():
        assert "clear-1" not in str(row.payload) and "the-old-slug" not in str(row.payload)
    assert NewEvent.objects.get(event="prefect-cloud.webhook.failed").payload == {"status": 400}
    created = NewEvent.objects.get(event="prefect.automation.created")
    assert created.payload["actions"][0]["headers"] == {"X-Key": REDACTED}


def test_automations_enabled_before_enabled_since_existed_count_as_enabled_since_made():
    before = [("automations", "0005_resolve")]
    after = [("automations", "0006_automation_enabled_since")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("automations", "Automation")
    made = timezone.now() - timedelta(days=3)
    trigger = {"type": "event", "posture": "Reactive", "expect": ["x"]}
    on = old.objects.create(id=uuid.uuid4(), name="on", trigger=trigger, created=made)
    off = old.objects.create(id=uuid.uuid4(), name="off", trigger=trigger, enabled=False)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("automations", "Automation")
    assert new.objects.get(pk=on.id).enabled_since == made
    assert new.objects.get(pk=off.id).enabled_since is None


def test_existing_firings_become_triggered_when_resolve_arrives():
    before = [("automations", "0004_firing_triggering_event_index")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    automation = old.get_model("automations", "Automation").objects.create(
        id=uuid.uuid4(),
        name="old firings",
        trigger={"type": "event", "posture": "Proactive", "expect": ["x"], "within": 10},
        actions=[{"type": "do-nothing"}],
    )
    firing = old.get_model("automations", "Firing").objects.create(
        id=uuid.uuid4(), automation=automation, triggered=timezone.now(), trigger_id=uuid.uuid4()
    )
    executor = MigrationExecutor(connection)
    executor.migrate([("automations", "0005_resolve")])
    new = executor.loader.project_state([("automations", "0005_resolve")]).apps
    assert new.get_model("automations", "Firing").objects.get(id=firing.id).state == "Triggered"
    assert new.get_model("automations", "TriggerOutage").objects.count() == 0
