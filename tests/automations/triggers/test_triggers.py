"""Pure trigger semantics, rule by rule (reference §5.2–5.3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from automations.triggers import (
    FOLLOWER_WAIT,
    Bucket,
    Ordering,
    TriggerInvalid,
    explain,
    parse_trigger,
    replay,
)
from tests.automations.helpers import T0, at, ev, evaluator, event_trigger, rel

# --- parsing and validation ----------------------------------------------------------------------


def test_parse_accepts_the_trigger_the_prefect_client_sends():
    trigger = parse_trigger(
        {
            "type": "event",
            "match": {"prefect.resource.id": "my.res.*"},
            "match_related": {},
            "after": [],
            "expect": ["my.trigger.test"],
            "for_each": [],
            "posture": "Reactive",
            "threshold": 1,
            "within": 0.0,
        }
    )
    data = trigger.to_json()
    assert data["type"] == "event"
    assert data["within"] == 0.0
    assert data["expect"] == ["my.trigger.test"]
    assert uuid.UUID(data["id"])


def test_parse_refuses_unknown_keys_with_the_field_named():
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger(event_trigger(expects=["x"]))
    assert exc.value.errors == [
        {"field": "trigger.expects", "message": "Extra inputs are not permitted"}
    ]


def test_parse_refuses_proactive_within_under_ten_seconds():
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger(event_trigger(posture="Proactive", within=5))
    assert exc.value.errors[0]["field"] == "trigger.within"
    assert "10 seconds" in exc.value.errors[0]["message"]


@pytest.mark.parametrize("within", [0, 0.0, "PT0S"])
def test_parse_turns_proactive_within_zero_into_ten_seconds(within):
    assert parse_trigger(event_trigger(posture="Proactive", within=within)).within == timedelta(
        seconds=10
    )


def test_parse_gives_a_proactive_trigger_without_within_ten_seconds():
    assert parse_trigger(event_trigger(posture="Proactive")).within == timedelta(seconds=10)


def test_parse_accepts_iso_durations_and_serialises_seconds():
    trigger = parse_trigger(event_trigger(within="PT1M30S"))
    assert trigger.within == timedelta(seconds=90)
    assert trigger.to_json()["within"] == 90.0


def test_parse_refuses_null_and_negative_within():
    for within in (None, -1):
        with pytest.raises(TriggerInvalid) as exc:
            parse_trigger(event_trigger(within=within))
        assert exc.value.errors[0]["field"] == "trigger.within"


def test_parse_requires_posture():
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger({"type": "event"})
    assert exc.value.errors[0]["field"] == "trigger.posture"


def test_parse_refuses_metric_triggers_as_cloud_only():
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger({"type": "metric", "metric": {}})
    assert "Prefect Cloud" in exc.value.errors[0]["message"]


@pytest.mark.parametrize("require", [0, 3, -1])
def test_parse_refuses_compound_require_out_of_range(require):
    children = [event_trigger(expect=["a"]), event_trigger(expect=["b"])]
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger({"type": "compound", "require": require, "triggers": children})
    assert exc.value.errors[0]["field"] == "trigger.require"


@pytest.mark.parametrize("require", ["any", "all", 1, 2])
def test_parse_accepts_compound_require_in_range(require):
    children = [event_trigger(expect=["a"]), event_trigger(expect=["b"])]
    parse_trigger({"type": "compound", "require": require, "triggers": children})


def test_parse_names_errors_inside_nested_triggers():
    with pytest.raises(TriggerInvalid) as exc:
        parse_trigger(
            {
                "type": "sequence",
                "triggers": [event_trigger(), {"type": "event", "posture": "Sideways"}],
            }
        )
    assert exc.value.errors[0]["field"] == "trigger.triggers.1.posture"


def test_parse_refuses_a_non_object():
    with pytest.raises(TriggerInvalid):
        parse_trigger(["event"])


def test_reset_ids_renews_every_nested_trigger_id():
    trigger = parse_trigger(
        {"type": "compound", "require": "any", "triggers": [event_trigger(), event_trigger()]}
    )
    before = {t.id for t in trigger.all_triggers()}
    trigger.reset_ids()
    after = {t.id for t in trigger.all_triggers()}
    assert len(after) == 3 and not before & after


# --- what an event trigger looks at --------------------------------------------------------------


def test_match_uses_label_globs_and_a_missing_label_never_matches():
    trigger = parse_trigger(
        event_trigger(match={"prefect.resource.id": "acme.*", "color": ["blue*", "!red"]})
    )
    assert trigger.covers(ev(resource_id="acme.1", labels={"color": "blue-ish"}))
    assert trigger.covers(ev(resource_id="acme.1", labels={"color": "green"}))  # !red
    assert not trigger.covers(ev(resource_id="other.1", labels={"color": "blue"}))
    assert not trigger.covers(ev(resource_id="acme.1"))  # color missing, even for !red


def test_empty_match_and_match_related_match_everything_even_without_related():
    trigger = parse_trigger(event_trigger())
    assert trigger.covers(ev())


def test_match_related_object_needs_one_related_resource_satisfying_every_label():
    trigger = parse_trigger(
        event_trigger(match_related={"prefect.resource.role": "flow", "prefect.resource.id": "f.1"})
    )
    assert trigger.covers(ev(related=[rel("f.1", "flow")]))
    # role and id satisfied by two different resources: no match
    assert not trigger.covers(ev(related=[rel("f.1", "tag"), rel("f.2", "flow")]))
    assert not trigger.covers(ev())


def test_match_related_list_is_anded_each_by_any_related_resource():
    trigger = parse_trigger(
        event_trigger(
            match_related=[{"prefect.resource.role": "flow"}, {"prefect.resource.id": "tag.*"}]
        )
    )
    assert trigger.covers(ev(related=[rel("f.1", "flow"), rel("tag.x", "tag")]))
    assert not trigger.covers(ev(related=[rel("f.1", "flow")]))


def test_expect_and_after_are_globs_without_negation_and_empty_expect_is_any_event():
    trigger = parse_trigger(event_trigger(expect=["acme.order.*"]))
    assert trigger.covers(ev("acme.order.created"))
    assert not trigger.covers(ev("acme.payment.made"))
    gated = parse_trigger(event_trigger(after=["a.start"], expect=["a.done"]))
    assert gated.covers(ev("a.start")) and gated.covers(ev("a.done"))
    assert not gated.covers(ev("a.other"))
    assert parse_trigger(event_trigger()).covers(ev("anything.at.all"))
    negated = parse_trigger(event_trigger(expect=["!acme.*"]))
    assert not negated.covers(ev("other.thing"))


def test_for_each_key_is_sorted_labels_with_related_roles_and_missing_as_empty():
    trigger = parse_trigger(
        event_trigger(for_each=["zone", "related:flow:prefect.resource.id", "absent"])
    )
    event = ev(labels={"zone": "eu"}, related=[rel("f.2", "tag"), rel("f.1", "flow")])
    key = trigger.bucketing_key(event)
    assert key == ("", "f.1", "eu")
    assert trigger.labels_for(key) == {
        "absent": "",
        "related:flow:prefect.resource.id": "f.1",
        "zone": "eu",
    }


def test_log_write_events_are_never_evaluated():
    e = evaluator(event_trigger())
    assert e.on_event(ev("prefect.log.write"), clock=at(0)) == []
    assert e.on_event(ev("something.else"), clock=at(0)) != []


# --- reactive ------------------------------------------------------------------------------------


def test_worked_example_threshold_two_within_thirty_for_each_fires_once_for_r1():
    e = evaluator(
        event_trigger(expect=["x"], threshold=2, within=30, for_each=["prefect.resource.id"])
    )
    fired = []
    for i, rid in enumerate(["r1", "r1", "r1", "r2", "r1"]):
        fired += e.on_event(ev("x", rid, t=i), clock=at(i))
    assert len(fired) == 1
    assert fired[0].triggering_labels == {"prefect.resource.id": "r1"}
    assert fired[0].triggering_event.resource_id == "r1"
    assert fired[0].triggering_event.occurred == at(1)


def test_within_zero_threshold_one_fires_on_every_matching_event():
    e = evaluator(event_trigger(expect=["x"]))
    fired = [f for t in range(5) for f in e.on_event(ev("x", t=t * 1000), clock=at(t * 1000))]
    assert len(fired) == 5


def test_within_zero_counts_every_event_regardless_of_time():
    e = evaluator(event_trigger(expect=["x"], threshold=2))
    times = [0, 5000, 10000, 20000]  # hours apart
    fired = [len(e.on_event(ev("x", t=t), clock=at(t))) for t in times]
    assert fired == [0, 1, 0, 1]


def test_reactive_debounce_ignores_events_until_the_window_ends():
    e = evaluator(event_trigger(expect=["x"], within=60))
    assert len(e.on_event(ev("x", t=0), clock=at(0))) == 1
    assert e.on_event(ev("x", t=10), clock=at(10)) == []  # inside the debounce window
    assert e.on_event(ev("x", t=59), clock=at(59)) == []
    assert len(e.on_event(ev("x", t=61), clock=at(61))) == 1


def test_an_event_after_the_window_opens_a_fresh_one_and_counts_in_it():
    e = evaluator(event_trigger(expect=["x"], threshold=2, within=30))
    assert e.on_event(ev("x", t=0), clock=at(0)) == []
    assert e.on_event(ev("x", t=100), clock=at(100)) == []  # first window expired with 1
    assert len(e.on_event(ev("x", t=110), clock=at(110))) == 1
    bucket = e.state.bucket(e.event_triggers[0].id, ())
    assert bucket.start == at(130)  # the window after the firing starts where this one ended


def test_the_first_window_looks_back_fifteen_minutes_for_out_of_order_events():
    e = evaluator(event_trigger(expect=["x"], threshold=2, within=30))
    assert e.on_event(ev("x", t=0), clock=at(0)) == []
    bucket = e.state.bucket(e.event_triggers[0].id, ())
    assert bucket.start == T0 - timedelta(minutes=15) and bucket.end == at(30)
    assert e.on_event(ev("x", t=-20 * 60), clock=at(1)) == []  # older than the lookback
    assert len(e.on_event(ev("x", t=-10 * 60), clock=at(2))) == 1  # inside it


def test_an_unmatched_event_changes_no_state():
    e = evaluator(event_trigger(expect=["x"], match={"prefect.resource.id": "a.*"}))
    assert e.on_event(ev("x", "b.1"), clock=at(0)) == []
    assert e.on_event(ev("y", "a.1"), clock=at(0)) == []
    assert e.state.buckets == {} and e.state.dirty_buckets == set()


def test_firings_are_stamped_with_the_clock_and_carry_the_bucket_key():
    e = evaluator(event_trigger(expect=["x"], for_each=["zone"]))
    (firing,) = e.on_event(ev("x", labels={"zone": "eu"}, t=0), clock=at(7))
    assert firing.triggered == at(7)
    assert firing.bucket_key == ("eu",)


def test_reactive_after_opens_a_window_in_which_expected_events_count():
    e = evaluator(
        event_trigger(after=["a"], expect=["b"], within=60, for_each=["prefect.resource.id"])
    )
    assert e.on_event(ev("b", "r1", t=0), clock=at(0)) == []  # no window open yet
    assert e.on_event(ev("a", "r1", t=1), clock=at(1)) == []
    assert e.on_event(ev("b", "r2", t=2), clock=at(2)) == []  # other key
    (firing,) = e.on_event(ev("b", "r1", t=3), clock=at(3))
    assert firing.triggering_labels == {"prefect.resource.id": "r1"}
    # the window is gone once finished: nothing until the next `a`
    assert e.on_event(ev("b", "r1", t=4), clock=at(4)) == []
    assert e.state.bucket(e.event_triggers[0].id, ("r1",)) is None


def test_reactive_after_window_that_expired_does_not_count_late_expected_events():
    e = evaluator(event_trigger(after=["a"], expect=["b"], within=10))
    e.on_event(ev("a", t=0), clock=at(0))
    assert e.on_event(ev("b", t=20), clock=at(20)) == []
    assert e.state.buckets == {}


def test_reactive_same_event_in_after_and_expect_never_reacts_to_the_first_one():
    e = evaluator(event_trigger(after=["hb"], expect=["hb"], threshold=1, within=60))
    assert e.on_event(ev("hb", t=0), clock=at(0)) == []
    assert len(e.on_event(ev("hb", t=5), clock=at(5))) == 1


# --- proactive -----------------------------------------------------------------------------------


def test_proactive_without_events_notifies_once_and_resolves_when_events_return():
    # Prefect's OSS server fires every window (10, 20, … 60); like Prefect Cloud, one outage
    # notifies once and resolves at the first expected event.
    e = evaluator(event_trigger(posture="Proactive", expect=["x"], within=10))
    firings = []
    for t in range(0, 61, 5):  # the engine's 5 s clock tick
        for f in e.on_tick(at(t)):
            firings.append((t, f))
    assert [(t, f.state) for t, f in firings] == [(10, "Triggered")]
    assert firings[0][1].triggering_event is None
    back = ev("x", t=62)
    (resolved,) = e.on_event(back, clock=at(63))
    assert (resolved.state, resolved.triggered, resolved.triggering_event) == (
        "Resolved",
        at(63),
        back,
    )
    assert e.state.outages == {}
    assert e.on_event(ev("x", t=64), clock=at(64)) == []  # resolved once


def test_proactive_reactive_posture_never_resolves():
    e = evaluator(event_trigger(expect=["x"], threshold=1))
    assert [f.state for f in e.on_event(ev("x", t=0), clock=at(0))] == ["Triggered"]
    assert [f.state for f in e.on_event(ev("x", t=1), clock=at(1))] == ["Triggered"]
    assert e.state.outages == {}


def test_proactive_does_not_fire_while_events_keep_arriving():
    e = evaluator(event_trigger(posture="Proactive", expect=["x"], within=10))
    fired = []
    for t in range(0, 61, 5):
        fired += e.on_event(ev("x", t=t), clock=at(t))
        fired += e.on_tick(at(t))
    assert fired == []


def test_proactive_fires_once_a_window_ends_under_threshold_with_the_last_event():
    e = evaluator(event_trigger(posture="Proactive", expect=["x"], within=10, threshold=2))
    assert e.on_tick(at(0)) == []
    last = ev("x", t=3)
    e.on_event(last, clock=at(3))
    (firing,) = e.on_tick(at(10))
    assert firing.triggering_event.id == last.id


def test_proactive_for_each_only_watches_keys_after_their_first_event_and_notifies_once():
    e = evaluator(
        event_trigger(
            posture="Proactive",
            expect=["x"],
            within=10,
            threshold=2,
            for_each=["prefect.resource.id"],
        )
    )
    assert e.on_tick(at(0)) == []
    e.on_event(ev("x", "r1", t=1), clock=at(1))
    fired = []
    for t in range(5, 40, 5):
        fired += [(t, f) for f in e.on_tick(at(t))]
    assert [t for t, _ in fired] == [15]  # then in an outage until r1's events return
    assert {f.triggering_labels["prefect.resource.id"] for _, f in fired} == {"r1"}


def test_proactive_for_each_key_that_goes_silent_fires_once_and_resolves_when_it_returns():
    # Prefect drops a key's window once it met the threshold, so a key that goes silent never
    # fires; here its windows roll on, and a silent key fires once.
    e = evaluator(
        event_trigger(
            posture="Proactive", expect=["x"], within=10, for_each=["prefect.resource.id"]
        )
    )
    e.on_event(ev("x", "r1", t=1), clock=at(1))
    e.on_event(ev("x", "r2", t=1), clock=at(1))
    fired = []
    for t in range(5, 60, 5):
        fired += e.on_event(ev("x", "r2", t=t), clock=at(t))  # r2 keeps reporting
        fired += [(t, f) for f in e.on_tick(at(t))]
    assert [(t, f.state, f.triggering_labels) for t, f in fired] == [
        (25, "Triggered", {"prefect.resource.id": "r1"})
    ]
    assert e.state.bucket(fired[0][1].trigger.id, ("r1",)) is None  # no windows while out
    (resolved,) = e.on_event(ev("x", "r1", t=70), clock=at(70))
    assert (resolved.state, resolved.triggering_labels) == (
        "Resolved",
        {"prefect.resource.id": "r1"},
    )
    silent = {
        (t, f.triggering_labels["prefect.resource.id"])
        for t in range(75, 100, 5)
        for f in e.on_tick(at(t))
    }
    assert silent == {(85, "r2"), (90, "r1")}  # r2 silent after 55, r1 again after 70


def test_proactive_heartbeat_resolves_at_the_next_heartbeat():
    e = evaluator(
        event_trigger(
            posture="Proactive",
            after=["hb"],
            expect=["hb"],
            within=10,
            for_each=["prefect.resource.id"],
        )
    )
    e.on_event(ev("hb", "w1", t=0), clock=at(0))
    fired = [f for t in range(5, 60, 5) for f in e.on_tick(at(t))]
    assert [(f.state, f.triggered) for f in fired] == [("Triggered", at(10))]
    (resolved,) = e.on_event(ev("hb", "w1", t=61), clock=at(61))
    assert resolved.state == "Resolved" and resolved.bucket_key == ("w1",)
    assert [f.triggered for t in range(65, 80, 5) for f in e.on_tick(at(t))] == [at(75)]


def test_proactive_after_expect_fires_when_the_expected_event_never_comes():
    e = evaluator(
        event_trigger(
            posture="Proactive",
            after=["a"],
            expect=["b"],
            within=10,
            for_each=["prefect.resource.id"],
        )
    )
    e.on_event(ev("a", "r1", t=0), clock=at(0))
    e.on_event(ev("a", "r2", t=0), clock=at(0))
    e.on_event(ev("b", "r2", t=4), clock=at(4))
    fired = []
    for t in range(5, 31, 5):
        fired += e.on_tick(at(t))
    assert [f.triggering_labels for f in fired] == [{"prefect.resource.id": "r1"}]
    assert fired[0].triggering_event.event == "a"
    # the window is deleted once finished; nothing more until the next `a`
    assert e.on_tick(at(60)) == []


def test_proactive_heartbeat_fires_only_when_no_further_event_arrives_within_the_window():
    e = evaluator(event_trigger(posture="Proactive", after=["hb"], expect=["hb"], within=10))
    fired = []
    for t in (0, 8, 16, 24):  # steady heartbeats, each restarting the window
        fired += e.on_event(ev("hb", t=t), clock=at(t))
        fired += e.on_tick(at(t))
    for t in range(25, 34):
        fired += e.on_tick(at(t))
    assert fired == []
    (firing,) = e.on_tick(at(35))  # 24 + 10 passed without a heartbeat
    assert firing.triggering_event.occurred == at(24)


def test_proactive_held_expect_event_counts_in_a_window_that_opens_later():
    e = evaluator(
        event_trigger(
            posture="Proactive",
            after=["a"],
            expect=["b"],
            within=10,
            for_each=["prefect.resource.id"],
        )
    )
    # `b` is evaluated before the `a` that opens its window, though it occurred after it
    e.on_event(ev("b", t=3), clock=at(3))
    e.on_event(ev("a", t=1), clock=at(4))
    fired = []
    for t in range(5, 31, 5):
        fired += e.on_tick(at(t))
    assert fired == []
    # a held event is counted once: evaluating it again does not count it twice
    again = evaluator(
        event_trigger(
            posture="Proactive", after=["a"], expect=["b"], within=10, threshold=2, for_each=["x"]
        )
    )
    b = ev("b", t=3)
    again.on_event(ev("a", t=1), clock=at(1))
    again.on_event(b, clock=at(3))
    again.on_event(b, clock=at(3))
    assert len([f for t in range(5, 31, 5) for f in again.on_tick(at(t))]) == 1


def test_proactive_after_without_for_each_also_keeps_a_periodic_window_like_prefect():
    # Prefect's proactive evaluation opens the key-less window on every tick, `after` or not.
    e = evaluator(event_trigger(posture="Proactive", after=["a"], expect=["b"], within=10))
    fired = [t for t in range(0, 31, 5) for _ in e.on_tick(at(t))]
    assert fired == [10]  # the window opened at 20 would fire at 30: the same outage


def test_sweep_deletes_buckets_that_ended_more_than_a_minute_ago():
    e = evaluator(event_trigger(expect=["x"], threshold=5, within=10))
    e.on_event(ev("x", t=0), clock=at(0))
    e.sweep(at(30))
    assert len(e.state.buckets) == 1
    e.sweep(at(71))
    assert e.state.buckets == {}


# --- composite -----------------------------------------------------------------------------------


def _compound(require, within=None, kind="compound"):
    trigger = {
        "type": kind,
        "triggers": [
            event_trigger(expect=["a"]),
            event_trigger(expect=["b"]),
            event_trigger(expect=["c"]),
        ],
        "within": within,
    }
    if kind == "compound":
        trigger["require"] = require
    return trigger


def test_compound_any_fires_on_the_first_child_firing():
    e = evaluator(_compound("any"))
    (firing,) = e.on_event(ev("b"), clock=at(0))
    assert firing.trigger.type == "compound"
    assert [f.trigger.type for f in firing.all_firings()] == ["compound", "event"]


def test_compound_all_fires_once_every_child_fired_and_then_starts_over():
    e = evaluator(_compound("all"))
    assert e.on_event(ev("a", t=0), clock=at(0)) == []
    assert e.on_event(ev("a", t=1), clock=at(1)) == []  # latest replaces the earlier one
    assert e.on_event(ev("b", t=2), clock=at(2)) == []
    (firing,) = e.on_event(ev("c", t=3), clock=at(3))
    assert firing.triggering_event.event == "c"
    assert sorted(x.event for x in firing.all_events()) == ["a", "b", "c", "c"]
    assert e.on_event(ev("a", t=4), clock=at(4)) == []  # child firings were cleared


def test_compound_require_n_fires_at_n_distinct_children():
    e = evaluator(_compound(2))
    assert e.on_event(ev("a"), clock=at(0)) == []
    assert e.on_event(ev("a"), clock=at(1)) == []
    assert len(e.on_event(ev("c"), clock=at(2))) == 1


def test_compound_within_discards_child_firings_that_are_too_old():
    e = evaluator(_compound("all", within=10))
    e.on_event(ev("a", t=0), clock=at(0))
    e.on_event(ev("b", t=1), clock=at(1))
    assert e.on_event(ev("c", t=20), clock=at(20)) == []  # a and b are 19+ s old
    e.on_event(ev("a", t=21), clock=at(21))
    assert len(e.on_event(ev("b", t=22), clock=at(22))) == 1


def test_sequence_fires_only_when_children_fired_in_order():
    e = evaluator(_compound(None, kind="sequence"))
    e.on_event(ev("b", t=0), clock=at(0))
    e.on_event(ev("a", t=1), clock=at(1))
    assert e.on_event(ev("c", t=2), clock=at(2)) == []  # b came before a
    e.on_event(ev("b", t=3), clock=at(3))  # now a(1) < b(3) < c(2)? no: c is older than b
    assert e.on_event(ev("c", t=4), clock=at(4)) != []


def test_nested_composite_triggers_fire_through_their_parents():
    trigger = {
        "type": "compound",
        "require": "all",
        "triggers": [
            {
                "type": "sequence",
                "triggers": [event_trigger(expect=["a"]), event_trigger(expect=["b"])],
            },
            event_trigger(expect=["c"]),
        ],
    }
    e = evaluator(trigger)
    assert e.on_event(ev("c", t=0), clock=at(0)) == []
    assert e.on_event(ev("a", t=1), clock=at(1)) == []
    (firing,) = e.on_event(ev("b", t=2), clock=at(2))
    assert [f.trigger.type for f in firing.all_firings()] == [
        "compound",
        "event",
        "sequence",
        "event",
        "event",
    ]


def test_firing_json_round_trips_with_the_composite_tree():
    e = evaluator(_compound("any"))
    (firing,) = e.on_event(ev("a"), clock=at(0))
    from automations.triggers import Firing

    again = Firing.from_json(firing.to_json(), e.triggers)
    assert again.to_json() == firing.to_json()


# --- the state the engine persists ---------------------------------------------------------------


def test_evaluator_marks_changed_buckets_dirty_and_forgets_removed_triggers():
    e = evaluator(event_trigger(expect=["x"], threshold=3, within=60))
    e.on_event(ev("x"), clock=at(0))
    assert len(e.state.dirty_buckets) == 1
    state = e.state
    state.clean()
    from automations.triggers import Evaluator

    Evaluator([], state)  # the automation is gone
    assert state.buckets == {} and len(state.dirty_buckets) == 1


def test_multiple_automations_evaluate_independently():
    e = evaluator(
        event_trigger(expect=["x"]), event_trigger(expect=["x.*"]), event_trigger(expect=["y"])
    )
    assert len(e.on_event(ev("x"), clock=at(0))) == 1
    assert len(e.on_event(ev("x.1"), clock=at(0))) == 1
    assert len(e.on_event(ev("y"), clock=at(0))) == 1


# --- follows -------------------------------------------------------------------------------------


def test_a_follower_waits_for_its_leader_and_is_released_after_it():
    ordering = Ordering()
    seen: set[uuid.UUID] = set()
    leader = ev("lead", t=0)
    follower = ev("follow", t=1, follows=leader.id, received=at(1))
    assert ordering.admit(follower, at(1), seen.__contains__) == []
    released = ordering.admit(leader, at(2), seen.__contains__)
    assert [e.event for e in released] == ["lead", "follow"]


def test_a_follower_of_a_seen_leader_or_of_itself_goes_at_once():
    ordering = Ordering()
    leader = ev("lead")
    assert ordering.admit(ev(follows=leader.id), at(0), {leader.id}.__contains__) != []
    me = uuid.uuid4()
    assert ordering.admit(ev(id=me, follows=me), at(0), set().__contains__) != []


def test_a_follower_received_long_ago_goes_at_once_and_lost_ones_are_released():
    ordering = Ordering()
    old = ev(follows=uuid.uuid4(), received=at(0))
    assert ordering.admit(old, at(0) + FOLLOWER_WAIT, set().__contains__) == [old]
    waiting = ev(follows=uuid.uuid4(), received=at(0))
    assert ordering.admit(waiting, at(1), set().__contains__) == []
    assert ordering.lost(at(60)) == []
    assert ordering.lost(at(0) + FOLLOWER_WAIT) == [waiting]


# --- explain and preview -------------------------------------------------------------------------


def test_explain_reports_each_clause_with_the_compared_value():
    trigger = parse_trigger(
        event_trigger(
            match={"prefect.resource.id": "acme.*"},
            match_related={"prefect.resource.role": "flow"},
            expect=["x.*"],
            for_each=["zone"],
        )
    )
    clauses = {c.name: c for c in explain(trigger, ev("y", "acme.1", labels={"zone": "eu"}))}
    assert clauses["match prefect.resource.id"].passed is True
    assert clauses["match prefect.resource.id"].actual == "'acme.1'"
    assert clauses["match_related"].passed is False
    assert clauses["match_related"].actual == "(no related resources)"
    assert clauses["expect"].passed is False and clauses["expect"].actual == "'y'"
    assert clauses["for_each"].actual == "zone='eu'"


def test_explain_shows_the_bucket_window_when_given():
    trigger = parse_trigger(event_trigger(expect=["x"], within=30, threshold=2))
    bucket = Bucket(trigger.id, (), at(100), at(130), 1)
    clauses = {c.name: c for c in explain(trigger, ev("x", t=50), bucket=bucket)}
    assert clauses["window"].passed is False
    assert "bucket count 1" in clauses["window"].note


def test_replay_counts_reactive_and_proactive_firings_over_stored_events():
    events = [ev("x", "r1", t=i) for i in range(5)]
    reactive = parse_trigger(event_trigger(expect=["x"], within=60))
    assert len(replay(reactive, events, since=at(-10), until=at(100)).firings) == 1
    proactive = parse_trigger(event_trigger(posture="Proactive", expect=["x"], within=10))
    fired = replay(proactive, events, since=at(0), until=at(60)).firings
    # the tick at 0 drops the window the event at 0 filled and runs again at 10, when it drops
    # the one events 1..4 filled; the window opened at 20 stays empty: one outage from 30 on
    assert [f.triggered for f in fired] == [at(30)]


def test_replay_reads_in_received_order_with_the_clock_at_reading():
    late = ev("x", "r1", t=0, received=at(50))
    trigger = parse_trigger(event_trigger(expect=["x"]))
    (firing,) = replay(trigger, [late], since=at(0), until=at(60)).firings
    assert firing.triggered == at(50)  # the engine stamps the time it read the event


def test_replay_has_no_trigger_state_while_the_automation_is_paused():
    events = [ev("x", "r1", t=t) for t in (10, 20, 30)]
    trigger = parse_trigger(event_trigger(expect=["x"], threshold=2, within=60))
    assert len(replay(trigger, events, since=at(0), until=at(60)).firings) == 1
    paused = replay(
        trigger, events, since=at(0), until=at(60), changes=[(at(15), False), (at(25), True)]
    )
    assert paused.firings == []  # 10 was forgotten at the pause, 20 came while paused
    assert paused.evaluated == 2


def test_replay_stamps_only_the_firings_between_since_and_until():
    proactive = parse_trigger(event_trigger(posture="Proactive", expect=["x"], within=10))
    fired = replay(proactive, [], since=at(0), until=at(50)).firings
    assert [f.triggered for f in fired] == [at(10)]
    # the outage opened at 10, before `since`: nothing new is stamped in [30, 50]
    assert replay(proactive, [], since=at(30), until=at(50), start=at(0)).firings == []
    back = [ev("x", t=32)]
    fired = replay(proactive, back, since=at(30), until=at(60), start=at(0)).firings
    assert [(f.state, f.triggered) for f in fired] == [("Resolved", at(32)), ("Triggered", at(60))]


def test_the_trigger_index_selects_exactly_the_triggers_that_cover_an_event():
    import random

    rng = random.Random(5)
    names = ["acme.order.created", "acme.order.paid", "acme.invoice.sent", "x"]
    pattern_pool = ["acme.order.*", "acme.*", "acme.order.created", "*.paid", "x", "a?me.*"]
    label_pool = ["acme.order.1*", "acme.order.12", "acme.*", "!acme.order.1*", "*1", "[ab]*", ""]
    triggers = []
    for _ in range(200):
        match = {}
        if rng.random() < 0.7:
            match["prefect.resource.id"] = rng.choice(
                [rng.choice(label_pool), [rng.choice(label_pool), rng.choice(label_pool)]]
            )
        if rng.random() < 0.3:
            match["zone"] = rng.choice(["eu", "eu*", "!us", "us"])
        triggers.append(
            event_trigger(expect=rng.sample(pattern_pool, rng.randrange(0, 3)), match=match)
        )
    e = evaluator(*triggers)
    for _ in range(300):
        event = ev(
            rng.choice(names),
            rng.choice(["acme.order.1", "acme.order.12", "acme.order.2", "b.1", "a1"]),
            labels={"zone": rng.choice(["eu", "us", "eu-west"])} if rng.random() < 0.7 else {},
        )
        expected = {t.id for t in e.event_triggers if t.covers(event)}
        assert {t.id for t in e.interested(event)} == expected
