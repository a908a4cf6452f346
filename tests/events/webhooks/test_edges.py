"""The receiver's edges: strict templates, repeated query keys, CloudEvents ids, rotation with a
grace period (both ways in), and on the pages the test panel, replay and the verification key."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from django.db import connection
from django.utils import timezone

from events import audit
from events.models import Event, Webhook, WebhookRequest
from events.webhooks.changes import STARTERS
from eventsite.field_secrets import REDACTED

pytestmark = pytest.mark.django_db(transaction=True)

JUNK_PRONE = (
    '{"event": "ci.build.{{ body.status }}", "resource": {"prefect.resource.id": '
    '"ci.repo.{{ body.repo }}"}}'
)


def stored(name: str) -> list[Event]:
    return list(Event.objects.filter(event=name))


def test_strict_templates_refuse_undefined_variables_instead_of_storing_junk(way):
    strict = Webhook.objects.create(name="ci", template=JUNK_PRONE)  # new webhooks are strict
    lenient = Webhook.objects.create(name="old", template=JUNK_PRONE, strict=False)

    refused = way.send(f"/hooks/{strict.slug}", content=b'{"repo": "site"}')
    junk = way.send(f"/hooks/{lenient.slug}", content=b'{"repo": "site"}')

    assert refused.status == 400
    assert "'dict object' has no attribute 'status'" in refused.body["detail"]
    row = WebhookRequest.objects.get(webhook=strict)
    assert row.outcome == "failed" and "status" in row.error
    [failed] = stored("prefect-cloud.webhook.failed")
    assert "status" in failed.payload["error"]
    assert junk.status == 204
    assert stored("ci.build.")  # what strict mode prevents


def test_repeated_query_keys_keep_every_value(way):
    hook = Webhook.objects.create(
        name="q",
        template=(
            '{"event": "q.seen", "resource": {"prefect.resource.id": "q"}, '
            '"payload": {"tags": {{ query.tag|tojson }}, "env": {{ query.env|tojson }}}}'
        ),
    )

    answer = way.send(f"/hooks/{hook.slug}?tag=a&env=prod&tag=b&tag=c", method="GET")

    assert answer.status == 204, answer
    [event] = stored("q.seen")
    assert event.payload == {"tags": ["a", "b", "c"], "env": "prod"}


def cloud_event(**attributes) -> CloudEvent:
    return CloudEvent(
        attributes={"type": "com.example.build", "source": "ci.example", **attributes},
        data={"n": 1},
    )


def test_cloudevents_need_an_id_and_source_plus_id_is_stored_once(way):
    hook = Webhook.objects.create(name="ce", template=STARTERS["cloudevents"], kind="cloudevents")
    url = f"/hooks/{hook.slug}"
    binary = to_binary_event(cloud_event(id="b-1"))
    no_id = {k: v for k, v in binary.headers.items() if k.lower() != "ce-id"}

    missing = way.send(url, method="PUT", headers=no_id, content=binary.body)
    first = way.send(url, method="PUT", headers=dict(binary.headers), content=binary.body)
    again = way.send(url, method="PUT", headers=dict(binary.headers), content=binary.body)
    structured = to_structured_event(cloud_event(id="b-1"))
    same_as_structured = way.send(url, headers=dict(structured.headers), content=structured.body)
    other = to_structured_event(cloud_event(id="b-2"))
    second = way.send(url, headers=dict(other.headers), content=other.body)

    assert (
        missing.status == 400 and "needs an id (binary: a ce-id header)" in missing.body["detail"]
    )
    assert [first.status, again.status, same_as_structured.status, second.status] == [204] * 4
    events = stored("com.example.build")
    assert len(events) == 2  # b-1 once (three times sent), b-2 once
    assert {e.payload["cloudevents"]["id"] for e in events} == {"b-1", "b-2"}


def test_rotation_with_a_grace_period_keeps_the_old_url_until_it_ends(way):
    hook = Webhook.objects.create(name="r", template=STARTERS["static"], kind="static")
    old = hook.slug
    hook.rotate(grace=timedelta(hours=1))

    via_old = way.send(f"/hooks/{old}", content=b"{}")
    via_new = way.send(f"/hooks/{hook.slug}", content=b"{}")
    assert via_old.status == 204 and via_new.status == 204
    rows = WebhookRequest.objects.filter(webhook=hook)
    assert sorted(r.slug == old for r in rows) == [False, True]  # logged under the webhook

    Webhook.objects.filter(pk=hook.pk).update(
        previous_slug_expires=timezone.now() - timedelta(seconds=1)
    )
    expired = way.send(f"/hooks/{old}", content=b"{}")
    assert expired.status == 404


# --- pages (the test client) ----------------------------------------------------------------------


def test_rotate_page_takes_a_grace_period_and_the_audit_says_so(logged_in_client):
    hook = Webhook.objects.create(name="r", template=STARTERS["static"])
    old = hook.slug

    response = logged_in_client.post(f"/webhooks/{hook.pk}/rotate/", {"grace": "24h"})

    assert response.status_code == 302
    hook.refresh_from_db()
    assert hook.previous_slug == old and hook.old_url_active
    assert hook.previous_slug_expires > timezone.now() + timedelta(hours=23)
    [rotated] = stored(audit.WEBHOOK_ROTATED)
    assert rotated.payload["grace_seconds"] == 86400
    assert old not in json.dumps(rotated.payload)
    page = logged_in_client.get(f"/webhooks/{hook.pk}/").content.decode()
    assert "The previous URL still works until" in page


def test_the_test_panel_shows_strict_errors_and_loads_a_logged_request(logged_in_client, client):
    hook = Webhook.objects.create(name="ci", template=JUNK_PRONE)
    client.post(
        f"/hooks/{hook.slug}?x=1",
        {"repo": "site", "status": "passed"},
        content_type="application/json",
        headers={"X-Build": "42", "Authorization": "Bearer never-kept"},
    )
    row = WebhookRequest.objects.get()

    page = logged_in_client.get(f"/webhooks/{hook.pk}/?sample={row.pk}").content.decode()
    assert "loaded</span> the logged request of" in page
    assert "x-build: 42" in page and "never-kept" not in page
    assert "&quot;status&quot;: &quot;passed&quot;" in page  # the logged body, escaped
    assert 'name="sample_query" value="x=1"' in page

    result = logged_in_client.post(
        "/webhooks/test/",
        {
            "template": JUNK_PRONE,
            "strict": "on",
            "sample_method": "POST",
            "sample_headers": "Content-Type: application/json",
            "sample_body": '{"repo": "site"}',
        },
    ).content.decode()
    assert ">400<" in result and "has no attribute" in result and "status" in result


def test_replay_keeps_the_original_time_and_asks_before_storing_twice(logged_in_client, client):
    hook = Webhook.objects.create(name="m", template=JUNK_PRONE)
    with time_machine.travel(timezone.now() - timedelta(hours=3), tick=False):
        client.post(
            f"/hooks/{hook.slug}", {"repo": "a", "status": "ok"}, content_type="application/json"
        )
    original = WebhookRequest.objects.get()
    url = f"/webhooks/{hook.pk}/requests/{original.pk}/replay/"

    asked = logged_in_client.post(url)
    assert asked.status_code == 200
    assert "Replay a request that was already accepted?" in asked.content.decode()
    assert WebhookRequest.objects.count() == 1

    done = logged_in_client.post(url, {"confirm": "1"})
    assert done.status_code == 302
    replay = WebhookRequest.objects.exclude(pk=original.pk).get()
    assert replay.replay_of_id == original.pk and replay.accepted
    events = sorted(stored("ci.build.ok"), key=lambda e: e.received)
    assert len(events) == 2
    assert events[1].occurred == original.received  # when it happened, not when replayed


def test_a_failed_request_replays_without_asking(logged_in_client, client):
    hook = Webhook.objects.create(name="m", template=JUNK_PRONE)
    client.post(f"/hooks/{hook.slug}", {"repo": "a"}, content_type="application/json")
    hook.template = JUNK_PRONE.replace("body.status", "body.status|default('unknown')")
    hook.save()
    original = WebhookRequest.objects.get()

    response = logged_in_client.post(f"/webhooks/{hook.pk}/requests/{original.pk}/replay/")

    assert response.status_code == 302
    assert stored("ci.build.unknown")


def test_the_verification_key_is_write_only_in_the_api_the_form_and_the_audit(
    api_client, logged_in_client
):
    key = "ghsecret-" + "9" * 20
    created = api_client.post(
        "/api/webhooks/",
        {
            "name": "gh",
            "template": STARTERS["static"],
            "verification": "github",
            "verification_secret": key,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["verification_secret"] == REDACTED
    hook = Webhook.objects.get()
    answers = [created.content.decode()]
    # a client that reads and writes back the webhook keeps the key
    read = api_client.get(f"/api/webhooks/{hook.pk}").json()
    answers.append(json.dumps(read))
    editable = {k: read[k] for k in ("name", "description", "template", "verification_secret")}
    assert api_client.put(f"/api/webhooks/{hook.pk}", editable, format="json").status_code == 204
    hook.refresh_from_db()
    assert hook.verification_secret == key

    page = logged_in_client.get(f"/webhooks/{hook.pk}/").content.decode()
    assert "•••• set" in page
    # saved from the page with the key left empty: kept
    form = {
        "name": "gh2",
        "description": "",
        "kind": "static",
        "template": STARTERS["static"],
        "strict": "on",
        "verification": "github",
        "verification_secret": "",
        "signature_tolerance": "300",
    }
    assert logged_in_client.post(f"/webhooks/{hook.pk}/", form).status_code == 302
    hook.refresh_from_db()
    assert hook.name == "gh2" and hook.verification_secret == key

    no_key = api_client.patch(
        f"/api/webhooks/{hook.pk}",
        {"verification": "bearer", "verification_secret": ""},
        format="json",
    )
    assert no_key.status_code == 422
    assert no_key.json()["errors"][0]["field"] == "verification_secret"

    [created_audit] = stored(audit.WEBHOOK_CREATED)
    assert created_audit.payload["changes"]["verification_secret"]["after"].startswith("[redacted ")
    texts = answers + [page] + [json.dumps(e.to_wire(), default=str) for e in Event.objects.all()]
    texts.append(logged_in_client.get("/audit/").content.decode())
    assert not any(key in text for text in texts)


def test_the_verification_key_is_sealed_in_the_database():
    hook = Webhook.objects.create(name="x", template="{}", verification_secret="plain-key-123")
    with connection.cursor() as cursor:
        cursor.execute("SELECT verification_secret, name FROM events_webhook")
        [(raw, name)] = cursor.fetchall()
    assert name == hook.name
    assert raw.startswith("sealed:v1:") and "plain-key-123" not in raw
    assert Webhook.objects.get().verification_secret == "plain-key-123"
