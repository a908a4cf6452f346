"""Notification presets against local receivers that check each service's documented format.

Each receiver answers as the service does (Slack 200 "ok", Teams 202, PagerDuty 202 with its
JSON, Discord 204) when the body has the documented shape, and 400 with the problems otherwise,
so an action only succeeds with a body the service would take.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

import pytest
from django.core import mail
from django.utils import timezone

from automations.actions import perform
from automations.engine import Engine
from automations.models import ActionRun, Automation, Delivery, Firing
from events.ingest import internal_event
from tests.automations.actions.receivers import Receiver
from tests.automations.actions.shapes import (
    discord_problems,
    pagerduty_problems,
    slack_problems,
    teams_problems,
)
from tests.automations.conftest import event, make_automation, store

pytestmark = pytest.mark.django_db

TRIGGER = {
    "type": "event",
    "posture": "Reactive",
    "expect": ["acme.order.created"],
    "for_each": ["prefect.resource.id"],
}


def service(check, status: int, body: bytes = b"", content_type: str = "text/plain"):
    """A receiver answering like the service when `check(body)` finds no problem."""

    def answer(request: dict):
        try:
            problems = check(json.loads(request["body"]))
        except json.JSONDecodeError as exc:
            problems = [f"not JSON: {exc}"]
        if request["headers"].get("content-type") != "application/json":
            problems.append("content-type must be application/json")
        if problems:
            return 400, {"content-type": "text/plain"}, "; ".join(problems).encode()
        return status, {"content-type": content_type}, body

    return Receiver(answer)


def fire_with(action: dict, *, labels: dict | None = None) -> ActionRun:
    automation = make_automation(TRIGGER, [action], name="Orders <!channel>")
    engine = Engine()
    engine.load()
    store(
        event(
            "acme.order.created",
            "acme.order.31",
            labels={"prefect.resource.name": "Order 31 @everyone", **(labels or {})},
        )
    )
    while engine.step():
        pass
    engine.run_actions()
    return ActionRun.objects.get(automation=automation)


def test_slack_preset_posts_block_kit_that_slack_accepts(clock, allow_private):
    slack = service(slack_problems, 200, b"ok")
    try:
        run = fire_with({"type": "notify-slack", "webhook_url": slack.url + "/services/T0/B0/x"})
    finally:
        slack.close()
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    body = slack.json()
    assert slack.requests[0]["path"] == "/services/T0/B0/x"
    assert body["blocks"][0]["text"]["text"] == "Orders <!channel>"  # plain_text: no ping
    section = body["blocks"][1]["text"]["text"]
    assert section == "acme.order.created on Order 31 @everyone"
    button = body["blocks"][2]["elements"][0]
    assert button["url"] == f"http://127.0.0.1:8000/events/{run.firing.triggering_event_id}/"
    assert run.result["status_code"] == 200 and run.result["response_body"] == "ok"


def test_slack_escapes_mrkdwn_control_characters_from_events(clock, allow_private):
    slack = service(slack_problems, 200, b"ok")
    try:
        run = fire_with(
            {
                "type": "notify-slack",
                "webhook_url": slack.url + "/services/x",
                "message": "{{ event.resource.name }} <!here> & more",
            }
        )
    finally:
        slack.close()
    assert run.status == ActionRun.Status.SUCCEEDED
    section = slack.json()["blocks"][1]["text"]["text"]
    assert section == "Order 31 @everyone &lt;!here&gt; &amp; more"


def test_teams_preset_posts_an_adaptive_card_message(clock, allow_private):
    teams = service(teams_problems, 202)
    try:
        run = fire_with({"type": "notify-teams", "webhook_url": teams.url + "/workflows/x"})
    finally:
        teams.close()
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    card = teams.json()["attachments"][0]["content"]
    assert card["body"][0]["text"] == "Orders <!channel>"
    assert card["actions"][0]["url"].endswith(f"/events/{run.firing.triggering_event_id}/")


def test_discord_preset_posts_an_embed_with_mentions_disabled(clock, allow_private):
    discord = service(discord_problems, 204)
    try:
        run = fire_with(
            {
                "type": "notify-discord",
                "webhook_url": discord.url + "/api/webhooks/1/abc",
                "username": "eventsite",
            }
        )
    finally:
        discord.close()
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    body = discord.json()
    assert body["allowed_mentions"] == {"parse": []}
    assert body["embeds"][0]["description"] == "acme.order.created on Order 31 @everyone"
    assert body["username"] == "eventsite"


def test_a_preset_whose_service_refuses_the_body_fails_with_the_services_answer(
    clock, allow_private
):
    slack = Receiver(lambda r: (404, {"content-type": "text/plain"}, b"no_service"))
    try:
        run = fire_with({"type": "notify-slack", "webhook_url": slack.url + "/services/gone"})
    finally:
        slack.close()
    assert run.status == ActionRun.Status.FAILED
    assert run.last_error == "Slack answered 404: no_service"


def pagerduty_answer(request: dict):
    body = json.loads(request["body"])
    problems = pagerduty_problems(body)
    if problems:
        return (
            400,
            {"content-type": "application/json"},
            json.dumps(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                }
            ).encode(),
        )
    return (
        202,
        {"content-type": "application/json"},
        json.dumps(
            {"status": "success", "message": "Event processed", "dedup_key": body["dedup_key"]}
        ).encode(),
    )


def resolve(automation: Automation, trigger_run: ActionRun) -> ActionRun:
    """A run of `actions_on_resolve`, as the resolve machinery creates it (issue 12's contract):
    its template `event` is the `prefect.automation.resolved` event, which carries the firing's
    triggering labels."""
    firing = trigger_run.firing
    resolved = internal_event(
        "prefect.automation.resolved",
        resource={"prefect.resource.id": automation.resource_id},
        payload={
            "triggering_labels": firing.triggering_labels,
            "triggering_event": firing.triggering_event,
        },
    )
    now = timezone.now()
    resolve_firing = Firing.objects.create(
        automation=automation,
        triggered=now,
        trigger_id=firing.trigger_id,
        triggering_labels=firing.triggering_labels,
        triggering_event_id=resolved.id,
        triggering_event=resolved.to_wire(),
        firing={**firing.firing, "id": str(uuid.uuid4())},
    )
    run = ActionRun.objects.create(
        firing=resolve_firing,
        automation=automation,
        action_index=0,
        kind="notify-pagerduty",
        action=automation.actions_on_resolve[0],
        source="actions_on_resolve",
        triggering_event=resolved.to_wire(),
        next_attempt=now,
    )
    perform(run.id)
    run.refresh_from_db()
    return run


def test_pagerduty_triggers_on_firing_and_resolves_the_same_incident(clock, allow_private):
    pagerduty = Receiver(pagerduty_answer)
    action = {
        "type": "notify-pagerduty",
        "routing_key": "R0UTINGKEY0123456789012345678901",
        "severity": "critical",
        "api_url": pagerduty.url + "/v2/enqueue",
    }
    try:
        trigger_run = fire_with(action)
        automation = trigger_run.automation
        automation.actions_on_resolve = [automation.actions[0]]
        automation.save()
        resolve_run = resolve(automation, trigger_run)
        fire_other_key()
    finally:
        pagerduty.close()

    assert trigger_run.status == ActionRun.Status.SUCCEEDED, trigger_run.last_error
    assert resolve_run.status == ActionRun.Status.SUCCEEDED, resolve_run.last_error
    triggered, resolved = pagerduty.json(0), pagerduty.json(1)
    assert triggered["event_action"] == "trigger"
    assert triggered["routing_key"] == "R0UTINGKEY0123456789012345678901"
    assert triggered["payload"]["severity"] == "critical"
    assert triggered["payload"]["summary"] == (
        "Orders <!channel>: acme.order.created on Order 31 @everyone"
    )
    assert triggered["payload"]["source"] == "acme.order.31"
    assert triggered["dedup_key"].startswith(f"eventsite-{automation.id}-")
    assert resolved == {
        "routing_key": "R0UTINGKEY0123456789012345678901",
        "dedup_key": triggered["dedup_key"],
        "event_action": "resolve",
    }
    # another for_each key is another incident
    assert len(pagerduty.requests) == 3
    assert pagerduty.json(2)["dedup_key"] != triggered["dedup_key"]
    assert trigger_run.result["response_body"].startswith('{"status": "success"')


def fire_other_key() -> None:
    engine = Engine()
    engine.load()
    store(event("acme.order.created", "acme.order.32"))
    while engine.step():
        pass
    engine.run_actions()


def test_the_email_preset_sends_the_mail_and_the_delivery_shows_it(clock, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run = fire_with(
        {
            "type": "send-email",
            "to": ["oncall@example.com"],
            "subject": "{{ automation.name }}: {{ event.event }}",
            "body": "{{ event.resource.name }} needs you",
            "link": True,
        }
    )
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    (message,) = mail.outbox
    assert message.subject == "Orders <!channel>: acme.order.created"
    link = f"http://127.0.0.1:8000/events/{run.firing.triggering_event_id}/"
    assert message.body == f"Order 31 @everyone needs you\n\nView event: {link}\n"
    delivery = Delivery.objects.get()
    assert delivery.request == {
        "from": settings.DEFAULT_FROM_EMAIL,
        "to": ["oncall@example.com"],
        "subject": "Orders <!channel>: acme.order.created",
        "body": message.body,
    }
    assert delivery.summary.startswith("mail to oncall@example.com")


def test_send_test_shows_the_services_real_answer(logged_in_client, allow_private):
    pagerduty = Receiver(pagerduty_answer)
    automation = make_automation(
        TRIGGER,
        [
            {
                "type": "notify-pagerduty",
                "routing_key": "K" * 32,
                "api_url": pagerduty.url + "/v2/enqueue",
            }
        ],
    )
    try:
        response = logged_in_client.post(
            f"/automations/{automation.id}/actions/0/test", HTTP_HX_REQUEST="true"
        )
    finally:
        pagerduty.close()
    assert response.status_code == 200
    html = response.content.decode()
    assert "succeeded" in html and ">202<" in html
    assert "Event processed" in html  # the service's own body, escaped
    assert "K" * 32 not in html  # the routing key is in the body it sent: shown redacted
    assert "**********" in html
    run = ActionRun.objects.get()
    assert run.firing.is_test and Delivery.objects.get().is_test


def test_preset_timestamps_are_iso_8601(clock, allow_private):
    pagerduty = Receiver(pagerduty_answer)
    try:
        fire_with({"type": "notify-pagerduty", "routing_key": "k" * 32, "api_url": pagerduty.url})
    finally:
        pagerduty.close()
    datetime.fromisoformat(pagerduty.json()["payload"]["timestamp"])


def pagerduty_form(**overrides) -> dict:
    data = {
        "name": "Page",
        "trigger_mode": "event",
        "expect": "acme.order.created",
        "for_each": "prefect.resource.id",
        "posture": "Reactive",
        "threshold": "1",
        "within": "0",
        "enabled": "on",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-type": "notify-pagerduty",
        "actions-0-pagerduty-routing_key": "F" * 32,
        "actions-0-pagerduty-severity": "warning",
        "actions-0-pagerduty-summary": "{{ automation.name }}",
        "actions-0-pagerduty-source": "{{ event.resource.id }}",
        "actions-0-pagerduty-api_url": "https://events.eu.pagerduty.com/v2/enqueue",
        "actions-0-pagerduty-resolve": "on",
    }
    data.update(overrides)
    return data


def test_the_pagerduty_form_also_resolves_when_asked_and_stops_when_unticked(logged_in_client):
    assert logged_in_client.post("/automations/new/", pagerduty_form()).status_code == 302
    automation = Automation.objects.get()
    assert len(automation.actions_on_resolve) == 1
    resolve = automation.actions_on_resolve[0]
    assert resolve == automation.actions[0]  # the same action, its key sealed
    assert "F" * 32 not in json.dumps(resolve)

    edit = logged_in_client.get(f"/automations/{automation.id}/edit/").content.decode()
    [checkbox] = re.findall(r"<input[^>]*id_actions-0-pagerduty-resolve[^>]*>", edit)
    assert checkbox.endswith(" checked>")
    # saved again (key kept): still one action on resolve, not two
    again = pagerduty_form(**{"actions-INITIAL_FORMS": "1", "actions-0-pagerduty-routing_key": ""})
    assert logged_in_client.post(f"/automations/{automation.id}/edit/", again).status_code == 302
    automation.refresh_from_db()
    assert len(automation.actions_on_resolve) == 1
    unticked = {k: v for k, v in again.items() if k != "actions-0-pagerduty-resolve"}
    assert logged_in_client.post(f"/automations/{automation.id}/edit/", unticked).status_code == 302
    automation.refresh_from_db()
    assert automation.actions_on_resolve == []
