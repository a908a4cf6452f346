"""Secrets kept secret: written through the API or a form, used by the action, shown nowhere.

The decisive check: a header, a Slack URL and a PagerDuty routing key reach a local receiver,
and then every API answer, every stored event (the audit log included) and every page is
searched for them.
"""

from __future__ import annotations

import json
import uuid

import pytest

from automations.engine import Engine
from automations.models import ActionRun, Automation
from events import audit
from events.models import Event
from eventsite.field_secrets import REDACTED
from tests.automations.actions.receivers import Receiver
from tests.automations.conftest import event, store

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


@pytest.fixture
def receiver(allow_private):
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def secrets() -> dict[str, str]:
    token = uuid.uuid4().hex
    return {
        "header": f"hdr-{token}",
        "slack": f"slk{token[:20]}",
        "routing": f"rk{token}"[:32],
    }


def definition(receiver: Receiver, secrets: dict[str, str]) -> dict:
    return {
        "name": "Orders to on-call",
        "trigger": TRIGGER,
        "actions": [
            {  # Prefect's type name with eventsite's shape: still accepted
                "type": "call-webhook",
                "url": receiver.url + "/hook",
                "headers": {"Authorization": f"Bearer {secrets['header']}", "X-Plain": "p"},
                "payload": '{"id": "{{ event.id }}"}',
            },
            {
                "type": "notify-slack",
                "webhook_url": f"{receiver.url}/services/T0/B0/{secrets['slack']}",
            },
            {
                "type": "notify-pagerduty",
                "routing_key": secrets["routing"],
                "api_url": receiver.url + "/v2/enqueue",
            },
        ],
    }


def fire() -> None:
    engine = Engine()
    engine.load()
    store(event("acme.order.created", "acme.order.31"))
    while engine.step():
        pass
    engine.run_actions()


def assert_delivered(receiver: Receiver, secrets: dict[str, str], *, times: int = 1) -> None:
    hooks = [r for r in receiver.requests if r["path"] == "/hook"]
    slack = [r for r in receiver.requests if r["path"].startswith("/services/")]
    pagerduty = [r for r in receiver.requests if r["path"] == "/v2/enqueue"]
    assert len(hooks) == len(slack) == len(pagerduty) == times, receiver.requests
    assert hooks[-1]["headers"]["authorization"] == f"Bearer {secrets['header']}"
    assert slack[-1]["path"].endswith(secrets["slack"])
    assert json.loads(pagerduty[-1]["body"])["routing_key"] == secrets["routing"]


def assert_nowhere(texts: list[str], secrets: dict[str, str]) -> None:
    """No secret in any API answer or page given, in any stored event, or in the audit log."""
    events = [json.dumps(e.to_wire(), default=str) for e in Event.objects.all()]
    assert any(audit.is_audit_event(json.loads(e)["event"]) for e in events)
    for name, secret in secrets.items():
        for text in texts + events:
            assert secret not in text, f"the {name} secret leaked: …{text[:300]}…"


def pages(client, automation: Automation) -> list[str]:
    urls = [
        "/automations/",
        f"/automations/{automation.id}/",
        f"/automations/{automation.id}/edit/",
        "/audit/",
        "/events/?range=30d",
        *(f"/events/{e.id}/" for e in Event.objects.all()),
    ]
    out = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        out.append(response.content.decode())
    return out


def test_secrets_written_through_the_api_reach_the_receiver_and_appear_nowhere(
    api_client, logged_in_client, receiver, secrets
):
    answers = []
    created = api_client.post("/api/automations/", definition(receiver, secrets), format="json")
    assert created.status_code == 201, created.content
    answers.append(created.content.decode())
    automation = Automation.objects.get()
    body = created.json()
    assert body["actions"][0]["type"] == "call-webhook-url"
    assert body["actions"][0]["headers"] == {"Authorization": REDACTED, "X-Plain": REDACTED}
    assert body["actions"][1]["webhook_url"] == REDACTED
    assert body["actions"][2]["routing_key"] == REDACTED

    # A client that reads the automation and sends it back (Prefect's does) keeps the secrets.
    read = api_client.get(f"/api/automations/{automation.id}")
    answers.append(read.content.decode())
    core = {k: v for k, v in read.json().items() if k not in ("id", "created", "updated")}
    put = api_client.put(f"/api/automations/{automation.id}", core, format="json")
    assert put.status_code == 204, put.content
    for url, data in (
        ("/api/automations/filter", {}),
        ("/api/automations/count", {}),
    ):
        answers.append(api_client.post(url, data, format="json").content.decode())
    answers.append(
        api_client.get(f"/api/automations/related-to/{automation.resource_id}").content.decode()
    )

    fire()
    assert_delivered(receiver, secrets)
    test = logged_in_client.post(f"/automations/{automation.id}/actions/2/test", follow=True)
    answers.append(test.content.decode())
    assert ActionRun.objects.filter(status=ActionRun.Status.SUCCEEDED).count() == 4

    events = api_client.post("/api/events/filter", {"limit": 200}, format="json")
    answers.append(events.content.decode())
    assert_nowhere(answers + pages(logged_in_client, automation), secrets)


def test_redacted_on_create_is_refused_and_an_error_never_echoes_a_secret(
    api_client, receiver, secrets
):
    data = definition(receiver, secrets)
    data["actions"][1]["webhook_url"] = REDACTED
    data["actions"][0]["payload"] = "{% for %}"

    response = api_client.post("/api/automations/", data, format="json")

    assert response.status_code == 422
    body = response.json()
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert "write-only and has no stored value to keep" in fields["actions.1.webhook_url"]
    assert body["exception_message"] == "Invalid automation."
    assert ["body", "actions", 1, "webhook_url"] in [e["loc"] for e in body["exception_detail"]]
    assert body["request_body"]["actions"][0]["headers"] == {
        "Authorization": REDACTED,
        "X-Plain": REDACTED,
    }
    assert_nowhere([response.content.decode()], secrets)


def test_a_replaced_secret_is_used_and_the_audit_diff_shows_only_fingerprints(
    api_client, receiver, secrets
):
    created = api_client.post("/api/automations/", definition(receiver, secrets), format="json")
    automation_id = created.json()["id"]
    data = api_client.get(f"/api/automations/{automation_id}").json()
    data = {k: v for k, v in data.items() if k not in ("id", "created", "updated")}
    new_routing = ("new" + uuid.uuid4().hex)[:32]
    data["actions"][2]["routing_key"] = new_routing
    data["actions"][1]["webhook_url"] = REDACTED  # kept

    assert (
        api_client.put(f"/api/automations/{automation_id}", data, format="json").status_code == 204
    )

    fire()
    assert_delivered(receiver, {**secrets, "routing": new_routing})
    [updated] = Event.objects.filter(event=audit.AUTOMATION_UPDATED)
    changes = updated.payload["changes"]["actions"]
    before, after = changes["before"][2]["routing_key"], changes["after"][2]["routing_key"]
    assert before.startswith("[secret ") and after.startswith("[secret ") and before != after
    # unchanged secrets keep their fingerprint (so only real changes show)
    assert changes["before"][1]["webhook_url"] == changes["after"][1]["webhook_url"]
    assert_nowhere([], {**secrets, "new": new_routing})


def form_post(receiver: Receiver, secrets: dict[str, str], **overrides) -> dict:
    data = {
        "name": "From the form",
        "description": "",
        "tags": "",
        "enabled": "on",
        "trigger_mode": "event",
        "expect": "acme.order.created",
        "posture": "Reactive",
        "threshold": "1",
        "within": "0",
        "actions-TOTAL_FORMS": "3",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-type": "call-webhook-url",
        "actions-0-webhook-url": receiver.url + "/hook",
        "actions-0-webhook-method": "POST",
        "actions-0-webhook-headers": f"Authorization: Bearer {secrets['header']}",
        "actions-0-webhook-payload": "{}",
        "actions-1-type": "notify-slack",
        "actions-1-slack-webhook_url": f"{receiver.url}/services/T0/B0/{secrets['slack']}",
        "actions-1-slack-title": "{{ automation.name }}",
        "actions-1-slack-message": "{{ event.event }}",
        "actions-2-type": "notify-pagerduty",
        "actions-2-pagerduty-routing_key": secrets["routing"],
        "actions-2-pagerduty-severity": "error",
        "actions-2-pagerduty-summary": "{{ automation.name }}",
        "actions-2-pagerduty-source": "{{ event.resource.id }}",
        "actions-2-pagerduty-api_url": receiver.url + "/v2/enqueue",
    }
    data.update(overrides)
    return data


def test_secrets_written_through_the_form_are_write_only_and_kept_when_left_empty(
    logged_in_client, receiver, secrets
):
    response = logged_in_client.post("/automations/new/", form_post(receiver, secrets))
    assert response.status_code == 302, response.context and response.context["formset"].errors
    automation = Automation.objects.get()

    edit = logged_in_client.get(f"/automations/{automation.id}/edit/").content.decode()
    assert edit.count("•••• set") == 2  # the Slack URL and the routing key
    assert f"Authorization: {REDACTED}" in edit
    # Saved again with the secret fields left as shown: the stored values stay.
    kept = form_post(
        receiver,
        secrets,
        **{
            "actions-INITIAL_FORMS": "3",
            "actions-0-webhook-headers": f"Authorization: {REDACTED}",
            "actions-1-slack-webhook_url": "",
            "actions-2-pagerduty-routing_key": "",
        },
    )
    response = logged_in_client.post(f"/automations/{automation.id}/edit/", kept)
    assert response.status_code == 302

    fire()
    assert_delivered(receiver, secrets)
    assert_nowhere(pages(logged_in_client, automation), secrets)


def test_a_form_deleting_an_action_does_not_hand_its_secret_to_the_next_one(
    logged_in_client, receiver, secrets
):
    logged_in_client.post("/automations/new/", form_post(receiver, secrets))
    automation = Automation.objects.get()
    # Delete the Slack action; the PagerDuty one moves up but keeps its own key.
    data = form_post(
        receiver,
        secrets,
        **{
            "actions-INITIAL_FORMS": "3",
            "actions-0-webhook-headers": f"Authorization: {REDACTED}",
            "actions-1-slack-webhook_url": "",
            "actions-1-DELETE": "on",
            "actions-2-pagerduty-routing_key": "",
        },
    )
    assert logged_in_client.post(f"/automations/{automation.id}/edit/", data).status_code == 302

    automation.refresh_from_db()
    assert [a["type"] for a in automation.actions] == ["call-webhook-url", "notify-pagerduty"]
    fire()
    pagerduty = [r for r in receiver.requests if r["path"] == "/v2/enqueue"]
    assert json.loads(pagerduty[0]["body"])["routing_key"] == secrets["routing"]
