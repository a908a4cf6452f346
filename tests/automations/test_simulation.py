"""The replay behind preview and explain makes the engine's firings: a differential test.

The real engine runs against the real database with a controlled clock (events stored as they
arrive, a step after each arrival, the proactive tick every 5 s, pauses and resumes through
`changes.set_enabled`); then `explain.replay_stored` replays the stored log. Both must give the
same firings: time, triggering labels, triggering event and state (Triggered, or Resolved when
a proactive outage ends).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import transaction
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import event as note_case
from hypothesis import strategies as st

from automations import changes, explain
from automations.engine import Engine
from automations.models import Firing
from automations.triggers import parse_trigger
from tests.automations.conftest import NOW, store
from tests.factories import event_data

pytestmark = pytest.mark.django_db

NAMES = ["acme.a", "acme.b", "acme.hb"]
RESOURCES = ["acme.r.1", "acme.r.2"]


class _Rollback(Exception):
    pass


@st.composite
def event_triggers(draw):
    posture = draw(st.sampled_from(["Reactive", "Proactive"]))
    expect = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True))
    trigger = {
        "type": "event",
        "posture": posture,
        "expect": expect,
        "after": draw(st.sampled_from([[], [], *([n] for n in NAMES)])),
        "for_each": draw(st.sampled_from([[], ["prefect.resource.id"]])),
        "threshold": draw(st.integers(1, 3)),
        "match": {"prefect.resource.id": draw(st.sampled_from(["acme.r.*", "acme.r.1"]))},
    }
    if posture == "Reactive":
        trigger["within"] = draw(st.sampled_from([0, 10, 30]))
    else:
        trigger["within"] = draw(st.sampled_from([10, 20, 35]))
    return trigger


@st.composite
def triggers(draw):
    kind = draw(st.sampled_from(["event", "event", "compound", "sequence"]))
    if kind == "event":
        return draw(event_triggers())
    children = draw(st.lists(event_triggers(), min_size=2, max_size=3))
    within = draw(st.sampled_from([None, 30, 90]))
    if kind == "sequence":
        return {"type": "sequence", "triggers": children, "within": within}
    require = draw(st.sampled_from(["any", "all", 1]))
    return {"type": "compound", "require": require, "triggers": children, "within": within}


@st.composite
def streams(draw):
    """(second, [event data], toggle) moments: events stored together, maybe a pause/resume."""
    moments = []
    t = 1  # after the second the engine starts in (its cursor is the end of the log then)
    ids: list[uuid.UUID] = []
    for _ in range(draw(st.integers(0, 14))):
        t += draw(st.sampled_from([0, 1, 3, 5, 7, 12, 25]))
        batch = []
        for _ in range(draw(st.integers(1, 2))):
            event_id = uuid.uuid4()
            follows = None
            if ids and draw(st.booleans()) and draw(st.booleans()):
                follows = draw(st.sampled_from(ids))
            batch.append(
                {
                    "name": draw(st.sampled_from(NAMES)),
                    "resource": draw(st.sampled_from(RESOURCES)),
                    "late": draw(st.sampled_from([0, 0, 0, 2, 15, 40])),
                    "id": event_id,
                    "follows": follows,
                }
            )
            ids.append(event_id)
        # (a pause in the very second of creation would have no defined order with it)
        toggle = t > 0 and draw(st.sampled_from([False] * 8 + [True]))
        moments.append((t, batch, toggle))
    if any(m[1] for m in moments) and draw(st.booleans()):
        # a follower stored before its leader: it waits for it
        (t0, first, toggle0), *rest = moments
        leader = uuid.uuid4()
        first[0]["follows"] = leader
        late_at = t0 + draw(st.sampled_from([1, 6, 20]))
        name = draw(st.sampled_from(NAMES))
        leader_event = {"name": name, "resource": RESOURCES[0], "late": 0, "id": leader}
        moments = [
            (t0, first, toggle0),
            *rest,
            (late_at, [leader_event | {"follows": None}], False),
        ]
    # One batch a second: two commits in the same clock second have no defined read order.
    merged: dict[int, tuple[list, bool]] = {}
    for at, batch, toggle in moments:
        events, toggled = merged.get(at, ([], False))
        merged[at] = (events + batch, toggled or toggle)
    return [(at, batch, toggle) for at, (batch, toggle) in sorted(merged.items())]


def _engine_firings(automation, moments, traveller) -> tuple[list[tuple], int]:
    # Its own cursor row: the session's live server runs an engine on the default one, and its
    # commits (a version, a cursor of another test's events) are visible to this transaction.
    engine = Engine(name="simulation")
    engine.load()
    end = (moments[-1][0] if moments else 0) + 80
    pending = list(moments)
    for second in range(0, end + 1, int(django_settings.EVENTSITE_ENGINE_TICK.total_seconds())):
        while pending and pending[0][0] <= second:
            at, batch, toggle = pending.pop(0)
            traveller.move_to(NOW + timedelta(seconds=at))
            if toggle:
                changes.set_enabled(automation, not automation.enabled)
            items = [
                event_data(
                    e["name"],
                    e["resource"],
                    occurred=NOW + timedelta(seconds=at - e["late"]),
                    id=e["id"],
                    follows=e["follows"],
                )
                for e in batch
            ]
            store(*items)
            engine.step()
        traveller.move_to(NOW + timedelta(seconds=second))
        engine.step()
        engine.tick()
    rows = Firing.objects.filter(automation=automation, is_test=False)
    keys = [_key(f.triggered, f.triggering_labels, f.triggering_event_id, f.state) for f in rows]
    return keys, end


def _key(triggered, labels, event_id, state) -> tuple:
    return (triggered, tuple(sorted(labels.items())), str(event_id) if event_id else "", state)


def _beat(name: str, resource: str) -> dict:
    return {"name": name, "resource": resource, "late": 0, "id": uuid.uuid4(), "follows": None}


# A key that goes silent and comes back, another that keeps going: Triggered, then Resolved.
SILENT_AND_BACK = (
    {
        "type": "event",
        "posture": "Proactive",
        "expect": ["acme.hb"],
        "for_each": ["prefect.resource.id"],
        "match": {"prefect.resource.id": "acme.r.*"},
        "within": 10,
    },
    [
        (1, [_beat("acme.hb", "acme.r.1"), _beat("acme.hb", "acme.r.2")], False),
        (13, [_beat("acme.hb", "acme.r.2")], False),
        (25, [_beat("acme.hb", "acme.r.2")], False),
        (50, [_beat("acme.hb", "acme.r.1"), _beat("acme.hb", "acme.r.2")], False),
    ],
)


# Derandomized (the same 60 examples every run) and printing a failing example's blob: twice
# (stops 24 and 25) one random example in CI's PostgreSQL stage made the engine fire a proactive
# window 5 or 20 s after the replay (09:00:35 / 09:00:30; 09:01:25 / 09:01:05), and the example
# was lost; 6,000 random examples on PostgreSQL did not find it again. A failure now repeats, and
# `@reproduce_failure` replays it (issue 14's note).
@settings(
    max_examples=60,
    derandomize=True,
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# The stored log is read in pages: pages of one or two events put leaders and followers, windows
# and ticks across page ends.
@given(trigger=triggers(), moments=streams(), page=st.sampled_from([1, 2, explain.READ_PAGE]))
@example(trigger=SILENT_AND_BACK[0], moments=SILENT_AND_BACK[1], page=2)
def test_the_replay_of_the_stored_log_makes_the_engines_firings(trigger, moments, page):
    try:
        with transaction.atomic(), time_machine.travel(NOW, tick=False) as traveller:
            automation = changes.create(
                id=uuid.uuid4(),
                owner=None,
                name="replayed",
                trigger=parse_trigger(trigger).to_json(),
                actions=[{"type": "do-nothing"}],
            )
            engine_fired, end = _engine_firings(automation, moments, traveller)
            automation.refresh_from_db()
            found = explain.replay_stored(
                parse_trigger(automation.trigger),
                since=NOW,
                until=NOW + timedelta(seconds=end),
                automation=automation,
                page=page,
            )
            replayed = [
                _key(
                    f.triggered,
                    f.triggering_labels,
                    f.triggering_event.id if f.triggering_event else None,
                    f.state,
                )
                for f in found.replay.firings
            ]
            assert sorted(replayed) == sorted(engine_fired)
            note_case(f"states: {sorted({k[3] for k in engine_fired})}")
            if trigger is SILENT_AND_BACK[0]:
                assert [k[3] for k in sorted(engine_fired)].count("Resolved") >= 1
            raise _Rollback
    except _Rollback:
        pass
