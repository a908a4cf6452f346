"""Delivery you can rely on: retry schedules, retries across restarts, resending failed runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automations.actions import ActionsInvalid, RetrySchedule, parse_action
from automations.engine import Engine
from automations.models import ActionRun, Delivery
from tests.automations.conftest import Sink, event, make_automation, store

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


def fire_once(engine: Engine) -> None:
    store(event("acme.order.created", "acme.order.31"))
    while engine.step():
        pass
    engine.run_actions()


def test_the_default_schedule_spans_more_than_an_hour_even_with_jitter():
    schedule = RetrySchedule()
    assert schedule.attempts == 10
    assert schedule.span() >= timedelta(hours=1)
    waits = [schedule.nominal(n) for n in range(1, schedule.attempts)]
    assert waits[0] == 10 and waits == sorted(waits) and max(waits) == 1800
    shortest = sum(w * (1 - schedule.jitter) for w in waits)
    assert shortest >= 3600
    for attempt in range(1, 10):
        delay = schedule.delay(attempt).total_seconds()
        assert 0.9 * waits[attempt - 1] <= delay <= 1.1 * waits[attempt - 1]


def test_an_action_sets_its_own_schedule_and_bad_values_are_field_errors():
    action = parse_action(
        {"type": "do-nothing", "retry": {"attempts": 3, "first_delay": 5, "max_delay": 60}}
    )
    assert action.schedule().attempts == 3 and action.schedule().nominal(5) == 60
    assert "retry" not in parse_action({"type": "do-nothing"}).stored()
    with pytest.raises(ActionsInvalid) as caught:
        parse_action({"type": "do-nothing", "retry": {"attempts": 0, "jitter": 2}})
    fields = {e["field"] for e in caught.value.errors}
    assert fields == {"action.retry.attempts", "action.retry.jitter"}


def test_a_receiver_that_fails_then_recovers_gets_the_alert_after_restarts(clock, allow_private):
    """The receiver answers 503 three times, then 200; each retry is taken up by a new engine
    (as after a restart of `serve`), and another automation's action is not held up."""
    sink = Sink(status=503, body=b"restarting")
    other = Sink()
    try:
        make_automation(TRIGGER, [{"type": "call-webhook", "url": sink.url}], name="flaky")
        engine = Engine()
        engine.load()
        fire_once(engine)
        run = ActionRun.objects.get()
        assert run.status == ActionRun.Status.PENDING and run.attempts == 1
        first_wait = (run.next_attempt - clock.now()).total_seconds()
        assert 9 <= first_wait <= 11

        make_automation(TRIGGER, [{"type": "call-webhook", "url": other.url}], name="healthy")
        engine = Engine()  # a restart: the pending run is a row, nothing is held in memory
        engine.load()
        fire_once(engine)
        healthy = ActionRun.objects.get(automation__name="healthy", firing__is_test=False)
        assert healthy.status == ActionRun.Status.SUCCEEDED  # not behind the failing one
        assert len(other.requests) == 1
        flaky = ActionRun.objects.filter(automation__name="flaky").order_by("created")
        assert [r.status for r in flaky] == [ActionRun.Status.PENDING] * 2

        for attempt in (2, 3, 4):
            if attempt == 4:
                sink.status = 200
            for r in flaky:
                r.refresh_from_db()
            clock.shift(max((r.next_attempt - clock.now()).total_seconds() for r in flaky) + 1)
            engine = Engine()
            engine.load()
            engine.run_actions()
        for r in flaky:
            r.refresh_from_db()
            assert r.status == ActionRun.Status.SUCCEEDED and r.attempts == 4
            outcomes = list(r.deliveries.order_by("attempt").values_list("outcome", flat=True))
            assert outcomes == ["retrying"] * 3 + [Delivery.Outcome.SUCCEEDED]
        assert len(sink.requests) == 8
    finally:
        sink.close()
        other.close()
