"""`POST /api/automations/preview`: the engine's firings over the stored log, clipped to it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from automations import explain
from automations.triggers import parse_trigger
from tests.automations.conftest import NOW, store
from tests.factories import event_data

pytestmark = pytest.mark.django_db

# The heartbeat pattern: each heartbeat opens a window that the next one must land in.
HEARTBEAT_MISSING = {
    "type": "event",
    "posture": "Proactive",
    "after": ["prefect.worker.heartbeat"],
    "expect": ["prefect.worker.heartbeat"],
    "match": {"prefect.resource.id": "prefect.worker.*"},
    "for_each": ["prefect.resource.id"],
    "threshold": 1,
    "within": 600,
}


def _heartbeats(clock, *, minutes: int, worker: str = "prefect.worker.w1") -> None:
    """One heartbeat every 30 s for `minutes`, each stored as it happens."""
    for _ in range(minutes * 2):
        store(event_data("prefect.worker.heartbeat", worker, occurred=clock.now()))
        clock.shift(30)


def _preview(api_client, trigger, since, until=None):
    body = {"trigger": trigger, "since": since.isoformat()}
    if until is not None:
        body["until"] = until.isoformat()
    return api_client.post("/api/automations/preview", body, format="json")


def test_preview_finds_a_real_heartbeat_outage_and_no_false_one(api_client, clock):
    _heartbeats(clock, minutes=60)
    outage_from = clock.now() - timedelta(seconds=30)  # the last heartbeat
    clock.shift(40 * 60)
    outage_to = clock.now()
    _heartbeats(clock, minutes=30)

    # Asked for a day: the stored log begins at NOW, so nothing before it can fire.
    response = _preview(api_client, HEARTBEAT_MISSING, since=NOW - timedelta(hours=24))
    assert response.status_code == 200
    body = response.json()
    assert body["since"].startswith("2026-03-01T09:00:00")
    assert body["horizon"].startswith("2026-03-01T09:00:00")
    # One alert, 10 minutes (and at most one 5 s tick) after the last heartbeat.
    (firing,) = body["firings"]
    assert body["count"] == 1
    alert = datetime.fromisoformat(firing["occurred"])
    assert (
        outage_from + timedelta(minutes=10)
        <= alert
        <= outage_from + timedelta(minutes=10, seconds=5)
    )
    assert alert < outage_to
    assert firing["triggering_labels"] == {"prefect.resource.id": "prefect.worker.w1"}
    assert firing["triggering_event"] is not None  # the last heartbeat, which opened the window
    # The outage resolves at the first heartbeat back.
    (resolved,) = body["resolved"]
    assert (
        outage_to
        <= datetime.fromisoformat(resolved["occurred"])
        <= outage_to + timedelta(seconds=5)
    )
    assert resolved["triggering_labels"] == firing["triggering_labels"]

    # Names given as a glob read the same events.
    glob = HEARTBEAT_MISSING | {"after": ["prefect.worker.*"], "expect": ["prefect.worker.*"]}
    assert _preview(api_client, glob, since=NOW).json()["firings"] == body["firings"]

    # Over the healthy hour only: no firing at all.
    quiet = _preview(api_client, HEARTBEAT_MISSING, since=NOW, until=outage_from)
    assert quiet.status_code == 200
    assert quiet.json()["count"] == 0 and quiet.json()["firings"] == []


def test_preview_names_the_triggering_event_of_reactive_firings(api_client, clock):
    stored = event_data("acme.order.failed", "acme.order.1", occurred=clock.now())
    store(stored)
    clock.shift(5)
    trigger = {"type": "event", "posture": "Reactive", "expect": ["acme.order.failed"]}
    response = _preview(api_client, trigger, since=NOW - timedelta(hours=1))
    assert response.status_code == 200
    (firing,) = response.json()["firings"]
    assert firing["triggering_event"] == stored["id"]
    assert firing["occurred"].startswith("2026-03-01T09:00:00")  # when the engine read it
    assert response.json()["until"].startswith("2026-03-01T09:00:05")  # until defaults to now


def test_preview_of_an_empty_log_fires_nothing(api_client, clock):
    response = _preview(api_client, HEARTBEAT_MISSING, since=NOW - timedelta(hours=24))
    assert response.status_code == 200
    assert response.json()["count"] == 0 and response.json()["firings"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"trigger": {"type": "event", "posture": "Sideways"}, "since": NOW.isoformat()}, None),
        ({"trigger": HEARTBEAT_MISSING}, "since"),
        ({"trigger": HEARTBEAT_MISSING, "since": "yesterday"}, "since"),
        (
            {
                "trigger": HEARTBEAT_MISSING,
                "since": NOW.isoformat(),
                "until": (NOW - timedelta(hours=1)).isoformat(),
            },
            None,
        ),
        ({"trigger": HEARTBEAT_MISSING, "since": NOW.isoformat(), "extra": 1}, "extra"),
    ],
)
def test_preview_rejects_a_bad_request_by_field(api_client, body, field):
    response = api_client.post("/api/automations/preview", body, format="json")
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors
    if field:
        assert any(e["field"].startswith(field) for e in errors), errors


def test_preview_needs_authentication(client):
    response = client.post(
        "/api/automations/preview",
        {"trigger": HEARTBEAT_MISSING, "since": NOW.isoformat()},
        content_type="application/json",
    )
    assert response.status_code in (401, 403)


def test_preview_answers_odd_input_with_a_422_not_a_500(api_client):
    odd = {"\u00b3": {}, "since": "0412-10-26T20:50:47Z", "trigger": 1.5, "until": []}
    assert api_client.post("/api/automations/preview", odd, format="json").status_code == 422


def test_preview_of_a_reactive_trigger_far_into_the_future_answers_at_once(api_client, clock):
    store(event_data("acme.order.failed", "acme.order.1", occurred=clock.now()))
    trigger = {"type": "event", "posture": "Reactive", "expect": ["acme.order.failed"]}
    body = {"trigger": trigger, "since": "0001-01-01T00:00:00Z", "until": "9999-12-31T00:00:00Z"}
    response = api_client.post("/api/automations/preview", body, format="json")
    assert response.status_code == 200
    assert response.json()["count"] == 1


FAILED_ORDER = {"type": "event", "posture": "Reactive", "expect": ["acme.order.failed"]}


def _failures(clock, count: int) -> None:
    for i in range(count):
        store(event_data("acme.order.failed", f"acme.order.{i}", occurred=clock.now()))
        clock.shift(1)


def test_a_preview_past_its_time_budget_answers_what_it_read_and_says_so(clock):
    _failures(clock, 5)
    trigger = parse_trigger(FAILED_ORDER)
    # No time at all: the read stops after its first page of two events.
    found = explain.replay_stored(trigger, since=NOW, until=clock.now(), budget=0, page=2)
    assert found.truncated is True
    assert found.until == NOW + timedelta(seconds=1)  # the second event's `received`
    assert found.replay.events == 2
    assert [f.triggered for f in found.replay.firings] == [NOW, NOW + timedelta(seconds=1)]
    # The same without a budget: every event, nothing cut.
    whole = explain.replay_stored(trigger, since=NOW, until=clock.now(), page=2)
    assert whole.truncated is False and whole.replay.events == 5
    assert len(whole.replay.firings) == 5


def test_a_preview_whose_budget_ends_with_the_log_is_not_cut_short(clock):
    _failures(clock, 4)
    found = explain.replay_stored(
        parse_trigger(FAILED_ORDER), since=NOW, until=clock.now(), budget=0, page=4
    )
    assert found.truncated is False
    assert found.until == clock.now() and found.replay.events == 4
