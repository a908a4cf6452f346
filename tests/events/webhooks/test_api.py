"""The webhooks REST API, in Prefect Cloud's shape (reference §6.1)."""

from __future__ import annotations

import pytest

from events import audit
from events.models import ApiToken, Event, Webhook
from events.webhooks.changes import STARTERS

pytestmark = pytest.mark.django_db


def test_create_read_list_update_toggle_rotate_delete(api_client):
    settable = {"name": "models", "description": "d", "template": STARTERS["static"]}
    refused = api_client.post("/api/webhooks/", {**settable, "slug": "mine"}, format="json")
    assert refused.status_code == 422  # the slug is the credential: never chosen by a client
    assert [e["field"] for e in refused.json()["errors"]] == ["slug"]
    created = api_client.post("/api/webhooks/", settable, format="json")
    assert created.status_code == 201
    body = created.json()
    webhook_id, slug = body["id"], body["slug"]
    assert slug != "mine" and len(slug) >= 22
    assert body["url"] == f"http://testserver/hooks/{slug}"
    assert body["enabled"] is True and body["kind"] == "static"

    assert api_client.get(f"/api/webhooks/{webhook_id}").json()["name"] == "models"
    listed = api_client.post("/api/webhooks/filter", {}, format="json")
    assert listed.status_code == 200
    assert [w["id"] for w in listed.json()] == [webhook_id]

    replaced = api_client.put(
        f"/api/webhooks/{webhook_id}",
        {"name": "renamed", "description": "", "template": STARTERS["pass-through"]},
        format="json",
    )
    assert replaced.status_code == 204
    toggled = api_client.patch(f"/api/webhooks/{webhook_id}", {"enabled": False}, format="json")
    assert toggled.status_code == 204
    assert Webhook.objects.get().enabled is False

    rotated = api_client.post(f"/api/webhooks/{webhook_id}/rotate")
    assert rotated.status_code == 200
    assert rotated.json()["slug"] != slug
    assert Webhook.objects.get().slug == rotated.json()["slug"]

    assert api_client.delete(f"/api/webhooks/{webhook_id}").status_code == 204
    assert api_client.get(f"/api/webhooks/{webhook_id}").status_code == 404


def test_api_changes_are_audited_with_the_token_name(api_client, user):
    token = ApiToken.objects.get(user=user)

    response = api_client.post(
        "/api/webhooks/", {"name": "n", "template": "{}"}, format="json", REMOTE_ADDR="10.9.9.9"
    )

    assert response.status_code == 201
    [created] = Event.objects.filter(event=audit.WEBHOOK_CREATED)
    assert created.payload["actor"]["user"] == "alice"
    assert created.payload["actor"]["token"] == "tests"
    assert created.payload["actor"]["via"] == "api"
    assert created.payload["actor"]["ip"] == "10.9.9.9"
    assert audit.token_resource(token, "api-token") in created.related


def test_an_invalid_template_is_422_with_the_field(api_client):
    response = api_client.post(
        "/api/webhooks/", {"name": "n", "template": "{% for %}"}, format="json"
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "template"
    assert "Expected an expression" in response.json()["errors"][0]["message"]
    assert not Webhook.objects.exists()


def test_webhook_api_needs_a_token(client):
    assert client.post("/api/webhooks/filter").status_code == 401
