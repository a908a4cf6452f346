"""Automation pages through Django's test client."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from automations.actions import parse_action
from automations.engine import Engine
from automations.forms import AutomationForm
from automations.models import ActionRun, Automation
from events.models import Event as EventRow
from tests.automations.conftest import event, make_automation, store
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


def form_data(**overrides) -> dict:
    data = {
        "name": "Orders",
        "description": "",
        "tags": "shop, eu",
        "enabled": "on",
        "trigger_mode": "event",
        "match_resource": "acme.order.*",
        "match_labels": "",
        "related_role": "",
        "related_resource": "",
        "related_labels": "",
        "expect": "acme.order.created",
        "after": "",
        "for_each": "",
        "posture": "Reactive",
        "threshold": "1",
        "within": "0",
        "trigger_json": "",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-type": "do-nothing",
    }
    data.update(overrides)
    return data


def test_pages_require_login(client):
    automation = make_automation(TRIGGER)
    for url in ("/automations/", "/automations/new/", f"/automations/{automation.id}/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_list_shows_name_trigger_summary_and_last_fired(clock, logged_in_client):
    automation = make_automation(TRIGGER, name="Order watcher")
    engine = Engine()
    engine.load()
    clock.shift(1)  # after the engine's first instant (a new cursor's horizon)
    store(event("acme.order.created"))
    engine.step()
    response = logged_in_client.get("/automations/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Order watcher" in html
    assert "acme.order.created ≥ 1×" in html
    assert "2026-03-01 09:00:01" in html
    assert f"/automations/{automation.id}/toggle" in html


def test_toggle_via_htmx_flips_enabled_and_returns_the_row(logged_in_client):
    automation = make_automation(TRIGGER)
    response = logged_in_client.post(f"/automations/{automation.id}/toggle", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode().strip().startswith(f'<tr id="automation-{automation.id}"')
    assert "Disabled" in response.content.decode()
    automation.refresh_from_db()
    assert automation.enabled is False
    assert EventRow.objects.filter(event="prefect.automation.updated").count() == 1


def test_forms_are_csrf_protected(user):
    automation = make_automation(TRIGGER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/automations/{automation.id}/toggle").status_code == 403
    assert client.post("/automations/new/", form_data()).status_code == 403


def test_new_from_an_event_prefills_the_trigger_as_prefect_does(logged_in_client):
    data = event_data(
        "acme.order.created", "acme.order.31", labels={"prefect.resource.name": "Order 31"}
    )
    store(data)
    response = logged_in_client.get(f"/automations/new/?event={data['id']}")
    assert response.status_code == 200
    form = response.context["form"]
    assert json.loads(form.initial["trigger_json"]) == {
        "type": "event",
        "match": {"prefect.resource.id": "acme.order.31"},
        "match_related": {},
        "after": [],
        "expect": ["acme.order.created"],
        "for_each": [],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }
    assert form.initial["match_resource"] == "acme.order.31"
    assert form.initial["expect"] == "acme.order.created"
    assert "Order 31" in form.initial["name"]


def test_new_from_a_flow_run_event_matches_its_flow_for_each_run(logged_in_client):
    data = event_data(
        "prefect.flow-run.Failed",
        "prefect.flow-run.abc",
        related=[related("prefect.tag.x", "tag"), related("prefect.flow.f1", "flow")],
    )
    store(data)
    response = logged_in_client.get(f"/automations/new/?event={data['id']}")
    trigger = json.loads(response.context["form"].initial["trigger_json"])
    assert trigger["match_related"] == {
        "prefect.resource.role": "flow",
        "prefect.resource.id": "prefect.flow.f1",
    }
    assert trigger["for_each"] == ["prefect.resource.id"]
    # Any run of the flow (Prefect pins this run, which has ended and cannot fire again).
    assert trigger["match"] == {"prefect.resource.id": "prefect.flow-run.*"}
    pinned = logged_in_client.get(f"/automations/new/?event={data['id']}&scope=this")
    trigger = json.loads(pinned.context["form"].initial["trigger_json"])
    assert trigger["match"] == {"prefect.resource.id": "prefect.flow-run.abc"}


def test_new_from_an_unknown_event_is_404(logged_in_client):
    assert logged_in_client.get("/automations/new/?event=nope").status_code == 404


def test_new_saves_an_automation_from_the_friendly_fields(logged_in_client):
    data = form_data(
        match_labels="acme.region=eu-*\nacme.region=us-east",
        related_role="customer",
        for_each="prefect.resource.id",
        threshold="2",
        within="30",
        **{
            "actions-0-type": "call-webhook-url",
            "actions-0-webhook-url": "http://127.0.0.1:9/hook",
            "actions-0-webhook-method": "POST",
            "actions-0-webhook-headers": "X-Token: abc",
            "actions-0-webhook-payload": '{"id": "{{ event.id }}"}',
        },
    )
    response = logged_in_client.post("/automations/new/", data)
    assert response.status_code == 302
    automation = Automation.objects.get()
    assert response["Location"] == f"/automations/{automation.id}/"
    trigger = automation.trigger
    assert trigger["match"] == {
        "prefect.resource.id": "acme.order.*",
        "acme.region": ["eu-*", "us-east"],
    }
    assert trigger["match_related"] == {"prefect.resource.role": "customer"}
    assert trigger["threshold"] == 2 and trigger["within"] == 30.0
    assert trigger["for_each"] == ["prefect.resource.id"]
    assert automation.tags == ["shop", "eu"]
    # Header values are secret: sealed at rest, opened only to run the action.
    sealed = automation.actions[0]["headers"]["X-Token"]
    assert sealed.startswith("sealed:v1:") and "abc" not in sealed
    assert parse_action(automation.actions[0]).headers == {"X-Token": "abc"}
    assert automation.owner is not None
    assert EventRow.objects.filter(event="prefect.automation.created").exists()


def test_new_shows_errors_next_to_the_fields_they_concern(logged_in_client):
    response = logged_in_client.post(
        "/automations/new/",
        form_data(
            posture="Proactive",
            within="5",
            **{
                "actions-0-type": "call-webhook-url",
                "actions-0-webhook-url": "http://x.test",
                "actions-0-webhook-method": "POST",
                "actions-0-webhook-payload": "{% for %}",
            },
        ),
    )
    assert response.status_code == 422
    form = response.context["form"]
    assert "10 seconds" in form.errors["within"][0]
    action_form = response.context["formset"].forms[0]
    assert "not a valid template" in action_form.kind_forms["webhook"].errors["payload"][0]
    assert Automation.objects.count() == 0
    html = response.content.decode()
    assert 'id="id_within_error"' in html
    # Each field names its error (and help) for a screen reader.
    assert re.search(r'<input[^>]*aria-describedby="[^"]*id_within_error"', html)


def test_json_mode_accepts_any_trigger_and_reports_bad_json(logged_in_client):
    compound = {
        "type": "compound",
        "require": "all",
        "triggers": [
            {"type": "event", "posture": "Reactive", "expect": ["a"]},
            {"type": "event", "posture": "Reactive", "expect": ["b"]},
        ],
    }
    response = logged_in_client.post(
        "/automations/new/", form_data(trigger_mode="json", trigger_json=json.dumps(compound))
    )
    assert response.status_code == 302
    assert Automation.objects.get().trigger["type"] == "compound"
    response = logged_in_client.post(
        "/automations/new/", form_data(trigger_mode="json", trigger_json="{nope")
    )
    assert response.status_code == 422
    assert "Not valid JSON" in response.context["form"].errors["trigger_json"][0]
    response = logged_in_client.post(
        "/automations/new/",
        form_data(trigger_mode="json", trigger_json=json.dumps({**compound, "require": 3})),
    )
    assert "trigger.require" in response.context["form"].errors["trigger_json"][0]


def test_the_form_refuses_an_automation_that_reacts_to_its_own_events(logged_in_client):
    response = logged_in_client.post(
        "/automations/new/", form_data(match_resource="", expect="prefect.automation.*")
    )
    assert response.status_code == 422
    assert "its own" in str(response.context["form"].errors)
    response = logged_in_client.post(
        "/automations/new/",
        form_data(match_resource="", expect="prefect.automation.*", allow_self_trigger="on"),
    )
    assert response.status_code == 302


def test_edit_keeps_trigger_ids_when_the_trigger_is_unchanged(logged_in_client):
    automation = make_automation({**TRIGGER, "match": {"prefect.resource.id": "acme.order.*"}})
    trigger_id = automation.trigger["id"]
    page = logged_in_client.get(f"/automations/{automation.id}/edit/")
    assert page.status_code == 200
    initial = page.context["form"].initial
    assert initial["trigger_mode"] == "event" and initial["match_resource"] == "acme.order.*"
    response = logged_in_client.post(
        f"/automations/{automation.id}/edit/", form_data(name="Renamed")
    )
    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.name == "Renamed" and automation.trigger["id"] == trigger_id
    logged_in_client.post(f"/automations/{automation.id}/edit/", form_data(threshold="3"))
    automation.refresh_from_db()
    assert automation.trigger["id"] != trigger_id


def test_detail_shows_firings_action_runs_and_errors(clock, logged_in_client, allow_private):
    automation = make_automation(
        TRIGGER, [{"type": "call-webhook", "url": "http://127.0.0.1:9/down", "timeout": 1}]
    )
    engine = Engine()
    engine.load()
    clock.shift(1)  # after the engine's first instant (a new cursor's horizon)
    store(event("acme.order.created"))
    engine.step()
    engine.run_actions()
    response = logged_in_client.get(f"/automations/{automation.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "acme.order.created" in html
    assert "pending" in html and "Webhook call failed: ConnectError" in html
    assert "Send test" in html


def test_send_test_runs_one_action_now(logged_in_client, sink):
    automation = make_automation(
        TRIGGER, [{"type": "call-webhook", "url": sink.url, "payload": "hi {{ automation.name }}"}]
    )
    response = logged_in_client.post(f"/automations/{automation.id}/actions/0/test", follow=True)
    assert response.status_code == 200
    assert sink.requests[0]["body"] == "hi test automation"
    run = ActionRun.objects.get()
    assert run.status == ActionRun.Status.SUCCEEDED and run.firing.is_test
    assert "succeeded" in response.content.decode()
    # The receiver can tell a test from an alert; it is not counted as the automation firing.
    headers = {k.lower(): v for k, v in sink.requests[0]["headers"].items()}
    assert headers["x-eventsite-test"] == "true"
    listing = logged_in_client.get("/automations/").content.decode()
    assert "never" in listing and "Failing" not in listing


def test_the_list_marks_an_automation_whose_latest_action_run_failed(clock, logged_in_client):
    automation = make_automation(TRIGGER, [{"type": "call-webhook", "url": "http://127.0.0.1:9/"}])
    engine = Engine()
    engine.load()
    clock.shift(1)
    store(event_data("acme.order.created", "acme.order.1"))
    engine.step()
    assert ActionRun.objects.filter(automation=automation).update(status=ActionRun.Status.FAILED)
    listing = logged_in_client.get("/automations/").content.decode()
    assert 'class="badge danger failing"' in listing


def test_explain_page_shows_each_clause(logged_in_client):
    automation = make_automation({**TRIGGER, "match": {"prefect.resource.id": "acme.order.*"}})
    data = event_data("acme.order.created", "acme.invoice.1")
    store(data)
    response = logged_in_client.get(f"/automations/{automation.id}/explain?event={data['id']}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "does not match" in html
    assert "match prefect.resource.id" in html and "&#x27;acme.invoice.1&#x27;" in html
    assert logged_in_client.get(f"/automations/{automation.id}/explain?event=x").status_code == 200


def test_preview_counts_firings_over_stored_events(logged_in_client):
    store(*[event_data("acme.order.created", f"acme.order.{i}") for i in range(3)])
    store(event_data("acme.order.created", "acme.invoice.1"))
    response = logged_in_client.post("/automations/preview", form_data())
    assert response.status_code == 200
    assert response.context["preview"]["count"] == 3
    html = response.content.decode()
    assert html.count("<li>") == 3 and "(absence)" not in html
    week = logged_in_client.post("/automations/preview", form_data() | {"preview_window": "7d"})
    assert week.context["window"] == "7d" and week.context["preview"]["count"] == 3
    response = logged_in_client.post(
        "/automations/preview", form_data(trigger_mode="json", trigger_json="{")
    )
    assert "Cannot preview" in response.content.decode()


def test_initial_for_falls_back_to_json_for_composite_triggers():
    initial = AutomationForm.initial_for({"type": "sequence", "triggers": [{**TRIGGER}]})
    assert initial["trigger_mode"] == "json"


def test_the_email_preset_form_saves_recipients_templates_and_the_link(logged_in_client):
    data = form_data(
        **{
            "actions-0-type": "send-email",
            "actions-0-email-to": "ops@example.com, oncall@example.com",
            "actions-0-email-subject": "{{ automation.name }}",
            "actions-0-email-body": "{{ event.event }}",
            "actions-0-email-link": "on",
        }
    )
    response = logged_in_client.post("/automations/new/", data)
    assert response.status_code == 302
    [action] = Automation.objects.get().actions
    assert action == {
        "type": "send-email",
        "to": ["ops@example.com", "oncall@example.com"],
        "subject": "{{ automation.name }}",
        "body": "{{ event.event }}",
        "link": True,
    }
    bad = logged_in_client.post(
        "/automations/new/", {**data, "actions-0-email-to": "not-an-address"}
    )
    assert bad.status_code == 422
    errors = bad.context["formset"].forms[0].kind_forms["email"].errors
    assert "'not-an-address' is not an email address" in errors["to"][0]
