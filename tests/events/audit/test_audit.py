"""The audit log: sign-ins, tokens and admin changes become events no one can alter."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from events import audit
from events.models import ApiToken, Event, EventResource, Webhook
from events.retention import prune
from tests.factories import event_data

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def events_named(name: str) -> list[Event]:
    return list(Event.objects.filter(event=name).order_by("received"))


def test_login_logout_and_failed_login_are_audited(client, user):
    bad = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "wrong"},
        REMOTE_ADDR="10.0.0.7",
        HTTP_USER_AGENT="curl/8",
    )
    good = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    out = client.post("/accounts/logout/")

    assert bad.status_code == 200
    assert good.status_code == 302
    assert out.status_code == 302
    [failed] = events_named(audit.USER_LOGIN_FAILED)
    assert failed.resource["prefect.resource.id"] == f"prefect-cloud.user.{user.pk}"
    assert failed.payload["actor"]["user"] is None
    assert failed.payload["actor"]["ip"] == "10.0.0.7"
    assert failed.payload["actor"]["user_agent"] == "curl/8"
    assert failed.payload["username"] == "alice"
    assert "wrong" not in str(failed.payload)
    [logged_in] = events_named(audit.USER_LOGGED_IN)
    assert logged_in.payload["actor"]["user"] == "alice"
    assert logged_in.related == [audit.user_resource(user, "actor")]
    assert len(events_named(audit.USER_LOGGED_OUT)) == 1


def test_failed_login_for_an_unknown_account_names_the_attempt(client):
    client.post("/accounts/login/", {"username": "mallory", "password": "x"})

    [failed] = events_named(audit.USER_LOGIN_FAILED)
    assert failed.resource["prefect.resource.id"] == "prefect-cloud.user.unknown"
    assert failed.payload["username"] == "mallory"


def test_token_create_and_revoke_on_the_account_page_are_audited(logged_in_client, user):
    created = logged_in_client.post("/account/tokens/", {"name": "laptop"})

    token = ApiToken.objects.get(name="laptop")
    html = created.content.decode()
    assert created.status_code == 200
    assert "shown only this once" in html
    assert created["Cache-Control"] == "no-store"
    revoked = logged_in_client.post(f"/account/tokens/{token.pk}/revoke/")
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None
    [made] = events_named(audit.TOKEN_CREATED)
    assert made.resource == {
        "prefect.resource.id": f"prefect-cloud.api-token.{token.pk}",
        "prefect.resource.name": "laptop",
    }
    assert made.payload["actor"]["user"] == "alice"
    assert made.payload["prefix"] == token.prefix
    assert token.digest not in str(made.payload)
    [gone] = events_named(audit.TOKEN_REVOKED)
    assert gone.payload["target"]["id"] == f"prefect-cloud.api-token.{token.pk}"


def test_admin_change_records_a_before_after_diff(client, admin_user):
    client.force_login(admin_user)
    webhook = Webhook.objects.create(name="before", template="{}")

    response = client.post(
        f"/admin/events/webhook/{webhook.pk}/change/",
        {"name": "after", "description": "", "kind": "dynamic", "template": "{}", "enabled": "on"},
    )

    assert response.status_code == 302
    [changed] = events_named(audit.ADMIN_CHANGED)
    assert changed.resource["prefect.resource.id"] == f"prefect-cloud.webhook.{webhook.pk}"
    assert changed.payload["changes"] == {"name": {"before": "before", "after": "after"}}
    assert changed.payload["actor"]["user"] == "admin"
    assert changed.payload["model"] == "events.webhook"


def test_admin_password_change_is_audited_without_the_hash(client, admin_user, user):
    client.force_login(admin_user)

    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": "a new long passphrase 7", "password2": "a new long passphrase 7"},
    )

    assert response.status_code == 302
    [changed] = events_named(audit.ADMIN_CHANGED)
    user.refresh_from_db()
    assert "password" in changed.payload["changes"]
    assert user.password not in str(changed.payload)
    assert changed.payload["changes"]["password"]["after"].startswith("[redacted ")


def test_admin_bulk_delete_is_audited(client, admin_user, user):
    client.force_login(admin_user)
    tokens = [ApiToken.issue(user, name=f"t{i}")[0] for i in range(2)]

    response = client.post(
        "/admin/events/apitoken/",
        {"action": "delete_selected", "_selected_action": [t.pk for t in tokens], "post": "yes"},
    )

    assert response.status_code == 302
    assert not ApiToken.objects.exists()
    deleted = events_named(audit.ADMIN_DELETED)
    assert sorted(e.payload["object_id"] for e in deleted) == sorted(str(t.pk) for t in tokens)
    assert LogEntry.objects.count() == 2


def test_audit_events_cannot_be_changed_or_deleted_in_the_admin(client, admin_user, user):
    client.force_login(admin_user)
    event = audit.record(audit.TOKEN_CREATED, target=user, user=user)
    url = f"/admin/events/event/{event.id}"

    change = client.post(f"{url}/change/", {"event": "forged"})
    delete = client.post(f"{url}/delete/", {"post": "yes"})
    bulk = client.post(
        "/admin/events/event/",
        {"action": "delete_selected", "_selected_action": [str(event.id)], "post": "yes"},
    )

    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk.status_code in (200, 302)
    stored = Event.objects.get(id=event.id)
    assert stored.event == audit.TOKEN_CREATED


def test_audit_events_cannot_be_changed_or_deleted_through_the_api(api_client, user):
    event = audit.record(audit.TOKEN_CREATED, target=user, user=user)

    delete = api_client.delete(f"/api/events/{event.id}")
    put = api_client.put("/api/events", [], format="json")
    repost = api_client.post(
        "/api/events",
        [{**event.to_wire(), "payload": {"forged": True}}],
        format="json",
    )

    assert delete.status_code in (404, 405)
    assert put.status_code == 405
    assert repost.status_code == 422  # an audit name comes only from eventsite itself
    assert "reserved" in repost.json()["errors"][0]["message"]
    assert Event.objects.get(id=event.id).payload["actor"]["via"] == "system"


@pytest.mark.parametrize("name", ["prefect-cloud.user.logged-in", "eventsite.ingest.rejected"])
def test_a_client_cannot_forge_an_audit_or_eventsite_event(api_client, name):
    forged = {
        "occurred": "2024-01-01T00:00:00Z",
        "event": name,
        "resource": {"prefect.resource.id": "prefect-cloud.user.1"},
        "id": str(uuid.uuid4()),
    }

    response = api_client.post("/api/events", [forged], format="json")

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "event"
    assert "reserved" in error["message"]
    assert not Event.objects.filter(event=name, id=forged["id"]).exists()


def test_record_refuses_a_name_outside_the_audit_list(user):
    with pytest.raises(ValueError, match="not an audit event"):
        audit.record("acme.thing.done", target=user)


def test_automation_changes_can_be_recorded_with_a_diff(user):
    target = {
        "prefect.resource.id": f"prefect.automation.{uuid.uuid4()}",
        "prefect.resource.name": "a",
    }

    event = audit.record(
        audit.AUTOMATION_UPDATED,
        target=target,
        user=user,
        before={"enabled": True, "name": "a"},
        after={"enabled": True, "name": "b"},
    )

    assert event.payload["changes"] == {"name": {"before": "a", "after": "b"}}
    assert Event.objects.get(id=event.id).resource == target


def test_retention_keeps_audit_events_longer(settings, user):
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=7)
    settings.EVENTSITE_AUDIT_RETENTION = timedelta(days=365)
    old_audit = audit.record(audit.USER_LOGGED_IN, target=user, user=user)
    ancient_audit = audit.record(audit.USER_LOGGED_OUT, target=user, user=user)
    for event, age in ((old_audit, timedelta(days=30)), (ancient_audit, timedelta(days=400))):
        # As stored by ingest: the resource rows share their event's occurred.
        Event.objects.filter(id=event.id).update(occurred=timezone.now() - age)
        EventResource.objects.filter(event_id=event.id).update(occurred=timezone.now() - age)
    from events.ingest import ingest

    ingest([event_data(ago=timedelta(days=30)), event_data(ago=timedelta(days=1))], source="t")

    deleted = prune(batch_size=1)

    assert deleted == 2
    names = set(Event.objects.values_list("event", flat=True))
    assert names == {audit.USER_LOGGED_IN, "acme.order.created"}
    # The deleted events' resource rows went with them (PostgreSQL's partitioned log has no
    # foreign key to catch one left behind).
    assert not EventResource.objects.exclude(event_id__in=Event.objects.values("id")).exists()


def test_audit_page_lists_audit_events_newest_first_with_load_more(logged_in_client, user):
    for i in range(55):
        audit.record(audit.TOKEN_CREATED, target={"prefect.resource.id": f"t.{i}"}, user=user)
    Event.objects.create(
        id=uuid.uuid4(),
        occurred=timezone.now(),
        received=timezone.now(),
        event="acme.not.audit",
        resource_id="x",
        resource={"prefect.resource.id": "x"},
    )

    first = logged_in_client.get("/audit/")

    html = first.content.decode()
    assert first.status_code == 200
    assert "acme.not.audit" not in html
    assert first.context["page"].total == 56  # and the login of `logged_in_client`
    assert len(first.context["events"]) == 50
    assert all(e.event in audit.AUDIT_EVENTS for e in first.context["events"])
    shown = [e.occurred for e in first.context["events"]]
    assert shown == sorted(shown, reverse=True)
    assert first.context["more_url"].startswith("/audit/?")
    more = logged_in_client.get(first.context["more_url"], HTTP_HX_REQUEST="true")
    assert more.status_code == 200
    assert len(more.context["events"]) == 6
    assert "<html" not in more.content.decode()
