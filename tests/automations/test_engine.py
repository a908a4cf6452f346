"""The engine, called directly with a controlled clock, against the real database."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from automations import changes
from automations import engine as engine_module
from automations.engine import Engine
from automations.models import ActionRun, EngineCursor, Firing, SeenEvent, TriggerBucket
from events.models import Event as EventRow
from tests.automations.conftest import event, make_automation, settle, store
from tests.factories import related

pytestmark = pytest.mark.django_db


def events_named(name: str) -> list[EventRow]:
    return list(EventRow.objects.filter(event=name).order_by("received", "id"))


def drain(engine: Engine) -> int:
    total = 0
    while n := engine.step():
        total += n
    return total


def test_engine_fires_a_reactive_automation_and_records_firing_runs_and_events(clock):
    automation = make_automation(
        {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}
    )
    engine = Engine()
    engine.load()
    store(event("acme.order.created", "acme.order.7"), event("acme.order.paid", "acme.order.7"))
    assert drain(engine) == 3  # the two events, then the automation.triggered event it stored

    (firing,) = Firing.objects.filter(automation=automation)
    triggering = EventRow.objects.get(event="acme.order.created")
    assert firing.triggering_event_id == triggering.id
    assert firing.triggered == clock.now()
    (run,) = ActionRun.objects.filter(firing=firing)
    assert run.status == ActionRun.Status.PENDING and run.kind == "do-nothing"

    (triggered,) = events_named("prefect.automation.triggered")
    assert triggered.resource == {
        "prefect.resource.id": f"prefect.automation.{automation.id}",
        "prefect.resource.name": "test automation",
        "prefect.posture": "Reactive",
    }
    assert triggered.related == [
        {
            "prefect.resource.id": f"prefect.event.{triggering.id}",
            "prefect.resource.role": "triggering-event",
        }
    ]
    assert triggered.payload["triggering_labels"] == {}
    assert triggered.payload["triggering_event"]["id"] == str(triggering.id)
    assert triggered.occurred == firing.triggered


def test_worked_example_through_the_engine_fires_once_and_chains_the_action_events(clock):
    automation = make_automation(
        {
            "type": "event",
            "posture": "Reactive",
            "expect": ["x.y"],
            "threshold": 2,
            "within": 30,
            "for_each": ["prefect.resource.id"],
        }
    )
    engine = Engine()
    engine.load()
    for rid in ["r1", "r1", "r1", "r2", "r1"]:
        store(event("x.y", rid))
        clock.shift(1)
    drain(engine)
    engine.run_actions()
    drain(engine)  # the automation's own events are stored and read back

    (firing,) = Firing.objects.filter(automation=automation)
    assert firing.triggering_labels == {"prefect.resource.id": "r1"}
    (triggered,) = events_named("prefect.automation.triggered")
    (action_triggered,) = events_named("prefect.automation.action.triggered")
    (executed,) = events_named("prefect.automation.action.executed")
    assert action_triggered.follows == firing.triggering_event_id  # < 5 min apart
    assert executed.follows == action_triggered.id
    roles = {r["prefect.resource.role"]: r["prefect.resource.id"] for r in executed.related}
    assert roles["automation-triggered-event"] == f"prefect.event.{triggered.id}"
    assert roles["triggering-event"] == f"prefect.event.{firing.triggering_event_id}"
    assert action_triggered.payload == {
        "action_index": 0,
        "action_type": "do-nothing",
        "invocation": str(ActionRun.objects.get().id),
    }
    assert action_triggered.resource["prefect.trigger-type"] == "event"
    assert action_triggered.resource["prefect.posture"] == "Reactive"
    assert ActionRun.objects.get().status == ActionRun.Status.SUCCEEDED


def test_proactive_automation_notifies_once_while_events_stay_absent(clock):
    automation = make_automation(
        {"type": "event", "posture": "Proactive", "expect": ["heartbeat"], "within": 10}
    )
    engine = Engine()
    engine.load()
    fired_at = []
    for _ in range(7):  # 0..30 s in 5 s ticks
        engine.step()
        if engine.tick():
            fired_at.append(clock.now())
        clock.shift(5)
    assert len(fired_at) == 1  # one outage, one notification (every window before resolve)
    firings = Firing.objects.filter(automation=automation)
    assert all(f.triggering_event is None for f in firings)
    (first, *_) = events_named("prefect.automation.triggered")
    assert first.payload == {"triggering_labels": {}, "triggering_event": None}
    assert first.related == []


def test_proactive_automation_stays_quiet_while_events_arrive(clock):
    make_automation(
        {"type": "event", "posture": "Proactive", "expect": ["heartbeat"], "within": 10}
    )
    engine = Engine()
    engine.load()
    for _ in range(8):
        store(event("heartbeat"))
        engine.step()
        engine.tick()
        clock.shift(4)
    assert Firing.objects.count() == 0


def test_bucket_state_survives_a_restart(clock):
    make_automation(
        {"type": "event", "posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 60}
    )
    first = Engine()
    first.load()
    store(event("x"))
    drain(first)
    assert TriggerBucket.objects.get().count == 1
    second = Engine()  # a new process
    store(event("x"))
    drain(second)
    assert Firing.objects.count() == 1


def test_restart_mid_stream_fires_every_firing_exactly_once(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    engine = Engine(batch_size=7)
    engine.load()
    store(*[event("x", f"r{i}") for i in range(50)])
    engine.step()
    engine.step()
    # The process dies here; the next one starts from the durable cursor.
    drain(Engine(batch_size=7))
    drain(Engine(batch_size=7))
    firings = list(Firing.objects.values_list("triggering_event_id", flat=True))
    assert len(firings) == 50 and len(set(firings)) == 50


def test_a_batch_that_fails_to_commit_is_recorded_by_the_next_attempt_exactly_once(
    clock, monkeypatch
):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    engine = Engine()
    engine.load()
    store(*[event("x", f"r{i}") for i in range(5)])
    real = engine_module.record_firings

    def crash(items):
        real(items)  # written, then the transaction fails before the cursor moves
        raise RuntimeError("disk full")

    monkeypatch.setattr(engine_module, "record_firings", crash)
    with pytest.raises(RuntimeError):
        engine.step()
    assert Firing.objects.count() == 0  # the whole batch rolled back
    assert EventRow.objects.filter(event="prefect.automation.triggered").count() == 0
    monkeypatch.setattr(engine_module, "record_firings", real)
    drain(engine)
    assert Firing.objects.count() == 5


def test_an_event_committed_behind_the_cursor_is_evaluated_once(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    engine = Engine()
    engine.load()
    store(event("x", "first"))
    clock.shift(10)
    store(event("x", "second"))
    drain(engine)
    # A writer that stamped `received` 5 s ago commits only now.
    late = event("x", "late")
    store(late)
    EventRow.objects.filter(id=late["id"]).update(received=clock.now() - _seconds(5))
    clock.shift(2)
    drain(engine)
    clock.shift(2)
    drain(engine)
    assert sorted(
        f.triggering_event["resource"]["prefect.resource.id"] for f in Firing.objects.all()
    ) == [
        "first",
        "late",
        "second",
    ]
    # after a restart the late event is not counted again
    drain(Engine())
    clock.shift(2)
    drain(Engine())
    assert Firing.objects.count() == 3
    assert SeenEvent.objects.filter(event_id=late["id"]).exists()


def _seconds(n: float):
    from datetime import timedelta

    return timedelta(seconds=n)


def test_two_engines_on_one_database_never_double_fire(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    a, b = Engine(batch_size=3), Engine(batch_size=3)
    a.load()
    b.load()
    store(*[event("x", f"r{i}") for i in range(10)])
    for _ in range(10):
        a.step()
        b.step()
    firings = list(Firing.objects.values_list("triggering_event_id", flat=True))
    assert len(firings) == 10 and len(set(firings)) == 10
    assert EngineCursor.objects.get(name=a.name).version >= 4


def test_log_write_events_are_never_evaluated(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": []})
    engine = Engine()
    engine.load()
    store(event("prefect.log.write"))
    drain(engine)
    assert Firing.objects.count() == 0


def test_a_follower_waits_for_its_leader(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["b"]})
    engine = Engine()
    engine.load()
    leader_id = uuid.uuid4()
    store(event("b", follows=leader_id))
    drain(engine)
    assert Firing.objects.count() == 0  # parked until its leader is evaluated
    drain(Engine())  # parked durably across a restart
    assert Firing.objects.count() == 0
    clock.shift(1)
    store(event("a", id=leader_id, ago=1))
    drain(engine)
    assert Firing.objects.count() == 1


def test_a_follower_whose_leader_never_comes_is_evaluated_after_fifteen_minutes(clock):
    make_automation({"type": "event", "posture": "Reactive", "expect": ["b"]})
    engine = Engine()
    engine.load()
    store(event("b", follows=uuid.uuid4()))
    drain(engine)
    engine.tick()
    assert Firing.objects.count() == 0
    clock.shift(15 * 60 + 1)
    engine.tick()
    assert Firing.objects.count() == 1


def test_a_disabled_automation_does_not_fire_and_an_edit_takes_effect(clock):
    automation = make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    engine = Engine()
    engine.load()
    changes.set_enabled(automation, False)
    store(event("x"))
    drain(engine)
    assert Firing.objects.count() == 0
    clock.shift(1)
    changes.set_enabled(automation, True)
    clock.shift(1)
    automation.trigger = {**automation.trigger, "expect": ["y"]}
    automation.updated = clock.now()
    automation.save()
    store(event("x"), event("y"))
    drain(engine)
    assert [f.triggering_event["event"] for f in Firing.objects.all()] == ["y"]


def test_compound_child_firings_persist_across_a_restart(clock):
    make_automation(
        {
            "type": "compound",
            "require": "all",
            "triggers": [
                {"type": "event", "posture": "Reactive", "expect": ["a"]},
                {"type": "event", "posture": "Reactive", "expect": ["b"]},
            ],
        }
    )
    engine = Engine()
    engine.load()
    store(event("a"))
    drain(engine)
    store(event("b"))
    drain(Engine())
    (firing,) = Firing.objects.all()
    assert len(firing.event_ids) == 2
    triggered = events_named("prefect.automation.triggered")[0]
    assert "prefect.posture" not in triggered.resource  # composite triggers carry none


def test_match_related_and_for_each_on_related_roles_through_the_engine(clock):
    make_automation(
        {
            "type": "event",
            "posture": "Reactive",
            "expect": ["flow.failed"],
            "match_related": {"prefect.resource.role": "flow"},
            "for_each": ["related:flow:prefect.resource.id"],
            "threshold": 2,
            "within": 60,
        }
    )
    engine = Engine()
    engine.load()
    store(
        event("flow.failed", "run.1", related=[related("flow.a", "flow")]),
        event("flow.failed", "run.2", related=[related("flow.b", "flow")]),
        event("flow.failed", "run.3", related=[related("flow.a", "flow")]),
        event("flow.failed", "run.4"),
    )
    drain(engine)
    (firing,) = Firing.objects.all()
    assert firing.triggering_labels == {"related:flow:prefect.resource.id": "flow.a"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_engines_in_parallel_on_postgresql_never_double_fire():
    import threading

    make_automation({"type": "event", "posture": "Reactive", "expect": ["x"]})
    stop = threading.Event()
    errors = []

    def run(name):
        # The deployment's cursor row: a live server's engine (another test's), which evaluates
        # this committed automation too, shares it, and so the version check.
        engine = Engine(name="default", batch_size=5)
        try:
            while not stop.is_set():
                if engine.is_leader():
                    engine.step()
                stop.wait(0.01)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    # Both engines evaluate: leadership is skipped so the version check alone must protect.
    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    original = Engine.is_leader
    Engine.is_leader = lambda self: True
    try:
        for t in threads:
            t.start()
        for i in range(20):
            store(*[event("x", f"r{i}-{j}") for j in range(5)])
        import time

        deadline = time.monotonic() + 30
        while Firing.objects.count() < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        Engine.is_leader = original
    assert not errors
    firings = list(Firing.objects.values_list("triggering_event_id", flat=True))
    assert len(firings) == 100 and len(set(firings)) == 100
    settle()  # a live server's engine (another test's) may be evaluating these too


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_only_one_engine_holds_the_postgresql_advisory_lock():
    import threading

    results = {}

    def probe(name):
        from django.db import connection as conn

        # its own cursor name: a live server of another test may hold the default one
        engine = Engine(name="lock-probe")
        results[name] = engine.is_leader()
        barrier.wait()  # both have asked while both engines (and their locks) exist
        engine.stand_down()
        conn.close()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=probe, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [False, True]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_an_engine_stays_the_leader_when_its_django_connection_goes_back_to_the_pool():
    active, standby = Engine(name="pool-probe"), Engine(name="pool-probe")
    try:
        assert active.is_leader()
        connection.close()  # what a failed step does: the pooled connection goes back
        assert not standby.is_leader()
        assert active.is_leader()
        active.stand_down()
        assert standby.is_leader()
    finally:
        active.stand_down()
        standby.stand_down()
