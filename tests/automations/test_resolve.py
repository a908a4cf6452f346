"""Resolve end to end: a proactive automation fires once per outage, and when the expected
events come back the engine records a `Resolved` firing, stores `prefect.automation.resolved`
and runs `actions_on_resolve` (PagerDuty resolves the incident it opened)."""

from __future__ import annotations

import re

import pytest

from automations.engine import Engine
from automations.models import ActionRun, Automation, Firing, TriggerOutage
from automations.triggers import parse_trigger
from automations.triggers.describe import sentence
from events.models import Event as EventRow
from tests.automations.actions.receivers import Receiver
from tests.automations.actions.test_presets import pagerduty_answer
from tests.automations.conftest import event, make_automation, store

pytestmark = pytest.mark.django_db

HEARTBEAT = {
    "type": "event",
    "posture": "Proactive",
    "after": ["prefect.worker.heartbeat"],
    "expect": ["prefect.worker.heartbeat"],
    "for_each": ["prefect.resource.id"],
    "within": 60,
}


def run(engine: Engine, seconds: int, *, beat: str | None = None) -> None:
    """Advance the clock 5 s at a time, reading the log and ticking as `serve` does."""
    for _ in range(seconds // 5):
        if beat:
            store(event("prefect.worker.heartbeat", beat))
        while engine.step():
            pass
        engine.tick()
        engine.run_actions()
        engine.clock_shift(5)


@pytest.fixture
def engine(clock):
    clock.shift(1)  # past a new engine's first instant (see tests/automations/test_pages.py)
    made = Engine()
    made.load()
    made.clock_shift = clock.shift
    return made


def test_a_silent_worker_fires_once_and_resolves_with_its_actions_when_it_beats_again(
    clock, engine
):
    automation = make_automation(
        HEARTBEAT,
        [{"type": "do-nothing"}],
        actions_on_resolve=[{"type": "do-nothing"}],
    )
    run(engine, 30, beat="prefect.worker.w1")
    run(engine, 300)  # five minutes of silence: one notification, not five
    (fired,) = Firing.objects.filter(automation=automation)
    assert fired.state == Firing.State.TRIGGERED
    assert fired.triggering_labels == {"prefect.resource.id": "prefect.worker.w1"}
    assert TriggerOutage.objects.get().firing_id == fired.id

    # A restarted engine remembers the outage: it neither notifies again nor forgets to resolve.
    restarted = Engine()
    restarted.load()
    restarted.clock_shift = clock.shift
    run(restarted, 120)
    assert Firing.objects.filter(automation=automation).count() == 1

    run(restarted, 5, beat="prefect.worker.w1")
    resolved = Firing.objects.get(automation=automation, state=Firing.State.RESOLVED)
    assert resolved.triggering_labels == fired.triggering_labels
    assert resolved.triggered > fired.triggered
    assert not TriggerOutage.objects.exists()
    back = EventRow.objects.filter(event="prefect.worker.heartbeat").latest("received", "id")
    assert resolved.triggering_event_id == back.id

    (event_row,) = EventRow.objects.filter(event="prefect.automation.resolved")
    assert event_row.resource == {
        "prefect.resource.id": automation.resource_id,
        "prefect.resource.name": automation.name,
        "prefect.posture": "Proactive",
    }
    assert event_row.related == [
        {
            "prefect.resource.id": f"prefect.event.{back.id}",
            "prefect.resource.role": "triggering-event",
        }
    ]
    assert event_row.payload["triggering_labels"] == {"prefect.resource.id": "prefect.worker.w1"}
    assert event_row.occurred == resolved.triggered

    (on_resolve,) = ActionRun.objects.filter(firing=resolved)
    assert on_resolve.source == "actions_on_resolve"
    assert on_resolve.status == ActionRun.Status.SUCCEEDED
    assert on_resolve.triggering_event["event"] == "prefect.automation.resolved"
    # The firing ran `actions` only, the resolution `actions_on_resolve` only.
    assert [r.source for r in ActionRun.objects.filter(firing=fired)] == ["actions"]

    # Silent again: a new outage, a new notification.
    run(restarted, 120)
    assert Firing.objects.filter(automation=automation, state="Triggered").count() == 2


def test_pagerduty_opens_an_incident_when_heartbeats_stop_and_resolves_it_when_they_return(
    clock, engine, allow_private
):
    pagerduty = Receiver(pagerduty_answer)
    action = {
        "type": "notify-pagerduty",
        "routing_key": "R0UTINGKEY0123456789012345678901",
        "severity": "critical",
        "api_url": pagerduty.url + "/v2/enqueue",
    }
    try:
        automation = make_automation(
            HEARTBEAT, [action], actions_on_resolve=[action], name="Workers"
        )
        run(engine, 30, beat="prefect.worker.w1")
        run(engine, 30, beat="prefect.worker.w2")  # w1 goes silent here, w2 keeps beating
        run(engine, 60, beat="prefect.worker.w2")
        assert len(pagerduty.requests) == 1
        run(engine, 10, beat="prefect.worker.w1")
    finally:
        pagerduty.close()

    runs = ActionRun.objects.filter(automation=automation).order_by("created")
    assert [(r.source, r.status) for r in runs] == [
        ("actions", ActionRun.Status.SUCCEEDED),
        ("actions_on_resolve", ActionRun.Status.SUCCEEDED),
    ]
    triggered, resolved = pagerduty.json(0), pagerduty.json(1)
    assert triggered["event_action"] == "trigger"
    assert triggered["payload"]["severity"] == "critical"
    assert triggered["payload"]["source"] == "prefect.worker.w1"
    assert triggered["dedup_key"].startswith(f"eventsite-{automation.id}-")
    assert resolved == {
        "routing_key": "R0UTINGKEY0123456789012345678901",
        "dedup_key": triggered["dedup_key"],
        "event_action": "resolve",
    }
    assert len(pagerduty.requests) == 2


def test_the_automation_page_shows_each_keys_state_escaped(clock, engine, logged_in_client):
    automation = make_automation(
        HEARTBEAT | {"after": [], "expect": ["prefect.worker.heartbeat"]}, name="Workers"
    )
    run(engine, 10, beat="prefect.worker.<b>w1</b>")
    run(engine, 10, beat="prefect.worker.w2")
    # w1 (silent after 5 s) fires; w2 still beating stays armed
    run(engine, 120, beat="prefect.worker.w2")
    page = logged_in_client.get(f"/automations/{automation.id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "prefect.resource.id=prefect.worker.&lt;b&gt;w1&lt;/b&gt;" in html
    assert "<b>w1</b>" not in html
    rows = html.split('class="key-state ')[1:]
    firing = next(r for r in rows if "&lt;b&gt;w1" in r)
    armed = next(r for r in rows if "worker.w2" in r)
    assert firing.startswith("state-firing") and "since" in firing
    assert armed.startswith("state-armed") and "window ends at" in armed
    listed = logged_in_client.get("/automations/").content.decode()
    assert "Firing: 1 key<" in listed

    run(engine, 5, beat="prefect.worker.<b>w1</b>")
    html = logged_in_client.get(f"/automations/{automation.id}/").content.decode()
    rows = html.split('class="key-state ')[1:]
    back = next(r for r in rows if "&lt;b&gt;w1" in r)
    assert back.startswith("state-armed")  # its window rolls again, resolved a moment ago
    resolved = Firing.objects.get(state="Resolved")
    assert resolved.triggered.strftime("%Y-%m-%d %H:%M:%S") in back
    assert "resolved</span>" in html  # the firings list marks the resolution
    assert "Firing: " not in logged_in_client.get("/automations/").content.decode()
    trace = logged_in_client.get(f"/automations/firings/{resolved.id}/").content.decode()
    assert "<h1>Resolved <time" in trace
    caused = logged_in_client.get(f"/automations/caused-by/{resolved.triggering_event_id}/")
    assert caused.status_code == 200
    assert f"/automations/firings/{resolved.id}/" in caused.content.decode()
    assert "resolved</span>" in caused.content.decode()


def _form(**overrides) -> dict:
    data = {
        "name": "Workers",
        "trigger_mode": "event",
        "expect": "prefect.worker.heartbeat",
        "for_each": "prefect.resource.id",
        "posture": "Proactive",
        "threshold": "1",
        "within": "60",
        "enabled": "on",
        "actions-TOTAL_FORMS": "2",
        "actions-INITIAL_FORMS": "0",
        "actions-MIN_NUM_FORMS": "0",
        "actions-MAX_NUM_FORMS": "1000",
        "actions-0-type": "emit-event",
        "actions-0-emit-event": '{"event": "acme.worker.down", "resource": {"prefect.resource.id": "acme.w"}}',
        "actions-0-on_resolve": "on",
        "actions-1-type": "do-nothing",
    }
    data.update(overrides)
    return data


def test_the_form_puts_an_action_on_resolve_too_and_takes_it_off_again(logged_in_client):
    assert logged_in_client.post("/automations/new/", _form()).status_code == 302
    automation = Automation.objects.get()
    assert automation.actions_on_resolve == [automation.actions[0]]
    # one set through the API alone (no twin in `actions`) is kept by the form
    only_on_resolve = {
        "type": "emit-event",
        "event": {"event": "acme.back", "resource": {"prefect.resource.id": "acme.w"}},
    }
    automation.actions_on_resolve = [*automation.actions_on_resolve, only_on_resolve]
    automation.save()

    edit = logged_in_client.get(f"/automations/{automation.id}/edit/").content.decode()
    boxes = re.findall(r"<input[^>]*id_actions-\d-on_resolve[^>]*>", edit)
    assert [b.endswith(" checked>") for b in boxes[:2]] == [True, False]  # then an empty slot

    again = _form(**{"actions-INITIAL_FORMS": "2"})
    assert logged_in_client.post(f"/automations/{automation.id}/edit/", again).status_code == 302
    automation.refresh_from_db()
    assert automation.actions_on_resolve == [only_on_resolve, automation.actions[0]]  # once

    unticked = {k: v for k, v in again.items() if k != "actions-0-on_resolve"}
    assert logged_in_client.post(f"/automations/{automation.id}/edit/", unticked).status_code == 302
    automation.refresh_from_db()
    assert automation.actions_on_resolve == [only_on_resolve]
    page = logged_in_client.get(f"/automations/{automation.id}/").content.decode()
    assert "On resolve" in page and "emit-event" in page


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"after": ["hb"], "expect": ["hb"], "for_each": ["prefect.resource.id"]}, "after each hb"),
        ({"expect": ["hb"], "for_each": ["prefect.resource.id"]}, "between 1 minute and 2 minutes"),
        ({"expect": ["hb"]}, "Fires when no hb arrive within 1 minute."),
    ],
)
def test_the_live_sentence_says_what_each_proactive_posture_does(fields, says):
    trigger = parse_trigger({"type": "event", "posture": "Proactive", "within": 60, **fields})
    said = sentence(trigger)
    assert says in said
    assert said.endswith(
        "notifies once per outage, and resolves (running the actions on resolve) when hb arrives again."
    )
    reactive = sentence(parse_trigger({"type": "event", "posture": "Reactive", "expect": ["x"]}))
    assert "resolve" not in reactive
    compound = parse_trigger(
        {"type": "compound", "require": "any", "triggers": [trigger.to_json()]}
    )
    assert "resolves" not in sentence(compound)  # composites never resolve


def test_send_test_uses_the_latest_firing_not_a_resolution_or_an_earlier_test(clock):
    from datetime import timedelta

    from automations.actions.runner import send_test

    automation = make_automation(HEARTBEAT)
    fired_on = event("prefect.worker.heartbeat", "w1")
    resolved_by = event("prefect.worker.heartbeat", "w1")
    now = clock.now()
    for at, state, source in (
        (now - timedelta(minutes=10), Firing.State.TRIGGERED, fired_on),
        (now - timedelta(minutes=5), Firing.State.RESOLVED, resolved_by),
    ):
        Firing.objects.create(
            automation=automation,
            triggered=at,
            trigger_id=parse_trigger(automation.trigger).id,
            triggering_event=source,
            triggering_event_id=source["id"],
            state=state,
        )
    first = send_test(automation, automation.all_actions()[0])
    again = send_test(automation, automation.all_actions()[0])
    assert first.triggering_event["id"] == again.triggering_event["id"] == str(fired_on["id"])
