"""`/hooks/<slug>`: any request becomes an event, or a logged failure with a clear answer.

The live tests send real HTTP to `manage.py serve` (its ASGI fast path); the others go through
the Django view with the test client. Both run the same `events.webhooks` code.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from events.models import Event, Webhook, WebhookRequest
from events.webhooks import receive as receive_module
from events.webhooks.changes import STARTERS

DYNAMIC = (
    '{"event": "model.refreshed", "resource": {"prefect.resource.id": "product.models.'
    '{{ body.model }}", "prefect.resource.name": "{{ body.friendly_name|default(body.model) }}"}}'
)


def make_webhook(template: str = DYNAMIC, **fields) -> Webhook:
    return Webhook.objects.create(name=fields.pop("name", "models"), template=template, **fields)


def stored(event_name: str) -> list[Event]:
    return list(Event.objects.filter(event=event_name).order_by("received"))


# --- live server ---------------------------------------------------------------------------------


@pytest.mark.live
def test_live_dynamic_template_stores_the_event_and_logs_the_request(server):
    webhook = make_webhook()

    response = httpx.post(
        f"{server.url}/hooks/{webhook.slug}",
        json={"model": "recs", "friendly_name": "Recommendations"},
        headers={"Authorization": "Bearer secret-value", "Cookie": "sessionid=abc"},
    )

    assert response.status_code == 204
    assert response.content == b""
    [event] = stored("model.refreshed")
    assert event.resource == {
        "prefect.resource.id": "product.models.recs",
        "prefect.resource.name": "Recommendations",
    }
    assert event.related == [
        {
            "prefect.resource.id": f"prefect-cloud.webhook.{webhook.id}",
            "prefect.resource.role": "webhook",
            "prefect.resource.name": "models",
        }
    ]
    # No payload in the template: the request itself, without its secrets.
    assert event.payload["method"] == "POST"
    assert event.payload["body"] == {"model": "recs", "friendly_name": "Recommendations"}
    assert "authorization" not in event.payload["headers"]
    assert "cookie" not in event.payload["headers"]
    [row] = WebhookRequest.objects.all()
    assert (row.status, row.outcome, row.event_id) == (204, "accepted", event.id)
    assert "authorization" not in row.headers and "cookie" not in row.headers
    [notice] = stored("prefect-cloud.webhook.received")
    assert notice.resource["prefect.resource.id"] == f"prefect-cloud.webhook.{webhook.id}"
    assert notice.payload["event_id"] == str(event.id)


@pytest.mark.live
def test_live_cloudevents_structured_mode_maps_type_subject_time_and_data(server):
    webhook = make_webhook(STARTERS["cloudevents"])
    cloud_event = CloudEvent(
        attributes={
            "type": "com.example.order.created",
            "source": "https://shop.example/orders",
            "subject": "order-31",
            "id": "not-a-uuid-1",
            "time": datetime(2024, 4, 5, 17, 31, tzinfo=UTC),
        },
        data={"total": 42},
    )
    message = to_structured_event(cloud_event)

    response = httpx.post(
        f"{server.url}/hooks/{webhook.slug}", headers=message.headers, content=message.body
    )

    assert response.status_code == 204, response.text
    [event] = stored("com.example.order.created")
    assert event.resource["prefect.resource.id"] == "order-31"
    assert event.occurred.isoformat() == "2024-04-05T17:31:00+00:00"
    assert event.payload["data"] == {"total": 42}
    assert event.payload["cloudevents"]["id"] == "not-a-uuid-1"
    assert event.payload["cloudevents"]["source"] == "https://shop.example/orders"
    assert event.id != "not-a-uuid-1"


@pytest.mark.live
def test_live_cloudevents_binary_mode_uses_the_source_without_a_subject(server):
    webhook = make_webhook(STARTERS["cloudevents"])
    cloud_event = CloudEvent(
        attributes={
            "type": "com.example.build.finished",
            "source": "ci.example/builds",
            "id": "b-7",
            "datacontenttype": "text/plain",
        },
        data="build 7 passed",
    )
    message = to_binary_event(cloud_event)
    assert any(name.startswith("ce-") for name in message.headers)

    response = httpx.put(
        f"{server.url}/hooks/{webhook.slug}", headers=message.headers, content=message.body
    )

    assert response.status_code == 204, response.text
    [event] = stored("com.example.build.finished")
    assert event.resource["prefect.resource.id"] == "ci.example/builds"
    assert event.payload["data"] == "build 7 passed"
    assert event.payload["cloudevents"]["datacontenttype"] == "text/plain"


@pytest.mark.live
def test_live_error_answers_are_logged_and_reported(server):
    webhook = make_webhook()
    disabled = make_webhook(name="off", enabled=False)
    url = f"{server.url}/hooks"

    invalid = httpx.post(f"{url}/{webhook.slug}", json={"model": 'a"b'})
    unknown = httpx.post(f"{url}/{'x' * 22}", content=b"not kept!!!")
    gone = httpx.post(f"{url}/{disabled.slug}", json={"model": "m"})
    too_large = httpx.post(f"{url}/{webhook.slug}", content=b"x" * 1_500_001)

    assert invalid.status_code == 400
    assert "did not render valid JSON" in invalid.json()["detail"]
    assert unknown.status_code == 404
    assert gone.status_code == 410
    assert too_large.status_code == 413
    assert "larger than 1500000 bytes" in too_large.json()["detail"]
    rows = {r.status: r for r in WebhookRequest.objects.all()}
    assert set(rows) == {400, 404, 410, 413}
    # A made-up URL is logged as metadata only: not its body.
    assert rows[404].webhook is None and bytes(rows[404].body) == b""
    assert "11 bytes from 127.0.0.1, not kept" in rows[404].error
    assert rows[413].body_truncated and len(bytes(rows[413].body)) == 1_500_000
    assert rows[400].rendered.startswith('{"event": "model.refreshed"')
    failed = stored("prefect-cloud.webhook.failed")
    assert sorted(e.payload["status"] for e in failed) == [400, 404, 410, 413]
    assert not stored("model.refreshed")


@pytest.mark.live
def test_live_template_injection_is_refused_quickly_and_the_server_keeps_serving(server):
    attacks = [
        "{{ ''.__class__.__mro__ }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{{ 'a' * 10**9 }}",
        "{% set s = 'a' * 1000000 %}{{ s ~ s ~ s }}",
        "{% macro f() %}{% for i in range(100) %}{{ f() }}{% endfor %}{% endmacro %}{{ f() }}",
    ]
    for template in attacks:
        webhook = make_webhook(template, name=template[:50])
        started = time.perf_counter()

        response = httpx.post(f"{server.url}/hooks/{webhook.slug}", json={}, timeout=10)

        assert response.status_code == 400, template
        assert "Template error" in response.json()["detail"]
        assert time.perf_counter() - started < 2.0, template
    healthy = make_webhook(name="healthy")
    ok = httpx.post(f"{server.url}/hooks/{healthy.slug}", json={"model": "still-fine"})
    assert ok.status_code == 204
    assert WebhookRequest.objects.filter(status=400).count() == len(attacks)


@pytest.mark.live
def test_live_receiver_refuses_a_host_that_is_not_allowed(server):
    webhook = make_webhook()

    response = httpx.post(
        f"{server.url}/hooks/{webhook.slug}", json={"model": "m"}, headers={"Host": "evil.example"}
    )

    assert response.status_code == 400
    assert not WebhookRequest.objects.exists()


# --- the Django view (test client) -----------------------------------------------------------------


@pytest.mark.django_db
def test_form_encoded_body_is_a_flat_dict_of_fields(client):
    webhook = make_webhook()

    response = client.post(
        f"/hooks/{webhook.slug}",
        "model=form-model&friendly_name=From+a+form",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 204
    [event] = stored("model.refreshed")
    assert event.resource["prefect.resource.id"] == "product.models.form-model"
    assert event.resource["prefect.resource.name"] == "From a form"
    assert event.payload["body"] == {"model": "form-model", "friendly_name": "From a form"}


@pytest.mark.django_db
def test_multipart_form_fields_reach_the_template(client):
    webhook = make_webhook()

    response = client.post(f"/hooks/{webhook.slug}", {"model": "multi", "friendly_name": "Ü"})

    assert response.status_code == 204
    [event] = stored("model.refreshed")
    assert event.resource["prefect.resource.id"] == "product.models.multi"
    assert event.resource["prefect.resource.name"] == "Ü"


@pytest.mark.django_db
def test_text_body_is_passed_as_a_string(client):
    webhook = make_webhook(
        '{"event": "log.line", "resource": {"prefect.resource.id": "app"},'
        ' "payload": {"line": {{ body|tojson }}, "upper": "{{ body|upper }}"}}'
    )

    response = client.generic(
        "POST", f"/hooks/{webhook.slug}", b"disk almost full", content_type="text/plain"
    )

    assert response.status_code == 204
    [event] = stored("log.line")
    assert event.payload == {"line": "disk almost full", "upper": "DISK ALMOST FULL"}


@pytest.mark.django_db
def test_headers_query_and_method_reach_the_template_case_insensitively(client):
    webhook = make_webhook(
        '{"event": "hook.{{ method|lower }}", "resource": {"prefect.resource.id": "r"},'
        ' "payload": {"agent": "{{ headers["X-Agent"] }}", "env": "{{ query.env }}",'
        ' "auth": "{{ headers.authorization }}"}}',
        strict=False,  # the redacted header is undefined: "" when not strict
    )

    response = client.delete(
        f"/hooks/{webhook.slug}?env=prod",
        headers={"X-Agent": "deployer/1.0", "Authorization": "Bearer nope"},
    )

    assert response.status_code == 204
    [event] = stored("hook.delete")
    assert event.payload == {"agent": "deployer/1.0", "env": "prod", "auth": ""}


@pytest.mark.django_db
def test_pass_through_template_accepts_a_partial_prefect_event(client):
    webhook = make_webhook(STARTERS["pass-through"])
    event_id = uuid.uuid4()

    response = client.post(
        f"/hooks/{webhook.slug}",
        {"event": "acme.shipped", "resource": {"prefect.resource.id": "o.1"}, "id": str(event_id)},
        content_type="application/json",
    )

    assert response.status_code == 204
    event = Event.objects.get(id=event_id)
    assert event.payload["body"]["event"] == "acme.shipped"
    assert event.related[-1]["prefect.resource.role"] == "webhook"


@pytest.mark.django_db
def test_invalid_event_answers_400_with_the_field_and_keeps_the_request(client):
    webhook = make_webhook('{"event": "x", "resource": {"name": "{{ body.name }}"}}')

    response = client.post(f"/hooks/{webhook.slug}", {"name": "n"}, content_type="application/json")

    assert response.status_code == 400
    assert "resource.prefect.resource.id" in response.json()["detail"]
    row = WebhookRequest.objects.get()
    assert row.outcome == "failed"
    assert orjson.loads(bytes(row.body)) == {"name": "n"}
    [failed] = stored("prefect-cloud.webhook.failed")
    assert failed.payload["rendered"] == '{"event": "x", "resource": {"name": "n"}}'
    assert failed.payload["body"] == '{"name": "n"}'


@pytest.mark.django_db
def test_a_template_rendering_something_other_than_an_object_answers_400(client):
    webhook = make_webhook("[1, 2]")

    response = client.get(f"/hooks/{webhook.slug}")

    assert response.status_code == 400
    assert response.json() == {"detail": "The template must render a JSON object, not list."}


@pytest.mark.django_db
def test_receiver_needs_no_csrf_token_or_session(client):
    csrf_client = type(client)(enforce_csrf_checks=True)
    webhook = make_webhook()

    response = csrf_client.post(f"/hooks/{webhook.slug}/", {"model": "m"})

    assert response.status_code == 204
    assert "sessionid" not in response.cookies


@pytest.mark.django_db
def test_made_up_urls_are_logged_as_metadata_only_and_rate_limited(client, settings):
    settings.EVENTSITE_WEBHOOK_UNKNOWN_PER_MINUTE = 5
    receive_module.unknown_budget = receive_module.Budget()  # a fresh minute for this test
    answers = [
        client.post(f"/hooks/made-up-{i}", b"x" * 100_000, content_type="text/plain")
        for i in range(20)
    ]

    assert {a.status_code for a in answers} == {404}
    rows = list(WebhookRequest.objects.all())
    assert 1 <= len(rows) <= 6  # the budget refills a little while the test runs
    assert all(bytes(r.body) == b"" and r.headers == {} for r in rows)
    notices = stored("prefect-cloud.webhook.failed")
    assert len(notices) == len(rows)
    assert all("body" not in n.payload or n.payload["body"] == "" for n in notices)
