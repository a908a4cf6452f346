"""Explain answers "why not" from the state replayed at the event's time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from automations import changes
from automations.engine import Engine
from automations.explain import explain_stored
from automations.triggers import parse_trigger
from events import queries
from tests.automations.conftest import event, store

pytestmark = pytest.mark.django_db


def automation_with(trigger: dict):
    stored = parse_trigger(trigger).to_json()  # with its ids, as a saved automation has
    return changes.create(id=uuid.uuid4(), owner=None, name="why", trigger=stored, actions=[])


def run_engine(engine: Engine) -> None:
    while engine.step():
        pass


def explained(automation, data: dict) -> dict:
    return explain_stored(automation, queries.event(uuid.UUID(data["id"])))


def test_a_threshold_not_reached_gives_the_count_and_the_window(clock):
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.order.failed"],
        "for_each": ["prefect.resource.id"],
        "threshold": 3,
        "within": 60,
    }
    automation = automation_with(trigger)
    engine = Engine()
    engine.load()
    clock.shift(1)
    first = event("acme.order.failed", "acme.order.1")
    store(first)
    clock.shift(5)
    second = event("acme.order.failed", "acme.order.1")
    store(second, event("acme.order.failed", "acme.order.2"))
    run_engine(engine)
    clock.shift(5)
    # Today the window is gone (swept, or as the engine keeps it); explain replays it.
    result = explained(automation, second)
    assert result["fired"] is False and result["matched"] is True
    (window,) = result["at_event"]["windows"]
    assert window["after"]["count"] == 2 and window["before"]["count"] == 1
    assert window["key"] == ["acme.order.1"]
    assert "counted 2 of the 3 events it needs" in result["verdict"]
    assert (
        window["after"]["end"]
        == (queries.event(uuid.UUID(first["id"])).occurred + timedelta(seconds=60)).isoformat()
    )
    clause = next(c for c in result["clauses"] if c["clause"] == "window")
    assert clause["passed"] is True and clause["note"] == "bucket count 1"  # just before it


def test_an_event_in_the_debounce_period_says_until_when(clock):
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.order.failed"],
        "threshold": 1,
        "within": 60,
    }
    automation = automation_with(trigger)
    engine = Engine()
    engine.load()
    clock.shift(1)
    first = event("acme.order.failed", "acme.order.1")
    store(first)
    run_engine(engine)
    clock.shift(10)
    second = event("acme.order.failed", "acme.order.2")
    store(second)
    run_engine(engine)
    assert explained(automation, first)["fired"] is True
    result = explained(automation, second)
    assert result["fired"] is False
    occurred = queries.event(uuid.UUID(first["id"])).occurred
    until = (occurred + timedelta(seconds=60)).isoformat()
    assert result["at_event"]["windows"][0]["debounced_until"] == until
    assert "debounce period" in result["verdict"]
    assert until.replace("T", " ")[:19] in result["verdict"]


def test_a_sequence_says_which_steps_fired_and_in_what_order(clock):
    step = {"type": "event", "posture": "Reactive", "threshold": 1, "within": 0}
    trigger = {
        "type": "sequence",
        "within": 600,
        "triggers": [
            {**step, "expect": ["acme.build.started"]},
            {**step, "expect": ["acme.build.failed"]},
        ],
    }
    automation = automation_with(trigger)
    engine = Engine()
    engine.load()
    clock.shift(1)
    failed = event("acme.build.failed", "acme.build.1")
    store(failed)
    run_engine(engine)
    result = explained(automation, failed)
    assert result["fired"] is False
    (sequence,) = result["at_event"]["composites"]
    assert [c["fired"] is not None for c in sequence["children"]] == [False, True]
    assert "sequence" in result["verdict"] and "triggers[0] not yet" in result["verdict"]
    assert "triggers[1] fired at" in result["verdict"]


def test_the_api_and_page_carry_the_state_at_the_event(clock, api_client, logged_in_client):
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.order.failed"],
        "threshold": 2,
        "within": 60,
    }
    automation = automation_with(trigger)
    engine = Engine()
    engine.load()
    clock.shift(1)
    data = event("acme.order.failed", "acme.order.1")
    store(data, event("acme.order.created", "acme.order.1"))
    run_engine(engine)
    response = api_client.get(f"/api/automations/{automation.id}/explain?event={data['id']}")
    assert response.status_code == 200
    at_event = response.json()["at_event"]
    assert at_event["windows"][0]["after"]["count"] == 1
    page = logged_in_client.get(f"/automations/{automation.id}/explain")
    html = page.content.decode()
    # Recent candidate events to pick from: the ones the trigger covers.
    assert f"?event={data['id']}" in html and "acme.order.created" not in html
    page = logged_in_client.get(f"/automations/{automation.id}/explain?event={data['id']}")
    assert "counted 1 of the 2 events it needs" in page.content.decode()


def test_a_proactive_firing_says_which_window_was_empty(clock, logged_in_client):
    from automations.models import Firing

    trigger = {
        "type": "event",
        "posture": "Proactive",
        "after": ["acme.heartbeat"],
        "expect": ["acme.heartbeat"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 30,
    }
    automation = automation_with(trigger)
    engine = Engine()
    engine.load()
    clock.shift(1)
    store(event("acme.heartbeat", "acme.worker.1"))
    run_engine(engine)
    for _ in range(10):
        clock.shift(5)
        engine.tick()
    firing = Firing.objects.get(automation=automation)
    page = logged_in_client.get(f"/automations/firings/{firing.id}/").content.decode()
    assert "the 30 s window for prefect.resource.id=acme.worker.1 that ended by" in page
    assert "held fewer than 1 acme.heartbeat event." in page
    assert "The last event it saw there: acme.heartbeat at" in page
