"""Trace: an event's page names the firings it caused; a firing's page shows the whole chain."""

from __future__ import annotations

import uuid

import pytest

from automations.engine import Engine
from automations.models import Firing
from tests.automations.conftest import event, make_automation, store
from tests.factories import related

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.failed"]}


def test_a_late_events_page_names_the_automation_it_fired(clock, logged_in_client):
    automation = make_automation(TRIGGER, name="Failed orders")
    engine = Engine()
    engine.load()
    clock.shift(60)
    late = event("acme.order.failed", "acme.order.7", ago=3600)  # an hour late: no `follows`
    store(late)
    engine.step()
    engine.run_actions()
    firing = Firing.objects.get(automation=automation)
    assert str(firing.triggering_event_id) == late["id"]

    page = logged_in_client.get(f"/events/{late['id']}/")
    assert page.status_code == 200
    assert f"/automations/caused-by/{late['id']}/" in page.content.decode()
    caused = logged_in_client.get(f"/automations/caused-by/{late['id']}/")
    assert caused.status_code == 200
    html = caused.content.decode()
    assert "Failed orders" in html and f"/automations/firings/{firing.id}/" in html

    other = logged_in_client.get(f"/automations/caused-by/{uuid.uuid4()}/")
    assert "No automation fired on this event" in other.content.decode()


def test_a_firing_page_shows_event_firing_action_runs_and_resulting_events(clock, logged_in_client):
    automation = make_automation(TRIGGER, name="Failed orders")
    engine = Engine()
    engine.load()
    clock.shift(1)
    data = event("acme.order.failed", "acme.order.8")
    store(data)
    engine.step()
    engine.run_actions()
    firing = Firing.objects.get(automation=automation)
    page = logged_in_client.get(f"/automations/firings/{firing.id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/events/{data['id']}/" in html  # the event
    assert "#0 do-nothing: <strong>succeeded</strong>" in html  # the action run
    assert f"/events/{firing.triggered_event_id}/" in html  # prefect.automation.triggered
    assert "prefect.automation.action.executed" in html  # what the action run emitted
    detail = logged_in_client.get(f"/automations/{automation.id}/")
    assert f"/automations/firings/{firing.id}/" in detail.content.decode()
    assert logged_in_client.get(f"/automations/firings/{uuid.uuid4()}/").status_code == 404


def test_prefect_event_chips_link_to_the_event_page(logged_in_client):
    leader = uuid.uuid4()
    data = event(
        "acme.order.retried",
        "acme.order.9",
        related=[related(f"prefect.event.{leader}", "triggering-event")],
    )
    store(data)
    page = logged_in_client.get(f"/events/{data['id']}/")
    assert f'href="/events/{leader}/"' in page.content.decode()
    feed = logged_in_client.get("/events/")
    assert f'href="/events/{leader}/"' in feed.content.decode()


def test_explain_says_it_was_paused_when_the_event_arrived_not_how_it_is_today(
    clock, logged_in_client
):
    from automations import changes
    from automations.explain import explain_stored
    from events import queries

    automation = changes.create(
        id=uuid.uuid4(), owner=None, name="Paused a while", trigger=TRIGGER, actions=[]
    )
    clock.shift(10)
    changes.set_enabled(automation, False)
    clock.shift(10)
    during = event("acme.order.failed", "acme.order.1")
    store(during)
    clock.shift(10)
    changes.set_enabled(automation, True)
    clock.shift(10)
    result = explain_stored(automation, queries.event(uuid.UUID(during["id"])))
    assert result["enabled"] is False
    assert (
        result["verdict"] == "It did not fire: the automation was disabled when the event arrived."
    )

    after = event("acme.order.failed", "acme.order.2")
    store(after)
    clock.shift(10)
    changes.set_enabled(automation, False)
    result = explain_stored(automation, queries.event(uuid.UUID(after["id"])))
    assert result["enabled"] is True and "disabled" not in result["verdict"]
