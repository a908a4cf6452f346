"""Delivery you can rely on: retry schedules, retries across restarts, resending failed runs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automations.actions import ActionsInvalid, RetrySchedule, parse_action
from automations.actions.resend import resend
from automations.engine import Engine
from automations.models import ActionRun, Automation, Delivery
from events.models import Event as EventRow
from tests.automations.conftest import Sink, event, make_automation, store
from tests.events.accounts.test_roles import make_user

pytestmark = pytest.mark.django_db

TRIGGER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.created"]}


def fire_once(engine: Engine, clock) -> None:
    clock.shift(1)  # after the engine's first instant (a new cursor's horizon)
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
        fire_once(engine, clock)
        run = ActionRun.objects.get()
        assert run.status == ActionRun.Status.PENDING and run.attempts == 1
        first_wait = (run.next_attempt - clock.now()).total_seconds()
        assert 9 <= first_wait <= 11

        make_automation(TRIGGER, [{"type": "call-webhook", "url": other.url}], name="healthy")
        engine = Engine()  # a restart: the pending run is a row, nothing is held in memory
        engine.load()
        fire_once(engine, clock)
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


# --- resending -----------------------------------------------------------------------------------


def failed_runs(clock, sink, count: int = 2) -> Automation:
    """An automation whose `count` runs failed (one attempt each: a 503 with attempts=1)."""
    action = {"type": "call-webhook", "url": sink.url, "retry": {"attempts": 1}}
    automation = make_automation(TRIGGER, [action], name="alerts")
    engine = Engine()
    engine.load()
    clock.shift(1)  # after the engine's first instant (a new cursor's horizon)
    sink.status = 503
    for i in range(count):
        store(event("acme.order.created", f"acme.order.{i}"))
        clock.shift(1)
    while engine.step():
        pass
    engine.run_actions()
    assert ActionRun.objects.filter(status=ActionRun.Status.FAILED).count() == count
    return automation


def deliver_due() -> None:
    engine = Engine()
    engine.load()
    engine.run_actions()


def audit_events() -> list[EventRow]:
    return list(EventRow.objects.filter(event="prefect-cloud.automation.resent"))


def test_the_firing_page_resends_a_failed_run_and_says_so(clock, sink, logged_in_client):
    automation = failed_runs(clock, sink, count=1)
    run = ActionRun.objects.get()
    page = logged_in_client.get(f"/automations/firings/{run.firing_id}/").content.decode()
    assert f'action="/automations/runs/{run.id}/resend"' in page
    sink.status = 200
    response = logged_in_client.post(f"/automations/runs/{run.id}/resend", follow=True)
    assert response.status_code == 200
    assert "Resent 1 failed run" in response.content.decode()
    run.refresh_from_db()
    assert run.status == ActionRun.Status.PENDING and (run.attempts, run.resent_after) == (1, 1)
    deliver_due()
    run.refresh_from_db()
    assert run.status == ActionRun.Status.SUCCEEDED
    assert [r["headers"]["idempotency-key"] for r in sink.requests] == [str(run.id)] * 2
    (audited,) = audit_events()
    assert audited.payload["count"] == 1 and audited.payload["runs"] == [str(run.id)]
    assert audited.resource["prefect.resource.id"] == automation.resource_id
    # A run that is not failed is not resent twice.
    response = logged_in_client.post(f"/automations/runs/{run.id}/resend", follow=True)
    assert "Nothing resent: the run is succeeded" in response.content.decode()
    assert len(audit_events()) == 1


def test_a_resent_run_numbers_its_attempts_on_with_a_fresh_schedule(clock, sink):
    """Two attempts fail (a schedule of 2), the run is resent: its attempts are numbered 3 and 4
    (not 1 and 2 again), and the fresh schedule retries once more before it fails again."""
    action = {"type": "call-webhook", "url": sink.url, "retry": {"attempts": 2, "first_delay": 5}}
    make_automation(TRIGGER, [action], name="alerts")
    sink.status = 503
    engine = Engine()
    engine.load()
    fire_once(engine, clock)
    run = ActionRun.objects.get()
    clock.shift((run.next_attempt - clock.now()).total_seconds() + 1)
    deliver_due()
    run.refresh_from_db()
    assert run.status == ActionRun.Status.FAILED and run.attempts == 2
    assert resend(run)
    run.refresh_from_db()
    assert run.status == ActionRun.Status.PENDING
    assert (run.attempts, run.resent_after) == (2, 2)
    # A second later: under the frozen clock attempt 3 would share attempt 2's instant, and the
    # orders below (by `started`, by `received`) would be a tie, read either way.
    clock.shift(1)
    deliver_due()
    run.refresh_from_db()
    assert run.status == ActionRun.Status.PENDING and run.attempts == 3  # retried: fresh schedule
    clock.shift((run.next_attempt - clock.now()).total_seconds() + 1)
    deliver_due()
    run.refresh_from_db()
    assert run.status == ActionRun.Status.FAILED and run.attempts == 4
    deliveries = list(run.deliveries.order_by("started").values_list("attempt", "outcome"))
    assert [a for a, _ in deliveries] == [1, 2, 3, 4]
    assert [o for _, o in deliveries] == ["retrying", "failed", "retrying", "failed"]
    failed = EventRow.objects.filter(event="prefect.automation.action.failed").order_by("received")
    assert [e.payload["attempt"] for e in failed] == [1, 2, 3, 4]


def test_resend_all_failed_since_a_time_counts_then_resends(clock, sink, logged_in_client):
    automation = failed_runs(clock, sink, count=3)
    oldest = ActionRun.objects.order_by("finished").first()
    ActionRun.objects.filter(pk=oldest.pk).update(finished=clock.now() - timedelta(days=2))
    url = f"/automations/{automation.id}/resend"
    page = logged_in_client.get(url).content.decode()
    assert "<strong>2</strong> runs failed since" in page and "Resend 2 failed runs" in page
    since = (clock.now() - timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    assert "<strong>3</strong>" in logged_in_client.get(url, {"since": since}).content.decode()
    response = logged_in_client.post(url, {"since": "yesterday-ish"})
    assert response.status_code == 422
    assert ActionRun.objects.filter(status=ActionRun.Status.FAILED).count() == 3
    sink.status = 200
    response = logged_in_client.post(url, {"since": since}, follow=True)
    assert "Resent 3 failed runs since" in response.content.decode()
    deliver_due()
    statuses = set(ActionRun.objects.values_list("status", flat=True))
    assert statuses == {ActionRun.Status.SUCCEEDED}
    (audited,) = audit_events()
    assert audited.payload["count"] == 3 and audited.payload["since"].startswith(since[:10])
    response = logged_in_client.post(url, {"since": since}, follow=True)
    assert "Nothing to resend" in response.content.decode()


def test_the_api_resends_and_answers_4xx_for_what_it_cannot(clock, sink, api_client):
    automation = failed_runs(clock, sink, count=2)
    url = f"/api/automations/{automation.id}/resend-failed"
    assert api_client.post(url, {"since": "not a time"}, format="json").status_code == 422
    assert api_client.post(url, {}, format="json").status_code == 422
    missing = "/api/automations/00000000-0000-0000-0000-000000000000/resend-failed"
    assert (
        api_client.post(missing, {"since": "2026-01-01T00:00:00Z"}, format="json").status_code
        == 404
    )
    response = api_client.post(url, {"since": "2000-01-01T00:00:00"}, format="json")
    assert response.status_code == 200
    assert response.json()["resent"] == 2 and "Resent 2 failed runs" in response.json()["message"]
    run = ActionRun.objects.first()
    response = api_client.post(f"/api/automations/runs/{run.id}/resend")
    assert response.status_code == 409 and "pending" in response.json()["detail"]
    assert len(audit_events()) == 1


def test_viewers_cannot_resend(clock, sink, client, django_user_model):
    automation = failed_runs(clock, sink, count=1)
    run = ActionRun.objects.get()
    viewer = make_user(django_user_model, "viewer")
    client.force_login(viewer)
    page = client.get(f"/automations/firings/{run.firing_id}/").content.decode()
    assert "/resend" not in page
    assert client.post(f"/automations/runs/{run.id}/resend").status_code == 403
    assert client.get(f"/automations/{automation.id}/resend").status_code == 403
    run.refresh_from_db()
    assert run.status == ActionRun.Status.FAILED and not audit_events()
