"""An engine at rest costs O(new work) (issue 17): no automation, no per-event work."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from automations import changes
from automations import engine as engine_module
from automations.engine import Engine
from automations.models import EngineCursor, Firing
from automations.triggers import parse_trigger
from events import queries, wakeup
from events.models import Event as EventRow
from tests.automations.conftest import event, make_automation, settle, store
from tests.conftest import store_in_another_process

pytestmark = pytest.mark.django_db

REACTIVE = {"type": "event", "posture": "Reactive", "expect": ["acme.idle.ping"]}


def event_rows_read(run) -> list[str]:
    """The queries of `run()` that fetch stored events' contents (not just their keys)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    return [q["sql"] for q in captured.captured_queries if '"events_event"."payload"' in q["sql"]]


def test_with_no_enabled_automation_a_step_reads_no_event_and_moves_to_the_end(clock):
    make_automation(REACTIVE, enabled=False)
    engine = Engine()
    engine.load()
    store(*[event("acme.idle.ping", f"acme.thing.{i}") for i in range(50)])
    assert event_rows_read(engine.step) == []
    assert engine.cursor == queries.last_received()
    clock.shift(2)  # the cursor is written at most once a second when nothing else changed
    store(event("acme.idle.other"))
    engine.step()
    row = EngineCursor.objects.get(name=engine.name)
    assert (row.received, row.event_id) == queries.last_received()
    assert not Firing.objects.exists()


def test_an_automation_enabled_after_a_quiet_stretch_reacts_from_then_on_only(clock):
    engine = Engine()
    engine.load()
    store(event("acme.idle.ping", "acme.thing.before"))
    engine.step()
    clock.shift(2)  # past the late check's interval: it must not bring the skipped event back
    automation = make_automation(REACTIVE)
    store(event("acme.idle.ping", "acme.thing.after"))
    while engine.step():
        pass
    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_event["resource"]["prefect.resource.id"] == "acme.thing.after"


def test_a_new_engine_never_counts_the_events_before_its_start_as_late(clock):
    """A new engine starts at the end of the log. Its late check must not bring back what was
    there before (an automation made just after would fire on an old event)."""
    store(event("acme.idle.ping", "acme.thing.before"))
    engine = Engine()
    engine.load()
    automation = make_automation(REACTIVE)
    clock.shift(2)  # past the late check's interval
    store(event("acme.idle.ping", "acme.thing.after"))
    while engine.step():
        pass
    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_event["resource"]["prefect.resource.id"] == "acme.thing.after"


def test_an_automation_made_while_the_engine_lags_reacts_only_to_what_comes_after_it(clock):
    """An engine behind the log (a burst, a restart, a reload from its durable cursor) must not
    apply a new automation to events stored before it was made (the browser test's flake: the
    automation fired on the very event it was made from)."""
    engine = Engine()
    engine.load()
    store(event("acme.idle.ping", "acme.thing.before"))  # not read yet: the engine lags
    clock.shift(1)
    automation = changes.create(
        id=uuid.uuid4(), owner=None, name="made now", trigger=parse_trigger(REACTIVE).to_json()
    )
    while engine.step():
        pass
    assert not Firing.objects.filter(automation=automation).exists()
    clock.shift(1)
    store(event("acme.idle.ping", "acme.thing.after"))
    while engine.step():
        pass
    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_event["resource"]["prefect.resource.id"] == "acme.thing.after"


def test_a_resumed_automation_ignores_what_came_while_it_was_paused_however_late_read(clock):
    automation = changes.create(
        id=uuid.uuid4(), owner=None, name="paused", trigger=parse_trigger(REACTIVE).to_json()
    )
    changes.set_enabled(automation, False)
    engine = Engine()
    engine.load()
    clock.shift(1)
    store(event("acme.idle.ping", "acme.thing.while-paused"))
    clock.shift(1)
    changes.set_enabled(automation, True)  # before the engine has read the paused stretch
    clock.shift(1)
    store(event("acme.idle.ping", "acme.thing.resumed"))
    while engine.step():
        pass
    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_event["resource"]["prefect.resource.id"] == "acme.thing.resumed"


def test_a_quiet_engine_still_catches_an_event_committed_late_after_its_horizon(clock):
    """The late check keeps working after a skip: an event stamped after the skipped-to point
    but behind the cursor (committed after the engine passed it) is still evaluated."""
    engine = Engine()
    engine.load()
    store(event("acme.idle.other"))
    engine.step()  # skips to the end: the horizon
    automation = make_automation(REACTIVE)
    clock.shift(0.5)
    store(event("acme.idle.ping", "acme.thing.late"))
    clock.shift(0.5)
    store(event("acme.idle.other"))
    engine.cursor = queries.last_received()  # as if it had read past the ping before it committed
    engine.next_late_check = engine.clock()
    engine.step()
    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_event["resource"]["prefect.resource.id"] == "acme.thing.late"


# --- waking instead of polling (issue 11, item 3) ------------------------------------------------


def wait_for(condition, *, within: float) -> float:
    """Seconds until `condition()` held; fails after `within` seconds."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "not within the time allowed"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
@override_settings(
    EVENTSITE_ENGINE_POLL=timedelta(seconds=120), EVENTSITE_ENGINE_TICK=timedelta(seconds=120)
)
def test_a_stored_event_wakes_the_engine_long_before_its_safety_poll(monkeypatch):
    # Nothing else brings the engine round sooner: only a wake-up can get an event in in time.
    monkeypatch.setattr(engine_module, "DUE_CHECK_EVERY", timedelta(seconds=120))
    make_automation(REACTIVE)
    engine = Engine(name="wake")  # its own cursor: a live server's engine may run beside it
    stop = threading.Event()
    thread = threading.Thread(
        target=engine_module.run_forever, args=(stop,), kwargs={"engine": engine}
    )
    thread.start()
    try:
        wait_for(lambda: engine.loaded, within=30)  # started, and waiting
        for i in range(3):
            store(event("acme.idle.ping", f"acme.thing.{i}"))
            ping = EventRow.objects.filter(resource_id=f"acme.thing.{i}")
            stored = ping.values_list("received", "id").get()
            took = wait_for(  # a quarter of the poll
                lambda s=stored: engine.cursor is not None and engine.cursor >= s, within=30
            )
            assert took < 30
    finally:
        stop.set()
        thread.join(timeout=30)
        settle()
    assert not thread.is_alive()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_store_in_another_process_wakes_a_waiter_through_listen_notify(live_server_env):
    """Another process's commit reaches this one as a NOTIFY; no local wake is involved."""
    stop = threading.Event()
    waiter = wakeup.Wakeup(stop)
    try:
        assert waiter.listening(10)
        waiter.wait(0)  # the wake-up every (re)connection gives
        assert waiter.wait(0.2) is False
        store_in_another_process(live_server_env, "acme.idle.ping", "acme.thing.other")
        assert waiter.wait(30) is True
    finally:
        stop.set()
        waiter.close()
