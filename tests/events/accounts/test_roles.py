"""Roles (viewer, editor, admin) and token scopes, endpoint by endpoint: the API, the pages and
the sockets all ask `events.accounts.roles`."""

from __future__ import annotations

import uuid

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from automations.models import Automation
from events.accounts.models import ApiToken
from events.accounts.roles import readable
from events.api.sockets import NOT_ALLOWED
from events.audit import AUDIT_EVENTS
from events.audit import trail as audit
from events.filters import EventFilter
from events.webhooks.models import Webhook
from tests.automations.test_api import body as automation_body
from tests.events.api.test_sockets import closed_with, socket
from tests.factories import event_data

# Who is asking: a user's role, and the scope of the token they use.
ACTORS = {
    "viewer": ("viewer", ""),
    "editor": ("editor", ""),
    "admin": ("admin", ""),
    "events-write token": ("editor", "events-write"),
    "admin's read-only token": ("admin", "viewer"),
}


def make_user(django_user_model, role: str):
    user = django_user_model.objects.create_user(f"{role}-{uuid.uuid4().hex[:6]}", password="pw")
    if role == "admin":
        user.is_staff = True
        user.save()
    elif role == "viewer":
        user.groups.add(Group.objects.get_or_create(name="viewer")[0])
    return user


@pytest.fixture
def actors(django_user_model, db) -> dict[str, tuple[object, APIClient, str]]:
    out = {}
    for name, (role, scope) in ACTORS.items():
        user = make_user(django_user_model, role)
        _, secret = ApiToken.issue(user, name=name, scope=scope)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        out[name] = (user, client, secret)
    return out


@pytest.fixture
def things(db):
    webhook = Webhook.objects.create(name="w", template='{"event": "a.b"}')
    automation = Automation.objects.create(
        name="a", trigger=automation_body()["trigger"], actions=[{"type": "do-nothing"}]
    )
    return webhook, automation


def api_calls(webhook: Webhook, automation: Automation) -> dict[str, tuple[str, str, object]]:
    return {
        "read events": ("post", "/api/events/filter", {}),
        "count events": ("post", "/api/events/count-by/event", {"filter": {}}),
        "write events": ("post", "/api/events", [event_data()]),
        "read automations": ("post", "/api/automations/filter", {}),
        "read an automation": ("get", f"/api/automations/{automation.id}", None),
        "create an automation": ("post", "/api/automations/", automation_body()),
        "delete an automation": ("delete", f"/api/automations/{automation.id}", None),
        "read webhooks": ("post", "/api/webhooks/filter", {}),
        "create a webhook": (
            "post",
            "/api/webhooks/",
            {"name": "n", "description": "", "template": '{"event": "a.b"}'},
        ),
        "rotate a webhook's slug": ("post", f"/api/webhooks/{webhook.id}/rotate", {}),
    }


V, E, A, W, R = "viewer", "editor", "admin", "events-write token", "admin's read-only token"
ALLOWED = {
    "read events": {V, E, A, R},
    "count events": {V, E, A, R},
    "write events": {E, A, W},
    "read automations": {V, E, A, R},
    "read an automation": {V, E, A, R},
    "create an automation": {E, A},
    "delete an automation": {E, A},
    "read webhooks": {V, E, A, R},
    "create a webhook": {E, A},
    "rotate a webhook's slug": {A},
}


@pytest.mark.django_db
@pytest.mark.parametrize("call", sorted(ALLOWED))
def test_the_api_allows_each_role_what_it_may_do_and_refuses_the_rest(actors, things, call):
    method, path, data = api_calls(*things)[call]
    for actor, (_, client, _) in actors.items():
        response = getattr(client, method)(path, data, format="json")
        if actor in ALLOWED[call]:
            # (a 404: an earlier actor deleted it; the role was not what refused)
            assert response.status_code < 400 or response.status_code == 404, (
                actor,
                call,
                response.content[:300],
            )
        else:
            assert response.status_code == 403, (actor, call, response.status_code)


@pytest.mark.django_db
def test_only_admins_read_webhook_slugs(actors, things):
    webhook, _ = things
    for actor, (_, client, _) in actors.items():
        if actor == W:
            continue
        answer = client.get(f"/api/webhooks/{webhook.id}").json()
        listed = client.post("/api/webhooks/filter", {}, format="json").json()
        if actor == A:
            assert answer["slug"] == webhook.slug
        else:
            assert answer["slug"] is None and answer["url"] is None, actor
            assert webhook.slug not in orjson.dumps(listed).decode(), actor


@pytest.mark.django_db
def test_only_admins_read_the_audit_trail_through_the_api(actors, django_user_model):
    someone = django_user_model.objects.create_user("someone")
    audit.record(audit.TOKEN_CREATED, target=someone, user=someone)
    for actor, (_, client, _) in actors.items():
        if actor == W:
            continue
        events = client.post("/api/events/filter", {}, format="json").json()["events"]
        names = {e["event"] for e in events}
        if actor == A:
            assert audit.TOKEN_CREATED in names
        else:
            assert not any(n.startswith("prefect-cloud.") for n in names), actor


@pytest.mark.django_db
@pytest.mark.parametrize(
    "names",
    [
        {"name": [audit.TOKEN_CREATED]},
        {"name": ["acme.thing", audit.TOKEN_CREATED]},
        {"prefix": ["prefect-cloud."]},
        {"prefix": ["prefect-cloud.api-token."], "exclude_name": ["acme.thing"]},
        {"exclude_prefix": ["acme."]},
    ],
)
def test_a_reader_who_is_not_an_admin_cannot_ask_for_the_audit_trail_by_name(
    actors, django_user_model, names
):
    someone = django_user_model.objects.create_user("someone")
    audit.record(audit.TOKEN_CREATED, target=someone, user=someone)
    body = {"filter": {"event": names}}
    for actor, (_, client, _) in actors.items():
        if actor == W:
            continue
        events = client.post("/api/events/filter", body, format="json").json()["events"]
        assert (audit.TOKEN_CREATED in {e["event"] for e in events}) == (actor == A), actor


@pytest.mark.django_db
@pytest.mark.parametrize(
    "names", [{"name": ["acme.payment.failed"]}, {"prefix": ["acme."]}, {"prefix": ["prefect."]}]
)
def test_a_filter_of_names_outside_the_audit_trail_is_read_as_it_is(django_user_model, names):
    """No exclusion to evaluate (it cost every read of those names) when the filter's names
    cannot be audit names."""
    viewer = django_user_model.objects.create_user("v")
    event_filter = EventFilter.model_validate({"event": names})

    assert readable(event_filter, viewer) == event_filter
    assert readable(EventFilter(), viewer).event.exclude_name == sorted(AUDIT_EVENTS)


@pytest.mark.django_db
def test_a_viewer_token_cannot_write_read_slugs_or_forge_an_audit_event(actors, things):
    webhook, _ = things
    _, client, _ = actors[V]
    forged = event_data("prefect-cloud.user.logged-in", "prefect-cloud.user.1")

    assert client.post("/api/events", [forged], format="json").status_code == 403
    assert client.post("/api/events", [event_data()], format="json").status_code == 403
    assert client.get(f"/api/webhooks/{webhook.id}").json()["slug"] is None
    # Even an editor, who may write events, cannot forge one.
    _, editor, _ = actors[E]
    assert editor.post("/api/events", [forged], format="json").status_code == 422


PAGES = {
    "/events/": {V, E, A},
    "/automations/": {V, E, A},
    "/automations/new/": {E, A},
    "/webhooks/": {V, E, A},
    "/webhooks/new/": {E, A},
    "/audit/": {A},
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(PAGES))
def test_pages_answer_each_role_and_hide_what_it_may_not_do(client, django_user_model, path):
    for role in (V, E, A):
        client.force_login(make_user(django_user_model, role))
        response = client.get(path)
        if role in PAGES[path]:
            assert response.status_code == 200, (role, path)
            html = response.content.decode()
            assert ('href="/audit/"' in html) == (role == A), (role, path)
            if path in ("/automations/", "/webhooks/"):
                assert (f'href="{path}new/"' in html) == (role != V), (role, path)
        else:
            assert response.status_code == 403, (role, path)


@pytest.mark.django_db
def test_the_webhook_page_shows_the_receive_url_to_admins_only(client, django_user_model, things):
    webhook, _ = things
    for role in (V, E, A):
        client.force_login(make_user(django_user_model, role))
        html = client.get(f"/webhooks/{webhook.id}/").content.decode()
        assert (webhook.slug in html) == (role == A), role


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/api/events/in", {E, A, W}), ("/api/events/out", {V, E, A, R})],
)
async def test_sockets_admit_the_roles_they_serve_and_close_1008_for_the_others(
    django_user_model, path, allowed
):
    for actor, (role, scope) in ACTORS.items():
        user = await make_user_async(django_user_model, role)
        _, secret = await issue_async(user, scope)
        ws = socket(path)
        connected, _ = await ws.connect()
        assert connected
        await ws.send_json_to({"type": "auth", "token": f"eventsite:{secret}"})
        if actor in allowed:
            assert await ws.receive_json_from() == {"type": "auth_success"}, actor
        else:
            assert await closed_with(ws) == (1008, NOT_ALLOWED), actor
        await ws.disconnect()


async def make_user_async(django_user_model, role):
    return await sync_to_async(make_user)(django_user_model, role)


async def issue_async(user, scope):
    return await sync_to_async(ApiToken.issue)(user, name="socket", scope=scope)
