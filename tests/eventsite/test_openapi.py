"""The OpenAPI schema: every API operation described, generated without a warning or error."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from automations.actions import ACTIONS
from events.api import views as event_views
from eventsite.openapi import component_name


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    """The schema, generated once for the module, failing on any warning or error."""
    out = tmp_path_factory.mktemp("openapi") / "schema.json"
    # --fail-on-warn: any warning or error of drf-spectacular fails the command;
    # --validate: the result is checked against the OpenAPI specification.
    call_command(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--format",
        "openapi-json",
        "--file",
        str(out),
    )
    return json.loads(out.read_text())


def test_the_schema_generates_without_warnings_and_validates(schema):
    assert schema["openapi"].startswith("3.1")
    operations = [
        (path, method, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) >= 24
    for path, method, op in operations:
        assert op["responses"], f"{method.upper()} {path} has no responses"
        for code, response in op["responses"].items():
            if code not in ("202", "204"):  # the answers without a body
                assert "content" in response, f"{method.upper()} {path} {code}: no shape"


def test_operations_that_take_a_body_describe_it(schema):
    paths = schema["paths"]

    def body(path: str, method: str) -> str:
        return paths[path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    assert body("/api/events", "post").endswith("/EventBatch")
    assert body("/api/events/filter", "post").endswith("/EventsFilterRequest")
    assert body("/api/automations/", "post").endswith("/AutomationIn")
    assert body("/api/automations/filter", "post").endswith("/AutomationsFilterRequest")
    assert body("/api/webhooks/", "post").endswith("/WebhookIn")


def test_models_sharing_a_class_name_get_distinct_schema_names(schema):
    components = schema["components"]["schemas"]

    assert component_name(event_views.FilterRequest) == "EventsFilterRequest"
    assert "limit" in components["EventsFilterRequest"]["properties"]
    assert "sort" in components["AutomationsFilterRequest"]["properties"]
    assert "FilterRequest" not in components


def test_an_automation_is_described_with_its_triggers_and_every_registered_action(schema):
    components = schema["components"]["schemas"]

    for action in ACTIONS.values():
        assert action.__name__ in components
    for trigger in ("EventTrigger", "CompoundTrigger", "SequenceTrigger"):
        assert trigger in components
