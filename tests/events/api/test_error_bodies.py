"""Error bodies carry Prefect's keys (`exception_message`, `exception_detail`, `request_body`)
as well as ours (`detail`, `errors`), on every API."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.x"]}


def test_a_422_has_our_field_errors_and_prefects_keys(api_client):
    body = {"name": "", "trigger": TRIGGER, "actions": [], "nope": 1}

    response = api_client.post("/api/automations/", body, format="json")

    assert response.status_code == 422
    data = response.json()
    assert data["detail"] == "Invalid automation."
    assert {e["field"] for e in data["errors"]} == {"name", "nope"}
    assert data["exception_message"] == "Invalid automation."
    assert {tuple(e["loc"]) for e in data["exception_detail"]} == {
        ("body", "name"),
        ("body", "nope"),
    }
    assert all(e["msg"] and e["type"] for e in data["exception_detail"])
    assert data["request_body"] == body


def test_pydantic_bodies_answer_422_the_same_way(api_client):
    response = api_client.post("/api/events/filter", {"limit": 10_000}, format="json")

    assert response.status_code == 422
    data = response.json()
    assert data["errors"][0]["field"] == "limit"
    assert data["exception_detail"][0]["loc"] == ["body", "limit"]
    assert data["request_body"] == {"limit": 10_000}


def test_a_404_has_prefects_exception_message(api_client):
    automation = api_client.get(f"/api/automations/{uuid.uuid4()}")
    webhook = api_client.get(f"/api/webhooks/{uuid.uuid4()}")

    assert automation.status_code == 404
    assert automation.json() == {
        "detail": "Automation not found.",
        "exception_message": "Automation not found.",
    }
    assert webhook.status_code == 404
    assert webhook.json()["exception_message"] == webhook.json()["detail"]


def test_authentication_errors_have_prefects_exception_message():
    response = APIClient().post("/api/automations/filter", {}, format="json")

    assert response.status_code in (401, 403)
    assert response.json()["exception_message"] == response.json()["detail"]


def test_related_to_follows_prefect_and_ignores_pause_targets(api_client):
    target = api_client.post(
        "/api/automations/", {"name": "target", "trigger": TRIGGER, "actions": []}, format="json"
    ).json()
    api_client.post(
        "/api/automations/",
        {
            "name": "pauser",
            "trigger": TRIGGER,
            "actions": [{"type": "pause-automation", "automation_id": target["id"]}],
        },
        format="json",
    )

    response = api_client.get(f"/api/automations/related-to/prefect.automation.{target['id']}")

    assert response.status_code == 200
    assert response.json() == []
