import uuid

import pytest

from tests.factories import domain_events, domain_resources, event_data, related

pytestmark = pytest.mark.django_db


def post(api_client, body, **extra):
    return api_client.post("/api/events", body, format="json", **extra)


def test_post_events_stores_each_event_and_one_resource_row_per_resource(api_client):
    events = [
        event_data(related=[related("acme.customer.7", "customer"), related("acme.tag.eu", "tag")]),
        event_data(resource_id="acme.order.2"),
    ]

    response = post(api_client, events)

    assert response.status_code == 204
    assert domain_events().count() == 2
    assert domain_resources().count() == 4
    stored = domain_events().get(id=events[0]["id"])
    assert stored.related == events[0]["related"]
    assert stored.received >= stored.occurred
    assert set(stored.resources.values_list("role", flat=True)) == {"", "customer", "tag"}


def test_the_same_id_sent_twice_is_stored_once_and_the_first_copy_wins(api_client):
    first = event_data(payload={"copy": 1})
    second = {**first, "payload": {"copy": 2}}

    assert post(api_client, [first]).status_code == 204
    assert post(api_client, [second, second]).status_code == 204

    assert domain_events().count() == 1
    assert domain_events().get().payload == {"copy": 1}
    assert domain_resources().count() == 1


def test_occurred_with_an_offset_is_stored_in_utc_and_a_client_received_is_ignored(api_client):
    event = {
        **event_data(),
        "occurred": "2026-11-26T10:00:00+05:00",
        "received": "2000-01-01T00:00:00Z",
    }

    assert post(api_client, [event]).status_code == 204

    wire = domain_events().get().to_wire()
    assert wire["occurred"] == "2026-11-26T05:00:00.000000Z"
    assert not wire["received"].startswith("2000")


def test_unknown_top_level_keys_are_ignored(api_client):
    assert post(api_client, [{**event_data(), "extra": {"x": 1}}]).status_code == 204
    assert domain_events().count() == 1


def test_malformed_json_is_a_400_with_a_message(api_client):
    response = api_client.post("/api/events", "[{not json", content_type="application/json")

    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["detail"]


@pytest.mark.parametrize("body", [{}, "text", 5, None])
def test_a_body_that_is_not_an_array_is_a_422(api_client, body):
    response = post(api_client, body)

    assert response.status_code == 422
    assert "array" in response.json()["detail"]


def _errors(response):
    assert response.status_code == 422, response.content
    return {(e["index"], e["field"]): e["message"] for e in response.json()["errors"]}


@pytest.mark.parametrize("missing", ["event", "resource", "id", "occurred"])
def test_a_missing_required_field_is_named_with_its_index(api_client, missing):
    bad = event_data()
    del bad[missing]

    errors = _errors(post(api_client, [event_data(), bad]))

    assert (1, missing) in errors
    assert domain_events().count() == 0


def test_a_resource_without_an_id_is_rejected(api_client):
    errors = _errors(post(api_client, [{**event_data(), "resource": {"name": "x"}}]))

    assert (0, "resource.prefect.resource.id") in errors


def test_ingest_rejects_related_resource_without_role(api_client):
    errors = _errors(post(api_client, [event_data(related=[{"prefect.resource.id": "x"}])]))

    assert (0, "related.0.prefect.resource.role") in errors


@pytest.mark.parametrize("value", [1, True, None, ["a"], {"a": "b"}])
def test_non_string_label_values_are_rejected(api_client, value):
    errors = _errors(post(api_client, [event_data(labels={"acme.count": value})]))

    assert (0, "resource.acme.count") in errors


@pytest.mark.parametrize("payload", [[1, 2], "text", 3])
def test_a_payload_that_is_not_an_object_is_rejected(api_client, payload):
    errors = _errors(post(api_client, [{**event_data(), "payload": payload}]))

    assert (0, "payload") in errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("id", 12),
        ("follows", "nope"),
        ("occurred", "yesterday"),
        ("occurred", 5),
    ],
)
def test_bad_uuids_and_timestamps_are_rejected(api_client, field, value):
    errors = _errors(post(api_client, [{**event_data(), field: value}]))

    assert (0, field) in errors


def test_a_name_over_the_limit_is_rejected(api_client, settings):
    settings.EVENTSITE_MAX_EVENT_NAME_LENGTH = 10

    errors = _errors(post(api_client, [event_data(event="a" * 11)]))

    assert "at most 10" in errors[(0, "event")]


def test_too_many_labels_or_related_resources_are_rejected(api_client, settings):
    settings.EVENTSITE_MAX_LABELS_PER_RESOURCE = 3
    settings.EVENTSITE_MAX_RELATED_RESOURCES = 2
    many_labels = event_data(labels={f"l{i}": "v" for i in range(3)})
    many_related = event_data(related=[related(f"r{i}", "thing") for i in range(3)])

    errors = _errors(post(api_client, [many_labels, many_related]))

    assert "at most 3" in errors[(0, "resource")]
    assert "at most 2" in errors[(1, "related")]


def test_an_event_over_the_size_limit_is_a_413_and_nothing_is_stored(api_client, settings):
    settings.EVENTSITE_MAX_EVENT_SIZE_BYTES = 2_000
    big = event_data(payload={"blob": "x" * 3_000})

    response = post(api_client, [event_data(), big])

    assert response.status_code == 413
    assert response.json()["errors"][0]["index"] == 1
    assert domain_events().count() == 0


def test_the_default_size_limit_admits_a_one_megabyte_event(api_client):
    assert post(api_client, [event_data(payload={"blob": "x" * 1_000_000})]).status_code == 204
    assert domain_events().count() == 1


def test_one_bad_event_rejects_the_whole_batch(api_client):
    batch = [event_data() for _ in range(5)]
    batch[3]["resource"] = {}

    response = post(api_client, batch)

    assert response.status_code == 422
    assert response.json()["detail"] == "1 of 5 events are invalid; nothing was stored."
    assert domain_events().count() == 0


def test_an_empty_array_is_accepted(api_client):
    assert post(api_client, []).status_code == 204


def test_an_event_name_may_be_empty(api_client):
    assert post(api_client, [event_data(event="")]).status_code == 204


def test_ids_are_normalised_so_two_spellings_are_one_event(api_client):
    event_id = uuid.uuid4()
    assert post(api_client, [event_data(id=str(event_id).upper())]).status_code == 204
    assert post(api_client, [event_data(id=event_id.hex)]).status_code == 204
    assert domain_events().count() == 1


def test_large_numbers_come_back_as_they_were_sent_not_as_a_server_error(api_client):
    """PostgreSQL's jsonb writes a large float as an integer's digits (`1e300`: 301 of them):
    read back, it is the float that was sent, and every page showing the event answers."""
    sent = {"huge": 1e300, "large": 1.2345678901234567e22, "past 64 bits": 123456789012345678901234}
    event = event_data(payload=sent)
    assert api_client.post("/api/events", [event], format="json").status_code == 204

    body = {"filter": {"id": {"id": [event["id"]]}}}
    page = api_client.post("/api/events/filter", body, format="json")

    assert page.status_code == 200
    assert page.json()["events"][0]["payload"] == {k: float(v) for k, v in sent.items()}
