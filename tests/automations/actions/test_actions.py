"""Actions: templates, the registry's kinds, retries, and the events every attempt emits."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core import mail

from automations.actions import ActionsInvalid, parse_action, parse_actions
from automations.engine import Engine
from automations.models import ActionRun, Automation
from events.models import Event as EventRow
from tests.automations.conftest import Sink, event, make_automation, store
from tests.conftest import free_port
from tests.factories import related

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


def fire(action: dict, *, name: str = "orders", **event_kwargs) -> ActionRun:
    """Create an automation with one action, store a matching event, evaluate, perform."""
    make_automation(TRIGGER, [action], name=name)
    engine = Engine()
    engine.load()
    store(
        event(
            "acme.order.created",
            "acme.order.31",
            labels={"prefect.resource.name": "Order 31", "acme.region": "eu-west"},
            payload={"total": 12.5, "items": ["a", "b"]},
            related=[related("acme.customer.7", "customer")],
            **event_kwargs,
        )
    )
    while engine.step():
        pass
    engine.run_actions()
    return ActionRun.objects.get()


def action_events(kind: str) -> list[EventRow]:
    return list(
        EventRow.objects.filter(event=f"prefect.automation.action.{kind}").order_by("received")
    )


# --- templates -----------------------------------------------------------------------------------


def test_templates_see_prefect_shaped_objects(clock, sink):
    payload = (
        '{"name": "{{ event.event }}", "id": "{{ event.resource.id }}", '
        '"label": "{{ event.resource.name }}", "region": "{{ event.resource["acme.region"] }}", '
        '"total": {{ event.payload.total }}, "auto": "{{ automation.name }}", '
        '"customer": "{{ event.related[0].id }}", "role": "{{ event.related[0].role }}", '
        '"occurred": "{{ event.occurred }}", "missing": "{{ event.payload.nope.deeper }}", '
        '"event": {{ event|tojson }}}'
    )
    run = fire({"type": "call-webhook", "url": sink.url + "/hook", "payload": payload})
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    body = json.loads(sink.requests[0]["body"])
    assert body["name"] == "acme.order.created"
    assert body["id"] == "acme.order.31"
    assert body["label"] == "Order 31"
    assert body["region"] == "eu-west"
    assert body["total"] == 12.5
    assert body["auto"] == "orders"
    assert body["customer"] == "acme.customer.7" and body["role"] == "customer"
    assert body["occurred"] == "2026-03-01 09:00:00+00:00"  # a datetime, as in Prefect
    assert body["missing"] == ""  # ChainableUndefined, like Prefect
    assert body["event"]["id"] == str(run.firing.triggering_event_id)
    assert body["event"]["resource"]["prefect.resource.id"] == "acme.order.31"


def test_labels_dive_by_attribute(clock, sink):
    make_automation(
        {**TRIGGER, "for_each": ["prefect.resource.id"]},
        [{"type": "call-webhook", "url": sink.url, "payload": "{{ labels.prefect.resource.id }}"}],
    )
    engine = Engine()
    engine.load()
    store(event("acme.order.created", "acme.order.5"))
    engine.step()
    engine.run_actions()
    assert sink.requests[0]["body"] == "acme.order.5"


@pytest.mark.parametrize(
    "payload, message",
    [
        ("{% for %}", "is not a valid template"),
        ("{{ event.x ", "is not a valid template"),
        (
            "{% for a in b %}{% for c in d %}{% for e in f %}x{% endfor %}{% endfor %}{% endfor %}",
            "nested 3 deep",
        ),
        ("".join("{% for a in b %}x{% endfor %}" for _ in range(11)), "for loops"),
    ],
)
def test_invalid_templates_are_refused_when_saved_with_the_field_named(payload, message):
    with pytest.raises(ActionsInvalid) as exc:
        parse_actions(
            [{"type": "call-webhook", "url": "http://x.test", "payload": payload}], loc="actions"
        )
    assert exc.value.errors[0]["field"] == "actions.0.payload"
    assert message in exc.value.errors[0]["message"]


def test_a_template_that_fails_to_render_fails_the_action_with_prefects_details(clock, sink):
    run = fire(
        {"type": "call-webhook", "url": sink.url, "payload": "{{ event.payload.missing() }}"}
    )
    assert run.status == ActionRun.Status.FAILED
    assert run.last_error.startswith("Template rendering failed:")
    (failed,) = action_events("failed")
    assert failed.payload["reason"].startswith("Template rendering failed:")
    assert failed.payload["template_source"] == "{{ event.payload.missing() }}"
    assert "template_error" in failed.payload
    assert sink.requests == []


def test_the_sandbox_limits_range_and_blocks_unsafe_attributes(clock, sink):
    run = fire(
        {
            "type": "call-webhook",
            "url": sink.url,
            "payload": "{% for i in range(1000) %}{% endfor %}",
        }
    )
    assert run.status == ActionRun.Status.FAILED and "Range too big" in run.last_error
    ActionRun.objects.all().delete()
    Automation.objects.all().delete()
    run = fire(
        {"type": "call-webhook", "url": sink.url, "payload": "{{ event.__class__.__mro__ }}"}
    )
    # The one sandbox refuses an unsafe attribute outright instead of rendering it as "".
    assert run.status == ActionRun.Status.FAILED and "unsafe" in run.last_error
    assert sink.requests == []


# --- call-webhook --------------------------------------------------------------------------------


def test_call_webhook_sends_the_rendered_body_and_records_the_response(clock, sink):
    run = fire(
        {
            "type": "call-webhook",
            "url": sink.url + "/in",
            "method": "put",
            "headers": {"X-Token": "t0k"},
            "payload": '{"id": "{{ event.id }}", "auto": "{{ automation.name }}"}',
        }
    )
    assert run.status == ActionRun.Status.SUCCEEDED
    (request,) = sink.requests
    assert request["method"] == "PUT" and request["path"] == "/in"
    assert request["headers"]["X-Token"] == "t0k"
    assert request["headers"]["content-type"] == "application/json"
    assert json.loads(request["body"]) == {
        "id": str(run.firing.triggering_event_id),
        "auto": "orders",
    }
    (executed,) = action_events("executed")
    assert executed.payload["status_code"] == 200
    assert executed.payload["response_body"] == "ok"
    assert "set-cookie" not in executed.payload["response_headers"]
    roles = {r["prefect.resource.role"] for r in executed.related}
    assert {"block-type", "target", "automation-triggered-event", "triggering-event"} <= roles
    assert run.result_excerpt == "HTTP 200: ok"


def test_call_webhook_retries_a_500_with_backoff_then_gives_up(clock, allow_private):
    sink = Sink(status=500, body=b"boom")
    retry = {"attempts": 3, "first_delay": 2, "jitter": 0}
    try:
        run = fire({"type": "call-webhook", "url": sink.url, "retry": retry})
        assert run.status == ActionRun.Status.PENDING and run.attempts == 1
        assert run.next_attempt == clock.now() + timedelta(seconds=2)
        assert "Webhook answered 500: boom" in run.last_error
        engine = Engine()
        assert engine.run_actions() == 0  # not due yet
        clock.shift(2)
        engine.run_actions()
        run.refresh_from_db()
        assert run.attempts == 2 and run.next_attempt == clock.now() + timedelta(seconds=4)
        clock.shift(4)
        engine.run_actions()
        run.refresh_from_db()
        assert run.status == ActionRun.Status.FAILED and run.attempts == 3
        assert run.result["status_code"] == 500 and run.result["response_body"] == "boom"
        assert len(sink.requests) == 3
        # Every attempt carries the same delivery id, so the receiver can drop repeats.
        keys = {r["headers"]["idempotency-key"] for r in sink.requests}
        assert keys == {str(run.id)}
        assert {r["headers"]["x-eventsite-delivery"] for r in sink.requests} == keys
        failed = action_events("failed")
        assert [f.payload["will_retry"] for f in failed] == [True, True, False]
        assert len(action_events("triggered")) == 1  # one invocation, several attempts
    finally:
        sink.close()


def test_call_webhook_records_a_client_error_without_retrying(clock, allow_private):
    sink = Sink(status=404, body=b"no such hook")
    try:
        run = fire({"type": "call-webhook", "url": sink.url})
    finally:
        sink.close()
    assert run.status == ActionRun.Status.FAILED and run.attempts == 1
    assert run.result["status_code"] == 404
    assert run.last_error == "Webhook answered 404: no such hook"


def test_call_webhook_to_a_target_that_is_down_is_recorded_and_retried(clock, allow_private):
    run = fire({"type": "call-webhook", "url": f"http://127.0.0.1:{free_port()}/"})
    assert run.status == ActionRun.Status.PENDING
    assert run.last_error.startswith("Webhook call failed: ConnectError")


def test_call_webhook_times_out_on_a_slow_target(clock, allow_private):
    sink = Sink(delay=1.0)
    try:
        run = fire({"type": "call-webhook", "url": sink.url, "timeout": 0.2})
    finally:
        sink.close()
    assert run.status == ActionRun.Status.PENDING
    assert run.last_error.startswith("Webhook call timed out after 0.2 s")


def test_call_webhook_refuses_prefects_block_form_with_a_clear_message():
    with pytest.raises(ActionsInvalid) as exc:
        parse_action(
            {"type": "call-webhook", "block_document_id": "6f9d4a1c-0000-4000-8000-000000000000"}
        )
    assert exc.value.errors[0]["field"] == "action.block_document_id"
    assert "url" in exc.value.errors[0]["message"]


def test_call_webhook_refuses_a_non_http_url():
    with pytest.raises(ActionsInvalid) as exc:
        parse_action({"type": "call-webhook", "url": "file:///etc/passwd"})
    assert exc.value.errors[0]["field"] == "action.url"


def test_unknown_action_types_are_refused():
    with pytest.raises(ActionsInvalid) as exc:
        parse_action({"type": "run-deployment", "deployment_id": "x"})
    assert "unknown action type 'run-deployment'" in exc.value.errors[0]["message"]


# --- send-notification ---------------------------------------------------------------------------


def test_send_notification_sends_an_email_with_rendered_subject_and_body(clock, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run = fire(
        {
            "type": "send-notification",
            "to": ["ops@example.com"],
            "subject": "{{ event.resource.name }} was created",
            "body": "Total {{ event.payload.total }} in {{ event.resource['acme.region'] }}",
        }
    )
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    (message,) = mail.outbox
    assert message.subject == "Order 31 was created"
    assert message.body == "Total 12.5 in eu-west"
    assert message.to == ["ops@example.com"]


def test_send_notification_refuses_bad_addresses():
    with pytest.raises(ActionsInvalid) as exc:
        parse_action({"type": "send-notification", "to": ["not-an-address"], "body": "x"})
    assert exc.value.errors[0]["field"] == "action.to"


# --- emit-event ----------------------------------------------------------------------------------


def test_emit_event_stores_a_templated_event_that_follows_the_triggering_one(clock):
    run = fire(
        {
            "type": "emit-event",
            "event": {
                "event": "acme.alert.{{ event.resource['acme.region'] }}",
                "resource": {"prefect.resource.id": "acme.alert.{{ event.resource.id }}"},
                "payload": {"total": "{{ event.payload.total }}"},
            },
        }
    )
    assert run.status == ActionRun.Status.SUCCEEDED, run.last_error
    emitted = EventRow.objects.get(event="acme.alert.eu-west")
    assert emitted.resource_id == "acme.alert.acme.order.31"
    assert emitted.payload == {"total": "12.5"}
    assert emitted.follows == run.firing.triggering_event_id
    assert run.result["emitted_event_id"] == str(emitted.id)


def test_emit_event_fails_when_the_rendered_event_is_invalid(clock):
    run = fire(
        {
            "type": "emit-event",
            "event": {
                "event": "x",
                "resource": {"prefect.resource.id": "{{ event.payload.none }}"},
            },
        }
    )
    assert run.status == ActionRun.Status.FAILED
    assert "prefect.resource.id" in run.last_error


def test_emit_event_refuses_an_event_without_a_resource_id():
    with pytest.raises(ActionsInvalid) as exc:
        parse_action({"type": "emit-event", "event": {"event": "x", "resource": {}}})
    assert exc.value.errors[0]["field"] == "action.event"


def test_emit_event_refuses_a_reserved_name_whether_static_or_templated(clock):
    with pytest.raises(ActionsInvalid) as exc:
        parse_action(
            {
                "type": "emit-event",
                "event": {
                    "event": "prefect-cloud.user.logged-in",
                    "resource": {"prefect.resource.id": "prefect-cloud.user.1"},
                },
            }
        )
    assert "reserved" in exc.value.errors[0]["message"]

    run = fire(
        {
            "type": "emit-event",
            "event": {
                "event": "{{ 'prefect-cloud' }}.user.logged-in",
                "resource": {"prefect.resource.id": "prefect-cloud.user.1"},
            },
        }
    )
    assert run.status == ActionRun.Status.FAILED
    assert "reserved" in run.last_error
    assert not EventRow.objects.filter(event="prefect-cloud.user.logged-in").exists()


def test_a_templated_emit_event_that_would_trigger_its_own_automation_is_not_emitted(clock):
    # `fire`'s automation expects acme.order.created: a templated name that renders to it loops.
    run = fire(
        {
            "type": "emit-event",
            "event": {
                "event": "acme.order.{{ 'created' }}",
                "resource": {"prefect.resource.id": "acme.order.{{ event.resource.id }}"},
            },
        }
    )
    assert run.status == ActionRun.Status.FAILED
    assert "would trigger this automation again" in run.last_error
    assert EventRow.objects.filter(event="acme.order.created").count() == 1  # the trigger's


# --- pause / resume ------------------------------------------------------------------------------


def test_pause_and_resume_automation_change_the_target_and_emit_updated(clock):
    target = make_automation(
        {"type": "event", "posture": "Reactive", "expect": ["never"]}, name="target"
    )
    run = fire({"type": "pause-automation", "source": "selected", "automation_id": str(target.id)})
    assert run.status == ActionRun.Status.SUCCEEDED
    target.refresh_from_db()
    assert target.enabled is False
    (updated,) = EventRow.objects.filter(event="prefect.automation.updated")
    assert updated.resource_id == f"prefect.automation.{target.id}"
    assert updated.payload["enabled"] is False
    parse_action(
        {"type": "resume-automation", "source": "selected", "automation_id": str(target.id)}
    )


def test_pause_automation_needs_an_id_when_selected_and_fails_for_a_missing_one(clock):
    with pytest.raises(ActionsInvalid):
        parse_action({"type": "pause-automation", "source": "selected"})
    run = fire(
        {"type": "pause-automation", "automation_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert run.status == ActionRun.Status.FAILED and "not found" in run.last_error
