"""EventFilter semantics (reference §4), checked on both evaluators: SQL and in memory."""

from datetime import UTC, datetime, timedelta

import pytest

from events import schema
from events.filters import EventFilter
from events.ingest import ingest
from events.labels import glob_matches
from events.models import Event
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db


def store(*events):
    result = ingest(list(events), source="test")
    assert result.ok, result.rejected
    return [e["id"] for e in events]


def found(filter_json: dict) -> list[str]:
    """Ids matching a filter, in order; asserts SQL and in-memory evaluation agree."""
    event_filter = EventFilter.model_validate(filter_json)
    in_sql = [str(e.id) for e in event_filter.ordered(Event.objects.all())]
    everything = [e.as_schema() for e in Event.objects.all()]
    in_memory = [str(e.id) for e in event_filter.evaluate(everything)]
    assert in_sql == in_memory
    return in_sql


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("blue*", True),
        ("*ish", True),
        ("b?ue-ish", True),
        ("!red", True),
        ("!blue*", False),
        ("red", False),
    ],
)
def test_label_glob_semantics_match_prefect(pattern, expected):
    (event_id,) = store(event_data(labels={"color": "blue-ish"}))

    assert (found({"resource": {"labels": {"color": pattern}}}) == [event_id]) is expected


def test_a_missing_label_never_matches_not_even_a_negation():
    store(event_data(labels={"color": "blue-ish"}))

    assert found({"resource": {"labels": {"size": "!x"}}}) == []


def test_an_empty_pattern_list_matches_nothing():
    store(event_data(labels={"color": "blue"}))

    assert found({"resource": {"labels": {"color": []}}}) == []


def test_patterns_for_one_label_are_ored_and_labels_are_anded():
    a, b, _ = store(
        event_data(labels={"color": "red", "size": "s"}),
        event_data(labels={"color": "blue", "size": "s"}),
        event_data(labels={"color": "green", "size": "s"}),
    )

    assert set(found({"resource": {"labels": {"color": ["red", "blue"], "size": "s"}}})) == {a, b}
    assert found({"resource": {"labels": {"color": ["red", "blue"], "size": "m"}}}) == []


def test_several_label_keys_with_globs_and_negations_all_hold_and_a_missing_key_fails():
    a, b, c, d = store(
        event_data(labels={"region": "us-east", "name": "Invoice 7", "tier": "gold"}),
        event_data(labels={"region": "us-east", "name": "Invoice 8", "tier": "gold"}),
        event_data(labels={"region": "us-east", "name": "Invoice 71"}),  # no tier
        event_data(labels={"region": "eu-west", "name": "Invoice 7", "tier": "silver"}),
    )

    assert found({"resource": {"labels": {"region": "us-*", "name": "Invoice 7*"}}}) in (
        [a, c],
        [c, a],
    )
    labels = {"region": "us-*", "name": "Invoice 7*", "tier": "!silver"}
    assert found({"resource": {"labels": labels}}) == [a]
    labels = {"region": "!eu-*", "name": ["!Invoice 8", "x"]}
    assert set(found({"resource": {"labels": labels}})) == {a, c}
    labels = {"tier": ["!gold", "!silver"], "name": "!Invoice 7"}
    assert found({"resource": {"labels": labels}}) == [b]


def test_a_resource_id_pattern_applies_to_the_id():
    a, _ = store(event_data(resource_id="prefect.flow-run.1"), event_data(resource_id="acme.x"))

    assert found({"resource": {"labels": {"prefect.resource.id": "prefect.flow-run.*"}}}) == [a]


def test_glob_is_case_sensitive_and_understands_brackets():
    assert glob_matches("Blue*", "Blue-ish")
    assert not glob_matches("blue*", "Blue-ish")
    assert glob_matches("b[lr]ue", "blue")
    assert not glob_matches("b[^l]ue", "blue")


def test_event_name_prefix_exclude_prefix_name_and_exclude_name():
    a, b, c, d = store(
        event_data("prefect.flow-run.Completed"),
        event_data("prefect.flow-run.Pending"),
        event_data("prefect.task-run.Completed"),
        event_data("Prefect.flow-run.Upper"),
    )

    assert set(found({"event": {"prefix": ["prefect.flow-run."]}})) == {a, b}
    assert set(
        found({"event": {"prefix": ["prefect."], "exclude_prefix": ["prefect.task-run."]}})
    ) == {a, b}
    assert found({"event": {"name": ["prefect.task-run.Completed"]}}) == [c]
    assert set(found({"event": {"exclude_name": ["prefect.flow-run.Pending"]}})) == {a, c, d}
    assert set(found({"event": {"prefix": [], "name": None}})) == {a, b, c, d}


def test_resource_id_and_id_prefix():
    a, b, _ = store(
        event_data(resource_id="acme.order.1"),
        event_data(resource_id="acme.order.2"),
        event_data(resource_id="x"),
    )

    assert found({"resource": {"id": ["acme.order.1"]}}) == [a]
    assert set(found({"resource": {"id_prefix": ["acme.order."]}})) == {a, b}


def test_one_related_resource_must_satisfy_every_criterion():
    mixed, same = store(
        event_data(
            related=[related("acme.customer.7", "customer"), related("acme.customer.8", "owner")]
        ),
        event_data(related=[related("acme.customer.8", "customer")]),
    )

    assert found({"related": {"id": ["acme.customer.8"], "role": ["customer"]}}) == [same]
    assert set(found({"related": {"role": ["customer"]}})) == {mixed, same}
    assert found({"related": {"resources_in_roles": [["acme.customer.8", "owner"]]}}) == [mixed]


def test_related_labels_match_on_the_same_related_resource_and_role_label_is_exact():
    a, _ = store(
        event_data(related=[related("t.1", "tag", **{"acme.env": "prod-eu"})]),
        event_data(
            related=[related("t.2", "tag"), related("t.3", "owner", **{"acme.env": "prod-eu"})]
        ),
    )

    assert found(
        {"related": {"labels": {"prefect.resource.role": "tag", "acme.env": "prod-*"}}}
    ) == [a]


def test_the_primary_resource_is_not_a_related_resource():
    store(event_data(resource_id="acme.order.1"))

    assert found({"related": {"id": ["acme.order.1"]}}) == []


def test_a_list_of_related_filters_is_anded_each_matched_by_any_related_resource():
    both, _ = store(
        event_data(related=[related("a", "customer"), related("b", "tag")]),
        event_data(related=[related("a", "customer")]),
    )

    assert found({"related": [{"role": ["customer"]}, {"role": ["tag"]}]}) == [both]


def test_any_resource_matches_the_primary_or_a_related_resource():
    primary, rel, _ = store(
        event_data(resource_id="prefect.tag.x"),
        event_data(related=[related("prefect.tag.y", "tag")]),
        event_data(),
    )

    assert set(found({"any_resource": {"id_prefix": ["prefect.tag."]}})) == {primary, rel}
    assert found({"any_resource": {"id": ["prefect.tag.y"]}}) == [rel]
    assert found(
        {"any_resource": [{"id_prefix": ["prefect.tag."]}, {"id": ["prefect.tag.x"]}]}
    ) == [primary]


def test_occurred_bounds_are_inclusive_and_future_events_are_excluded_by_default():
    at = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    edge, future = store(
        event_data(occurred=at), event_data(occurred=datetime.now(UTC) + timedelta(hours=1))
    )

    assert found({"occurred": {"since": at.isoformat(), "until": at.isoformat()}}) == [edge]
    assert found({}) == [edge]
    assert found({"occurred": {"until": (at + timedelta(days=3650)).isoformat()}}) == [future, edge]


def test_events_older_than_180_days_before_today_are_outside_the_default_window():
    store(event_data(ago=timedelta(days=200)))

    assert found({}) == []


def test_id_filter():
    a, _ = store(event_data(), event_data())

    assert found({"id": {"id": [a]}}) == [a]
    assert len(found({"id": {"id": []}})) == 2


def test_order_is_by_occurred_then_id():
    now = datetime.now(UTC) - timedelta(minutes=1)
    old, new = store(event_data(occurred=now - timedelta(seconds=5)), event_data(occurred=now))

    assert found({"order": "DESC"}) == [new, old]
    assert found({"order": "ASC"}) == [old, new]


def test_distinct_keeps_the_first_event_per_resource_in_the_requested_order():
    now = datetime.now(UTC) - timedelta(minutes=1)
    r1_old, r1_new, r2 = store(
        event_data(resource_id="r1", occurred=now - timedelta(seconds=9)),
        event_data(resource_id="r1", occurred=now - timedelta(seconds=1)),
        event_data(resource_id="r2", occurred=now - timedelta(seconds=5)),
    )

    assert found({"resource": {"distinct": True}}) == [r1_new, r2]
    assert found({"resource": {"distinct": True}, "order": "ASC"}) == [r1_old, r2]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gold", {"gold"}),
        ("GOLD", {"gold"}),
        ("-gold", {"silver", "both"}),
        ("+gold +silver", set()),
        ("gold silver", {"gold", "silver"}),
        ('"gold bar"', {"gold"}),
        ("!silver", {"gold", "both"}),
        ("   ", {"gold", "silver", "both"}),
        ("acme.metal", {"gold", "silver", "both"}),
    ],
)
def test_text_search_terms_any_excluded_and_required(query, expected):
    ids = dict(
        zip(
            ["gold", "silver", "both"],
            store(
                event_data("acme.metal", payload={"note": "a Gold bar"}),
                event_data("acme.metal", labels={"kind": "silver"}),
                event_data("acme.metal", related=[related("r", "x", note="bronze")]),
            ),
            strict=True,
        )
    )

    assert set(found({"text": {"query": query}})) == {ids[name] for name in expected}


def test_text_search_escapes_like_wildcards():
    a, _ = store(event_data(payload={"p": "100%_done"}), event_data(payload={"p": "100 done"}))

    assert found({"text": {"query": "100%_"}}) == [a]


def test_matches_accepts_an_event_rebuilt_from_its_wire_form():
    (event_id,) = store(event_data(labels={"color": "blue"}))
    wire = Event.objects.get(id=event_id).to_wire()

    assert EventFilter.model_validate({"resource": {"labels": {"color": "b*"}}}).matches(
        schema.Event.from_wire(wire)
    )


@pytest.mark.parametrize(
    "body",
    [
        {"filter": {"nope": 1}},
        {"filter": {"event": {"prefixes": ["a"]}}},
        {"filter": {"resource": {"labels": {"a": 1}}}},
        {"filter": {"occurred": {"since": "not a date"}}},
        {"filter": {"order": "SIDEWAYS"}},
        {"filter": {"text": {"query": "x" * 201}}},
        {"filter": {"id": {"id": ["nope"]}}},
        {"limit": 201},
        {"limit": -1},
        {"other": 1},
    ],
)
def test_invalid_filters_are_a_422_naming_the_field(api_client, body):
    response = api_client.post("/api/events/filter", body, format="json")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"]


def test_null_is_accepted_for_every_optional_filter_field(api_client):
    body = {
        "filter": {
            "occurred": None,
            "event": {"prefix": None, "exclude_prefix": None, "name": None, "exclude_name": None},
            "resource": None,
            "related": None,
            "any_resource": None,
            "id": None,
            "text": None,
        },
        "limit": 10,
    }

    assert api_client.post("/api/events/filter", body, format="json").status_code == 200
