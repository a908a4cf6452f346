"""Schema fuzz: every operation of the API's own OpenAPI schema, with schemathesis.

Each operation gets `FUZZ_EXAMPLES` generated requests (valid and invalid bodies, parameters and
paths), sent with an admin's token (every branch reachable) to the real app (Django's WSGI
handler, in process) on the suite's test database. Half of the generated ids are swapped for the
ids of a stored automation, webhook, event and owner resource, so that the operations on one
object run past their 404. Every answer must be no 5xx and conform to the schema: a documented
status code, its content type and its body shape.

Not checked: that schema-invalid input is refused (schemathesis's `negative_data_rejection`).
The API validates as Prefect's does (pydantic's lax mode: `0` is a boolean, `null` is an empty
filter part), which that check calls accepting invalid input.
"""

from __future__ import annotations

import os

import hypothesis.strategies as st
import orjson
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from events.models import ApiToken

FUZZ_EXAMPLES = int(os.environ.get("EVENTSITE_FUZZ_EXAMPLES", "200"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _schema():
    """The schema as /api/schema/ serves it, generated in process (pytest-django set Django up)."""
    raw = orjson.loads(orjson.dumps(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = WSGIHandler()
    return loaded


schema = _schema()
# Ids of the objects `stored_objects` made for the running test, by path or query parameter name.
STORED: dict[str, str] = {}
OWNER = "acme.fuzz.owner"
EVENT_ID = "5f0c7d1e-2b1a-4c3e-9d8f-000000000f22"


def _half_stored(values: dict | None) -> st.SearchStrategy:
    stored = {name: STORED[name] for name in values or {} if name in STORED}
    return st.sampled_from([values, {**values, **stored}]) if stored else st.just(values)


schema.hook("flatmap_path_parameters")(lambda context, values: _half_stored(values))
schema.hook("flatmap_query")(lambda context, values: _half_stored(values))


@pytest.fixture
def admin_token(django_user_model) -> str:
    admin = django_user_model.objects.create_superuser("fuzz-admin", "a@example.com", "pw")
    return ApiToken.issue(admin, name="fuzz")[1]


@pytest.fixture
def stored_objects(admin_token, db):
    """An event, an automation owned by `OWNER` and a webhook, made through the API."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    event = {
        "id": EVENT_ID,
        "occurred": "2026-01-01T00:00:00Z",
        "event": "acme.fuzz.stored",
        "resource": {"prefect.resource.id": "acme.fuzz.1"},
    }
    assert client.post("/api/events", [event], format="json").status_code == 204
    automation = {
        "name": "stored",
        "owner_resource": OWNER,
        "trigger": {"type": "event", "posture": "Reactive", "expect": ["acme.*"]},
        "actions": [{"type": "do-nothing"}],
    }
    created = client.post("/api/automations/", automation, format="json")
    webhook = client.post("/api/webhooks/", {"name": "stored", "template": "{}"}, format="json")
    assert (created.status_code, webhook.status_code) == (201, 201)
    STORED.update(
        automation_id=created.json()["id"],
        id=webhook.json()["id"],
        resource_id=OWNER,
        event=EVENT_ID,
    )
    yield
    STORED.clear()


@pytest.fixture
def app_in_test_transaction(db):
    """Keep the test's connection open across requests, as Django's test client does: the
    handler's request signals would otherwise close it (and with it the test's transaction).
    Ask for it after any fixture that uses the test client, which connects them again."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.fuzz
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_gets_a_server_error_or_an_answer_outside_the_schema(
    case, admin_token, stored_objects, app_in_test_transaction
):
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"}, checks=CHECKS)


# --- the classes the fuzz found, closed for good ---------------------------------------------


def _unbounded_numbers(node, where: str, components: dict, seen: set) -> list[str]:
    """Every integer or number in `node` (following `$ref`s) that lacks a lower or upper bound."""
    found = []
    if isinstance(node, dict):
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                found += _unbounded_numbers(components[name], name, components, seen)
            return found
        types = node.get("type")  # (a dict where a property is called "type")
        types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
        if {"integer", "number"} & set(types):
            low = "minimum" in node or "exclusiveMinimum" in node
            high = "maximum" in node or "exclusiveMaximum" in node
            if not (low and high):
                found.append(where)
        for key, value in node.items():
            found += _unbounded_numbers(value, f"{where}.{key}", components, seen)
    elif isinstance(node, list):
        for value in node:
            found += _unbounded_numbers(value, where, components, seen)
    return found


def test_every_number_a_client_sends_has_both_bounds():
    """An unbounded integer or float is an overflow waiting further in (a timedelta, a column,
    orjson's 64 bits): every one in a request body or parameter is bounded where it comes in."""
    raw = schema.raw_schema
    components, unbounded, seen = raw["components"]["schemas"], [], set()
    for path, operations in raw["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                found = _unbounded_numbers(parameter, where, components, seen)
                unbounded += found
            unbounded += _unbounded_numbers(operation.get("requestBody"), where, components, seen)
    assert unbounded == []


def test_an_id_the_api_url_does_not_take_is_a_json_404(api_client):
    response = api_client.get("/api/webhooks/not-a-uuid")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"] == "Not found."


def test_a_page_that_does_not_exist_is_still_the_sites_404_page(logged_in_client):
    response = logged_in_client.get("/events/not-a-uuid/nothing")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_json_null_body_is_a_422_not_an_empty_filter(api_client):
    response = api_client.post("/api/webhooks/filter", "null", content_type="application/json")

    assert response.status_code == 422
    assert api_client.post("/api/webhooks/filter").status_code == 200  # no body: the defaults


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/events/count-by/time", {"filter": {}, "time_interval": 1e307}, "time_interval"),
        ("/api/webhooks/filter", {"offset": 2**63}, "offset"),
        ("/api/automations/filter", {"offset": 2**63}, "offset"),
    ],
)
def test_a_number_past_its_bound_is_a_422_naming_the_field(api_client, path, body, field):
    response = api_client.post(path, body, format="json")

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_buckets_past_the_calendars_end_are_a_422(api_client):
    body = {
        "filter": {"occurred": {"since": "0001-01-01T00:00:00Z", "until": "0001-01-02T00:00:00Z"}},
        "time_unit": "week",
        "time_interval": 1000,
    }
    response = api_client.post("/api/events/count-by/time", body, format="json")

    assert response.status_code == 422
    assert "calendar" in response.json()["detail"]


def _automation(trigger: dict, actions: list | None = None) -> dict:
    return {"name": "fuzzed", "trigger": trigger, "actions": actions or [{"type": "do-nothing"}]}


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "event", "posture": "Reactive", "threshold": 2**40},
        {"type": "event", "posture": "Reactive", "within": 10**12},
        {"type": "event", "posture": "Reactive", "within": "P99999D"},
        {
            "type": "compound",
            "require": 2**40,
            "triggers": [{"type": "event", "posture": "Reactive"}],
        },
    ],
)
def test_trigger_numbers_past_their_bounds_are_a_422(api_client, trigger):
    response = api_client.post("/api/automations/", _automation(trigger), format="json")

    assert response.status_code == 422, response.json()


def test_a_trigger_window_is_answered_in_seconds_as_the_schema_says(api_client):
    trigger = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.*"],
        "within": "PT1M",
        "threshold": 3,
    }
    response = api_client.post("/api/automations/", _automation(trigger), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["trigger"]["within"] == 60.0


def test_an_action_whose_type_is_not_a_string_is_a_422(api_client):
    trigger = {"type": "event", "posture": "Reactive", "expect": ["acme.*"]}
    body = _automation(trigger, actions=[{"type": {}}])
    response = api_client.post("/api/automations/", body, format="json")

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "actions.0.type"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/events/filter", {"filter": {"event": {"name": ["a\x00b"]}}}, "filter.event.name.0"),
        ("/api/webhooks/", {"name": "n\x00", "template": "{}"}, "name"),
        (
            "/api/automations/",
            {"name": "n\x00", "trigger": {"posture": "Reactive"}, "actions": []},
            "name",
        ),
    ],
)
def test_a_string_no_store_can_hold_is_a_422_on_both_backends(api_client, path, body, field):
    response = api_client.post(path, body, format="json")

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_automations_related_to_a_resource_id_with_nul_are_none(api_client):
    response = api_client.get("/api/automations/related-to/acme%00thing")

    assert response.status_code == 200
    assert response.json() == []


def test_a_preview_of_nested_triggers_sharing_one_id_answers(api_client):
    same = "e3e70682-c209-1cac-a29f-6fbed82c07cd"
    leaf = {"id": same, "type": "event", "posture": "Reactive", "expect": ["acme.*"]}
    compound = {"id": same, "type": "compound", "require": 1, "triggers": [leaf]}
    inner = {"id": same, "type": "sequence", "triggers": [compound]}
    trigger = {"id": same, "type": "sequence", "triggers": [inner]}
    ingest_body = [
        {
            "id": "0b9e6ad2-8b5c-4b8e-9a55-3c8c1d1f0a01",
            "occurred": "2026-01-01T00:00:00Z",
            "event": "acme.thing",
            "resource": {"prefect.resource.id": "acme.1"},
        }
    ]
    assert api_client.post("/api/events", ingest_body, format="json").status_code == 204

    body = {"trigger": trigger, "since": "2025-12-31T00:00:00Z"}
    response = api_client.post("/api/automations/preview", body, format="json")

    assert response.status_code == 200, response.json()


def test_a_field_named_with_unicode_digits_is_a_422_with_its_name_kept(api_client):
    """`"²3".isdigit()` is true, `int("²3")` fails: Prefect's `loc` keeps such a key a string."""
    body = {"filter": {"resource": {"labels": {"²3": [1]}}}}
    response = api_client.post("/api/events/filter", body, format="json")

    assert response.status_code == 422
    assert any("²3" in problem["loc"] for problem in response.json()["exception_detail"])


def test_a_webhook_call_with_a_unicode_digit_content_length_is_answered(api_client, client):
    webhook = api_client.post("/api/webhooks/", {"name": "n", "template": "{}"}, format="json")
    slug = webhook.json()["slug"]

    response = client.post(
        f"/hooks/{slug}", "{}", content_type="application/json", CONTENT_LENGTH="²"
    )

    assert response.status_code < 500
