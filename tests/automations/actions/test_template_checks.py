"""Templates are checked when an automation is saved; Prefect's `ui_url` filters."""

from __future__ import annotations

import json

import pytest

from automations.engine import Engine
from automations.models import ActionRun, Automation, Firing
from tests.automations.conftest import event, make_automation, store
from tests.automations.test_api import create
from tests.automations.test_pages import form_data

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


def webhook(payload: str) -> dict:
    return {"type": "call-webhook", "url": "http://127.0.0.1:9/hook", "payload": payload}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"u": "{{ event|ui_urll }}"}', "unknown filter 'ui_urll'"),
        ("{% if event %}{{ event.id|nofilter }}{% endif %}", "unknown filter 'nofilter'"),
        ("{{ evnt.id }}", "unknown variable 'evnt'"),
        ("{% if event is sunny %}x{% endif %}", "unknown test 'sunny'"),
    ],
)
def test_the_api_refuses_unknown_filters_and_variables_naming_the_field(
    api_client, payload, message
):
    response = create(api_client, actions=[{"type": "do-nothing"}, webhook(payload)])
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["actions.1.payload"]
    assert message in errors[0]["message"]
    assert Automation.objects.count() == 0


def test_the_api_accepts_loop_variables_set_names_and_the_whole_context(api_client):
    payload = (
        "{% set n = events|length %}{% for e in events %}{{ e.id }}{{ loop.index }}{% endfor %}"
        "{{ n }} {{ automation.name }} {{ labels }} {{ firing.id }} {{ firings|length }}"
        "{{ event|ui_url }} {{ event.resource|ui_resource_events_url }} {{ range(2)|list }}"
    )
    response = create(api_client, actions=[webhook(payload)])
    assert response.status_code == 201, response.json()


def test_a_stored_template_with_an_unknown_variable_still_runs(clock, sink):
    """Definitions saved before the check are not refused when they fire."""
    make_automation(TRIGGER, [webhook("{{ flow_run.name }}!") | {"url": sink.url}])
    engine = Engine()
    engine.load()
    store(event("acme.order.created", "acme.order.31"))
    while engine.step():
        pass
    engine.run_actions()
    assert ActionRun.objects.get().status == ActionRun.Status.SUCCEEDED
    assert sink.requests[0]["body"] == "!"


def test_the_form_shows_an_unknown_filter_under_its_field(logged_in_client):
    response = logged_in_client.post(
        "/automations/new/",
        form_data(
            **{
                "actions-0-type": "call-webhook-url",
                "actions-0-webhook-url": "http://127.0.0.1:9/hook",
                "actions-0-webhook-method": "POST",
                "actions-0-webhook-payload": '{"u": "{{ event|ui_link }}"}',
            }
        ),
    )
    assert response.status_code == 422
    kind_form = response.context["formset"].forms[0].kind_forms["webhook"]
    assert "unknown filter 'ui_link'" in kind_form.errors["payload"][0]
    assert Automation.objects.count() == 0


def test_the_form_sets_an_actions_retry_schedule(logged_in_client):
    data = form_data(
        **{
            "actions-0-type": "call-webhook-url",
            "actions-0-webhook-url": "http://127.0.0.1:9/hook",
            "actions-0-webhook-method": "POST",
            "actions-0-webhook-retry_attempts": "4",
            "actions-0-webhook-retry_first_delay": "30",
        }
    )
    response = logged_in_client.post("/automations/new/", data)
    assert response.status_code == 302
    automation = Automation.objects.get()
    assert automation.actions[0]["retry"] == {
        "attempts": 4,
        "first_delay": 30.0,
        "max_delay": 1800.0,
        "jitter": 0.1,
    }
    page = logged_in_client.get(f"/automations/{automation.id}/edit/").content.decode()
    assert 'name="actions-0-webhook-retry_attempts" value="4"' in page
    bad = {**data, "actions-0-webhook-retry_attempts": "0"}
    response = logged_in_client.post("/automations/new/", bad)
    assert response.status_code == 422
    kind_form = response.context["formset"].forms[0].kind_forms["webhook"]
    assert kind_form.errors["retry_attempts"]


def test_the_form_shows_every_retry_setting_the_api_set_and_this_deployments_defaults(
    api_client, logged_in_client, settings
):
    settings.EVENTSITE_ACTION_MAX_ATTEMPTS = 4
    action = {**webhook("{}"), "retry": {"attempts": 6, "jitter": 0.3}}
    assert create(api_client, actions=[action]).status_code == 201
    automation = Automation.objects.get()

    page = logged_in_client.get(f"/automations/{automation.id}/edit/").content.decode()

    # Shown, so saving the form keeps it (it used to fall back to the default 0.1).
    assert 'name="actions-0-webhook-retry_jitter" value="0.3"' in page
    assert 'name="actions-0-webhook-retry_attempts" value="6"' in page
    assert "In all, the first included. Blank: 4." in page
    data = form_data(
        **{
            "actions-0-type": "call-webhook-url",
            "actions-0-webhook-url": "http://127.0.0.1:9/hook",
            "actions-0-webhook-method": "POST",
            "actions-0-webhook-retry_attempts": "6",
            "actions-0-webhook-retry_jitter": "0.3",
        }
    )
    edit = {**data, "actions-INITIAL_FORMS": "1"}  # as the edit page's management form says
    response = logged_in_client.post(f"/automations/{automation.id}/edit/", edit)
    assert response.status_code == 302
    automation.refresh_from_db()
    assert automation.actions[0]["retry"]["jitter"] == 0.3
    response = logged_in_client.post(
        "/automations/new/", {**data, "actions-0-webhook-retry_jitter": "0.9"}
    )
    assert response.status_code == 422
    kind_form = response.context["formset"].forms[0].kind_forms["webhook"]
    assert kind_form.errors["retry_jitter"]


def test_ui_url_filters_link_to_eventsites_pages(clock, sink, settings):
    settings.EVENTSITE_PUBLIC_URL = "https://events.example.com"
    payload = (
        '{"event": "{{ event|ui_url }}", "resource": "{{ event.resource|ui_url }}", '
        '"customer": "{{ event.related[0]|ui_url }}", "automation": "{{ automation|ui_url }}", '
        '"firing": "{{ firing|ui_url }}", '
        '"resource_events": "{{ event.resource|ui_resource_events_url }}", '
        '"automation_events": "{{ automation|ui_resource_events_url }}", '
        '"other": "{{ labels|ui_url }}"}'
    )
    action = {"type": "call-webhook", "url": sink.url + "/x", "payload": payload}
    automation = make_automation(TRIGGER, [action])
    engine = Engine()
    engine.load()
    store(
        event(
            "acme.order.created",
            "acme/order 31",
            related=[{"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "c"}],
        )
    )
    while engine.step():
        pass
    engine.run_actions()
    run = ActionRun.objects.get()
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    body = json.loads(sink.requests[0]["body"])
    base = "https://events.example.com"
    firing = Firing.objects.get(is_test=False)
    event_id = firing.triggering_event_id
    assert body == {
        "event": f"{base}/events/{event_id}/",
        "resource": f"{base}/resources/acme%2Forder%2031/",
        "customer": f"{base}/resources/acme.customer.7/",
        "automation": f"{base}/automations/{automation.id}/",
        "firing": f"{base}/automations/firings/{firing.id}/",
        "resource_events": f"{base}/events/?resource=acme%2Forder+31",
        "automation_events": f"{base}/events/?resource=prefect.automation.{automation.id}",
        "other": "None",
    }
