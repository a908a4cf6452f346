"""The webhook pages: create, edit with the test panel, rotate, toggle, delete, log and replay."""

from __future__ import annotations

import re

import pytest

from events import audit
from events.models import Event, Webhook, WebhookRequest
from events.webhooks.changes import STARTERS

pytestmark = pytest.mark.django_db

BROKEN = '{"event": "model.refreshed", "resource": {"prefect.resource.id": "m.{{ body.model }}"'
FIXED = BROKEN + "}}"


def audit_events(name: str) -> list[Event]:
    return list(Event.objects.filter(event=name).order_by("received"))


def test_pages_require_login(client):
    for url in ["/webhooks/", "/webhooks/new/", "/account/tokens/", "/audit/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_creating_a_webhook_with_the_kind_starter_records_who_did_it(logged_in_client, user):
    response = logged_in_client.post(
        "/webhooks/new/",
        {"name": "CI builds", "description": "", "kind": "cloudevents", "template": ""},
        REMOTE_ADDR="10.1.2.3",
        HTTP_USER_AGENT="pytest-browser",
    )

    webhook = Webhook.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/webhooks/{webhook.pk}/"
    assert webhook.template == STARTERS["cloudevents"]
    assert webhook.owner == user
    assert len(webhook.slug) >= 22  # 16 random bytes, URL-safe
    [created] = audit_events(audit.WEBHOOK_CREATED)
    assert created.resource["prefect.resource.id"] == f"prefect-cloud.webhook.{webhook.pk}"
    assert created.payload["actor"] == {
        "user": "alice",
        "user_id": user.pk,
        "token": None,
        "ip": "10.1.2.3",
        "user_agent": "pytest-browser",
        "via": "web",
    }
    assert created.payload["changes"]["name"] == {"before": None, "after": "CI builds"}
    assert created.payload["changes"]["slug"]["after"].startswith("[redacted ")
    assert webhook.slug not in str(created.payload)
    assert created.related == [audit.user_resource(user, "actor")]


def test_a_template_with_a_syntax_error_is_shown_next_to_the_field(logged_in_client):
    response = logged_in_client.post(
        "/webhooks/new/", {"name": "x", "kind": "dynamic", "template": "{% for %}"}
    )

    assert response.status_code == 200
    assert not Webhook.objects.exists()
    html = response.content.decode()
    assert 'id="id_template_error"' in html
    # The field names its error and help for a screen reader.
    assert re.search(
        r'<textarea[^>]*aria-describedby="id_template_helptext id_template_error"', html
    )
    assert 'aria-invalid="true"' in html
    assert "line 1: Expected an expression" in html


def test_detail_page_shows_the_receive_url_curl_and_escapes_everything(logged_in_client):
    webhook = Webhook.objects.create(
        name="<script>alert(1)</script>", template=STARTERS["dynamic"], kind="dynamic"
    )
    WebhookRequest.objects.create(
        webhook=webhook,
        slug=webhook.slug,
        method="POST",
        path=f"/hooks/{webhook.slug}",
        headers={"x-evil": "<img src=x onerror=alert(2)>"},
        body=b"<b>bold</b>",
        outcome="failed",
        status=400,
        error="<i>bad</i>",
    )

    response = logged_in_client.get(f"/webhooks/{webhook.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f"http://testserver/hooks/{webhook.slug}" in html
    assert f"curl -i -X POST &#x27;http://testserver/hooks/{webhook.slug}&#x27;" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "<b>bold</b>" not in html and "<i>bad</i>" not in html


def test_editing_records_a_before_after_diff(logged_in_client):
    webhook = Webhook.objects.create(name="old", template=STARTERS["static"], kind="static")

    response = logged_in_client.post(
        f"/webhooks/{webhook.pk}/",
        {
            "name": "new",
            "description": "d",
            "kind": "static",
            "template": STARTERS["static"],
            "strict": "on",
        },
    )

    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.name == "new"
    [updated] = audit_events(audit.WEBHOOK_UPDATED)
    assert updated.payload["changes"] == {
        "name": {"before": "old", "after": "new"},
        "description": {"before": "", "after": "d"},
    }


def test_rotate_toggle_and_delete_are_audited(logged_in_client):
    webhook = Webhook.objects.create(name="w", template=STARTERS["static"])
    old_slug = webhook.slug

    assert logged_in_client.post(f"/webhooks/{webhook.pk}/rotate/").status_code == 302
    assert logged_in_client.post(f"/webhooks/{webhook.pk}/toggle/").status_code == 302
    assert logged_in_client.post(f"/webhooks/{webhook.pk}/toggle/").status_code == 302
    webhook.refresh_from_db()
    assert webhook.slug != old_slug and webhook.enabled
    assert logged_in_client.post(f"/webhooks/{webhook.pk}/delete/").status_code == 302

    assert not Webhook.objects.exists()
    [rotated] = audit_events(audit.WEBHOOK_ROTATED)
    slug_change = rotated.payload["changes"]["slug"]
    assert slug_change["before"] != slug_change["after"]
    assert old_slug not in str(rotated.payload) and webhook.slug not in str(rotated.payload)
    [disabled] = audit_events(audit.WEBHOOK_DISABLED)
    assert disabled.payload["changes"] == {"enabled": {"before": True, "after": False}}
    assert len(audit_events(audit.WEBHOOK_ENABLED)) == 1
    [deleted] = audit_events(audit.WEBHOOK_DELETED)
    assert deleted.payload["changes"]["name"] == {"before": "w", "after": None}


def test_test_panel_shows_the_event_the_sample_request_would_make(logged_in_client):
    response = logged_in_client.post(
        "/webhooks/test/",
        {
            "template": STARTERS["dynamic"],
            "name": "models",
            "sample_method": "POST",
            "sample_headers": "Content-Type: application/json",
            "sample_body": '{"model": "recs", "friendly_name": "<Recs>"}',
        },
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "204" in html
    assert "product.models.recs" in html
    assert "&lt;Recs&gt;" in html
    assert not Event.objects.filter(event="model.refreshed").exists()


def test_test_panel_shows_the_error_and_what_was_rendered(logged_in_client):
    response = logged_in_client.post(
        "/webhooks/test/",
        {
            "template": BROKEN,
            "sample_method": "GET",
            "sample_headers": "",
            "sample_body": '{"model": "m"}',
        },
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "did not render valid JSON" in html
    assert "m.m" in html


def test_test_panel_reports_a_malformed_sample_header(logged_in_client):
    response = logged_in_client.post(
        "/webhooks/test/",
        {"template": "{}", "sample_method": "GET", "sample_headers": "no colon here"},
    )

    assert response.status_code == 200
    assert "Line 1: write each header as" in response.content.decode()


def test_a_failed_request_can_be_replayed_after_fixing_the_template(client, logged_in_client):
    webhook = Webhook.objects.create(name="w", template=BROKEN)
    sent = client.post(f"/hooks/{webhook.slug}", {"model": "m1"}, content_type="application/json")
    assert sent.status_code == 400
    failed = WebhookRequest.objects.get()
    page = logged_in_client.get(f"/webhooks/{webhook.pk}/?failures=1").content.decode()
    assert f"/webhooks/{webhook.pk}/requests/{failed.pk}/replay/" in page

    webhook.template = FIXED
    webhook.save()
    response = logged_in_client.post(f"/webhooks/{webhook.pk}/requests/{failed.pk}/replay/")

    assert response.status_code == 302
    replayed = WebhookRequest.objects.get(replay_of=failed)
    assert replayed.status == 204
    event = Event.objects.get(event="model.refreshed")
    assert event.id == replayed.event_id
    assert event.resource["prefect.resource.id"] == "m.m1"


def test_request_log_pages_older_requests_by_keyset(logged_in_client):
    webhook = Webhook.objects.create(name="w", template=FIXED)
    rows = [
        WebhookRequest.objects.create(
            webhook=webhook,
            slug=webhook.slug,
            method="GET",
            path="/p",
            outcome="accepted",
            status=204,
        )
        for _ in range(55)
    ]

    first = logged_in_client.get(f"/webhooks/{webhook.pk}/").content.decode()
    assert "Older requests" in first
    newest_first = sorted(rows, key=lambda r: (r.received, r.id), reverse=True)
    anchor = newest_first[49]
    older = logged_in_client.get(
        f"/webhooks/{webhook.pk}/?before={anchor.pk}", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert older.count('class="outcome-accepted"') == 5
    assert "<html" not in older


def test_webhook_list_shows_state_and_unknown_url_requests(logged_in_client):
    Webhook.objects.create(name="Alpha", template="{}", enabled=False)
    WebhookRequest.objects.create(
        slug="gone",
        method="POST",
        path="/hooks/gone",
        body=b"lost?",
        outcome="unknown",
        status=404,
    )

    html = logged_in_client.get("/webhooks/").content.decode()

    assert "Alpha" in html and "disabled" in html
    assert "/hooks/gone" in html and "lost?" in html


def test_the_list_toggle_goes_back_to_the_list_and_refuses_to_leave_the_site(logged_in_client):
    webhook = Webhook.objects.create(name="w", template=STARTERS["static"])
    toggle = f"/webhooks/{webhook.pk}/toggle/"

    back = logged_in_client.post(toggle, {"next": "/webhooks/"})
    elsewhere = logged_in_client.post(toggle, {"next": "https://evil.example/"})

    assert back.status_code == 302 and back["Location"] == "/webhooks/"
    assert elsewhere.status_code == 302 and elsewhere["Location"] == f"/webhooks/{webhook.pk}/"
    webhook.refresh_from_db()
    assert webhook.enabled  # toggled twice


def test_the_list_toggle_over_htmx_answers_with_the_new_row_and_a_toast(logged_in_client):
    webhook = Webhook.objects.create(name="CI", template=STARTERS["static"])

    response = logged_in_client.post(
        f"/webhooks/{webhook.pk}/toggle/", {"next": "/webhooks/"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<tr class="webhook-row disabled"')
    assert "<html" not in html
    assert 'aria-label="Enable CI"' in html
    assert "Webhook disabled" in response["HX-Trigger"]
    webhook.refresh_from_db()
    assert not webhook.enabled
