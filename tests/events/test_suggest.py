"""Suggestions for the feed's resource, related and label inputs (`/events/suggest/`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from events import page_queries
from events.ingest import ingest
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

SUGGEST = "/events/suggest/"


def store(*items):
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected


def options(response) -> list[tuple[str, str]]:
    """The suggested (value, label)s, leaving out the signed-in person (their login is audited)."""
    assert response.status_code == 200
    found = re.findall(r'<option value="([^"]*)">([^<]*)</option>', response.content.decode())
    return [(v, label) for v, label in found if not v.startswith("prefect-cloud.user.")]


@pytest.fixture
def data():
    store(
        event_data(
            "prefect.flow-run.Failed",
            "prefect.flow-run.0001",
            labels={"prefect.resource.name": "golden-gecko", "env": "prod"},
            related=[related("prefect.flow.9", "flow", **{"prefect.resource.name": "etl"})],
        ),
        event_data(
            "prefect.flow-run.Completed",
            "prefect.flow-run.0002",
            labels={"prefect.resource.name": "crimson-fox", "env": "staging"},
            related=[
                related(
                    "prefect.deployment.4", "deployment", **{"prefect.resource.name": "nightly"}
                )
            ],
        ),
        event_data("acme.order.created", "acme.order.31", labels={"env": "prod", "region": "eu"}),
        # Outside the window: not suggested by name.
        event_data(
            "acme.order.created", "acme.order.old", occurred=datetime.now(UTC) - timedelta(days=3)
        ),
    )


def test_suggest_needs_a_login(client):
    assert client.get(SUGGEST, {"field": "resource"}).status_code == 302


def test_an_empty_resource_input_suggests_the_newest_resources_with_names(logged_in_client, data):
    got = options(logged_in_client.get(SUGGEST, {"field": "resource", "resource": ""}))

    assert got == [
        ("acme.order.31", ""),
        ("prefect.flow-run.0002", "crimson-fox"),
        ("prefect.flow-run.0001", "golden-gecko"),
    ]


def test_resources_are_found_by_name_or_by_id(logged_in_client, data):
    by_name = options(logged_in_client.get(SUGGEST, {"field": "resource", "resource": "GECKO"}))
    by_id = options(logged_in_client.get(SUGGEST, {"field": "resource", "resource": "acme.order."}))
    by_prefix = options(
        logged_in_client.get(
            SUGGEST, {"field": "resource", "resource": "acme.order.*", "range": "7d"}
        )
    )

    assert by_name == [("prefect.flow-run.0001", "golden-gecko")]
    assert by_id == [("acme.order.31", "")]
    assert {v for v, _ in by_prefix} == {"acme.order.31", "acme.order.old"}


def test_an_id_prefix_finds_resources_beyond_the_newest_rows_in_their_own_role(
    logged_in_client, data, monkeypatch
):
    monkeypatch.setattr(page_queries, "SUGGEST_SAMPLE", 0)  # the newest rows hold none of them

    def get(field, typed):
        return options(logged_in_client.get(SUGGEST, {"field": field, field: typed}))

    assert get("resource", "prefect.") == [
        ("prefect.flow-run.0001", "golden-gecko"),
        ("prefect.flow-run.0002", "crimson-fox"),
    ]
    assert get("related", "prefect.") == [
        ("prefect.deployment.4", "nightly"),
        ("prefect.flow.9", "etl"),
    ]
    assert get("related", "acme.order.") == []
    assert get("resource", "prefect.flow.") == []


def test_an_id_prefix_reads_a_bounded_number_of_index_entries(logged_in_client, monkeypatch):
    store(*(event_data(resource_id=f"acme.shipment.{n}") for n in range(3)))
    monkeypatch.setattr(page_queries, "SUGGEST_SAMPLE", 0)
    monkeypatch.setattr(page_queries, "ID_SCAN", 2)

    got = options(logged_in_client.get(SUGGEST, {"field": "resource", "resource": "acme.ship"}))

    assert len(got) == 2 and {v for v, _ in got} < {f"acme.shipment.{n}" for n in range(3)}


def test_related_suggestions_name_the_role(logged_in_client, data):
    got = options(logged_in_client.get(SUGGEST, {"field": "related", "related": ""}))

    assert got == [("prefect.deployment.4", "deployment: nightly"), ("prefect.flow.9", "flow: etl")]


def test_label_suggestions_give_keys_then_values(logged_in_client, data):
    keys = options(logged_in_client.get(SUGGEST, {"field": "label", "label": "en"}))
    values = options(logged_in_client.get(SUGGEST, {"field": "label", "label": "env=pr"}))
    negated = options(logged_in_client.get(SUGGEST, {"field": "label", "label": "env=!st"}))

    assert keys == [("env=", "seen 3×")]
    assert values == [("env=prod", "seen 2×")]
    assert negated == [("env=staging", "seen 1×")]


def test_an_unknown_field_is_a_400_that_says_which_fields_exist(logged_in_client):
    response = logged_in_client.get(SUGGEST, {"field": "payload"})

    assert response.status_code == 400
    assert "resource, related, label" in response.content.decode()


def test_suggested_values_are_escaped(logged_in_client):
    store(
        event_data(
            resource_id='x"><script>alert(1)</script>', labels={"prefect.resource.name": "<b>n</b>"}
        )
    )

    html = logged_in_client.get(SUGGEST, {"field": "resource"}).content.decode()

    assert "<script>" not in html and "<b>" not in html
    assert "&lt;b&gt;n&lt;/b&gt;" in html
