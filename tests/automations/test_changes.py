"""Automation changes are recorded in the audit log, with actor and before/after diff."""

import pytest

from events import audit
from events.models import Event

pytestmark = pytest.mark.django_db

DEFINITION = {
    "name": "watch orders",
    "trigger": {
        "type": "event",
        "expect": ["acme.order.created"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    },
    "actions": [{"type": "do-nothing"}],
}


def audit_events(name: str):
    return list(Event.objects.filter(event=name).order_by("occurred", "id"))


def test_creating_updating_disabling_and_deleting_through_the_api_is_audited(api_client, user):
    created = api_client.post("/api/automations/", DEFINITION, format="json")
    assert created.status_code == 201, created.content
    automation_id = created.json()["id"]

    assert (
        api_client.put(
            f"/api/automations/{automation_id}",
            {**DEFINITION, "name": "watch all orders"},
            format="json",
        ).status_code
        == 204
    )
    assert (
        api_client.patch(
            f"/api/automations/{automation_id}", {"enabled": False}, format="json"
        ).status_code
        == 204
    )
    assert api_client.delete(f"/api/automations/{automation_id}").status_code == 204

    (made,) = audit_events(audit.AUTOMATION_CREATED)
    (changed,) = audit_events(audit.AUTOMATION_UPDATED)
    (disabled,) = audit_events(audit.AUTOMATION_DISABLED)
    (deleted,) = audit_events(audit.AUTOMATION_DELETED)
    assert made.resource_id == f"prefect.automation.{automation_id}"
    assert made.payload["actor"]["user"] == user.username
    assert made.payload["actor"]["via"] == "api"
    assert changed.payload["changes"]["name"] == {
        "before": "watch orders",
        "after": "watch all orders",
    }
    assert disabled.payload["changes"]["enabled"] == {"before": True, "after": False}
    assert deleted.payload["actor"]["token"] == "tests"


def test_malformed_or_oversized_automation_bodies_get_clear_4xx_answers(api_client, settings):
    malformed = api_client.post("/api/automations/", "{not json", content_type="application/json")
    assert malformed.status_code == 400
    assert "Malformed JSON" in malformed.json()["detail"]

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    oversized = api_client.post(
        "/api/automations/", {**DEFINITION, "description": "x" * 500}, format="json"
    )
    assert oversized.status_code == 413
    assert oversized.json()["detail"]
